import COpenBLAS

/// Why a decomposition failed.
public enum DecompositionError: Error, Equatable, CustomStringConvertible, Sendable {
    /// Cholesky: the leading minor of this order is not positive definite.
    case notPositiveDefinite(order: Int)
    case didNotConverge(routine: String, info: Int)
    case invalidArgument(routine: String, info: Int)
    /// LU: the pivot of this order is exactly zero.
    case singular(order: Int)

    public var description: String {
        switch self {
        case .notPositiveDefinite(let order): "matrix is not positive definite (leading minor of order \(order))"
        case .didNotConverge(let routine, let info): "\(routine) did not converge (info \(info))"
        case .invalidArgument(let routine, let info): "\(routine): argument \(-info) is invalid"
        case .singular(let order): "matrix is singular (zero pivot at order \(order))"
        }
    }
}

/// Float64 decompositions for compression (LAPACKE, row-major). Statistics and factorisations are
/// done in double precision: in single precision the small singular values, which decide the
/// truncation, are wrong (toolchain notes §1.4).
public enum Decompositions {
    /// Lower-triangular L with L·Lᵀ = A, A symmetric `[n × n]`.
    public static func cholesky(_ a: Matrix<Double>) throws(DecompositionError) -> Matrix<Double> {
        var l = a
        try choleskyInPlace(&l)
        return l
    }

    /// `cholesky` without a copy: A `[n × n]` is overwritten by L. At n = 14336 one copy is 1.5 GiB,
    /// so a caller that retries with a shifted Gram refills one working matrix instead of allocating
    /// one per attempt. On failure A holds dpotrf's partial factor (refill it before reusing it).
    public static func choleskyInPlace(_ a: inout Matrix<Double>) throws(DecompositionError) {
        precondition(a.rows == a.columns, "Cholesky needs a square matrix")
        let n = Int32(a.rows)
        let info = a.storage.withUnsafeMutableBufferPointer {
            LAPACKE_dpotrf(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "L")), n, $0.baseAddress, n)
        }
        if info > 0 { throw .notPositiveDefinite(order: Int(info)) }
        if info < 0 { throw .invalidArgument(routine: "dpotrf", info: Int(info)) }
        for i in 0..<a.rows { for j in (i + 1)..<max(i + 1, a.columns) { a[i, j] = 0 } }  // clear the upper triangle
    }

    /// Thin SVD A = U·diag(s)·Vᵀ of A `[m × n]`: U `[m × k]`, s (descending, k values), Vᵀ `[k × n]`,
    /// k = min(m, n) (divide and conquer, dgesdd).
    public static func svd(_ a: Matrix<Double>) throws(DecompositionError) -> (u: Matrix<Double>, s: [Double], vt: Matrix<Double>) {
        let m = a.rows, n = a.columns, k = min(m, n)
        var work = a
        var s = [Double](repeating: 0, count: k)
        var u = [Double](repeating: 0, count: m * k)
        var vt = [Double](repeating: 0, count: k * n)
        let info = work.storage.withUnsafeMutableBufferPointer { ap in
            s.withUnsafeMutableBufferPointer { sp in
                u.withUnsafeMutableBufferPointer { up in
                    vt.withUnsafeMutableBufferPointer { vp in
                        LAPACKE_dgesdd(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "S")), Int32(m), Int32(n), ap.baseAddress, Int32(n),
                                       sp.baseAddress, up.baseAddress, Int32(k), vp.baseAddress, Int32(n))
                    }
                }
            }
        }
        if info > 0 { throw .didNotConverge(routine: "dgesdd", info: Int(info)) }
        if info < 0 { throw .invalidArgument(routine: "dgesdd", info: Int(info)) }
        return (Matrix(rows: m, columns: k, storage: u), s, Matrix(rows: k, columns: n, storage: vt))
    }

    /// Eigenvalues (ascending) and eigenvectors (columns) of a symmetric matrix.
    public static func symmetricEigen(_ a: Matrix<Double>) throws(DecompositionError) -> (values: [Double], vectors: Matrix<Double>) {
        precondition(a.rows == a.columns)
        var v = a
        var w = [Double](repeating: 0, count: a.rows)
        let info = v.storage.withUnsafeMutableBufferPointer { vp in
            w.withUnsafeMutableBufferPointer {
                LAPACKE_dsyevd(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "V")), CChar(UInt8(ascii: "L")), Int32(a.rows), vp.baseAddress, Int32(a.rows), $0.baseAddress)
            }
        }
        if info > 0 { throw .didNotConverge(routine: "dsyevd", info: Int(info)) }
        if info < 0 { throw .invalidArgument(routine: "dsyevd", info: Int(info)) }
        return (w, v)
    }

    /// The column order of QR with column pivoting of A `[m × n]` (dgeqp3): the first k columns of
    /// the result are the k most linearly independent ones, greedily (0-based indices).
    public static func pivotedQRColumnOrder(_ a: Matrix<Double>) throws(DecompositionError) -> [Int] {
        var work = a
        var pivots = [Int32](repeating: 0, count: a.columns)  // 0: every column is free to move
        var tau = [Double](repeating: 0, count: min(a.rows, a.columns))
        let info = work.storage.withUnsafeMutableBufferPointer { ap in
            pivots.withUnsafeMutableBufferPointer { pp in
                tau.withUnsafeMutableBufferPointer {
                    LAPACKE_dgeqp3(LAPACK_ROW_MAJOR, Int32(a.rows), Int32(a.columns), ap.baseAddress, Int32(a.columns), pp.baseAddress, $0.baseAddress)
                }
            }
        }
        if info < 0 { throw .invalidArgument(routine: "dgeqp3", info: Int(info)) }
        return pivots.map { Int($0) - 1 }
    }

    /// X with A·X = B, A `[n × n]` square, B `[n × k]` (LU with partial pivoting, dgesv; never an
    /// explicit inverse). Throws `.singular` when A is exactly singular.
    public static func solve(_ a: Matrix<Double>, _ b: Matrix<Double>) throws(DecompositionError) -> Matrix<Double> {
        precondition(a.rows == a.columns && b.rows == a.rows, "solve needs A [n × n] and B [n × k]")
        var lu = a, x = b
        var pivots = [Int32](repeating: 0, count: a.rows)
        let info = lu.storage.withUnsafeMutableBufferPointer { ap in
            x.storage.withUnsafeMutableBufferPointer { xp in
                pivots.withUnsafeMutableBufferPointer {
                    LAPACKE_dgesv(LAPACK_ROW_MAJOR, Int32(a.rows), Int32(b.columns), ap.baseAddress, Int32(a.rows), $0.baseAddress,
                                  xp.baseAddress, Int32(max(1, b.columns)))
                }
            }
        }
        if info > 0 { throw .singular(order: Int(info)) }
        if info < 0 { throw .invalidArgument(routine: "dgesv", info: Int(info)) }
        return x
    }

    /// X with X·L = B (or X·Lᵀ = B when `transposed`) for lower-triangular L `[n × n]` (B `[m × n]`):
    /// B·L⁻¹ (B·L⁻ᵀ) by a triangular solve, never an explicit inverse.
    public static func solveRightLowerTriangular(_ b: Matrix<Double>, _ l: Matrix<Double>, transposed: Bool = false) -> Matrix<Double> {
        precondition(l.rows == l.columns && b.columns == l.rows)
        var x = b
        x.storage.withUnsafeMutableBufferPointer { xp in
            l.storage.withUnsafeBufferPointer { lp in
                cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, transposed ? CblasTrans : CblasNoTrans, CblasNonUnit, Int32(b.rows), Int32(b.columns),
                            1, lp.baseAddress, Int32(l.columns), xp.baseAddress, Int32(b.columns))
            }
        }
        return x
    }

    /// AᵀA `[n × n]` (`ofColumns`) or AAᵀ `[m × m]` of A `[m × n]`, by one `dsyrk` (then symmetrised).
    public static func gram(_ a: Matrix<Double>, ofColumns: Bool) -> Matrix<Double> {
        let size = ofColumns ? a.columns : a.rows
        var g = Matrix<Double>.zeros(rows: size, columns: size)
        a.storage.withUnsafeBufferPointer { ap in
            g.storage.withUnsafeMutableBufferPointer {
                cblas_dsyrk(CblasRowMajor, CblasLower, ofColumns ? CblasTrans : CblasNoTrans, Int32(size), Int32(ofColumns ? a.rows : a.columns),
                            1, ap.baseAddress, Int32(a.columns), 0, $0.baseAddress, Int32(size))
            }
        }
        symmetrize(&g)
        return g
    }

    /// A[m × k] · B[k × n] in Float64, or A·Bᵀ for B `[n × k]` when `transposeB`.
    public static func multiply(_ a: Matrix<Double>, _ b: Matrix<Double>, transposeB: Bool = false) -> Matrix<Double> {
        let n = transposeB ? b.rows : b.columns
        precondition(a.columns == (transposeB ? b.columns : b.rows))
        var c = Matrix<Double>.zeros(rows: a.rows, columns: n)
        a.storage.withUnsafeBufferPointer { ap in
            b.storage.withUnsafeBufferPointer { bp in
                c.storage.withUnsafeMutableBufferPointer {
                    cblas_dgemm(CblasRowMajor, CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans, Int32(a.rows), Int32(n), Int32(a.columns),
                                1, ap.baseAddress, Int32(a.columns), bp.baseAddress, Int32(b.columns), 0, $0.baseAddress, Int32(n))
                }
            }
        }
        return c
    }

    /// G += Xᵀ·X for X `[rows × n]` Float32 activations, accumulated in Float64 (the rows are widened
    /// first). G is `[n × n]`; only its lower triangle is updated, `symmetrize` fills the rest.
    ///
    /// Split over the workers by row blocks of G with boundaries b_p = n·√(p/P): part p does the
    /// dsyrk of its diagonal block and the dgemm of its rows against columns 0 ..< b_p, which is the
    /// same n²/2P multiply-adds for every part. (One dsyrk on one core was half of SmolLM2's
    /// calibration time.) `gramReference` is the plain twin.
    public static func accumulateGram(_ g: inout Matrix<Double>, _ x: UnsafePointer<Float>, rows: Int, columns n: Int,
                                      scratch: inout [Double]) {
        precondition(g.rows == n && g.columns == n)
        if scratch.count < rows * n { scratch = [Double](repeating: 0, count: rows * n) }
        let parts = Parallel.partCount(n, minimum: 64)
        let bounds = (0...parts).map { p in Int((Double(n) * (Double(p) / Double(parts)).squareRoot()).rounded()) }
        scratch.withUnsafeMutableBufferPointer { s in
            let widen = UncheckedSendableBox((s.baseAddress!, x))
            Parallel.forEach(Parallel.partCount(rows * n, minimum: 4096)) { p in
                let (s, x) = widen.value
                for i in Parallel.part(p, of: Parallel.partCount(rows * n, minimum: 4096), count: rows * n) { s[i] = Double(x[i]) }
            }
            g.storage.withUnsafeMutableBufferPointer { gp in
                let box = UncheckedSendableBox((UnsafePointer(s.baseAddress!), gp.baseAddress!))  // parts write disjoint rows of G
                Parallel.forEach(parts) { p in
                    let (x, g) = box.value
                    let lo = bounds[p], hi = bounds[p + 1]
                    guard hi > lo else { return }
                    let width = Int32(hi - lo)
                    // Diagonal block G[lo..<hi, lo..<hi] (lower triangle) += X[:, lo..<hi]ᵀ·X[:, lo..<hi].
                    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, width, Int32(rows), 1, x + lo, Int32(n), 1,
                                g + lo * n + lo, Int32(n))
                    // Rows below: G[lo..<hi, 0..<lo] += X[:, lo..<hi]ᵀ·X[:, 0..<lo].
                    if lo > 0 {
                        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, width, Int32(lo), Int32(rows), 1, x + lo, Int32(n),
                                    x, Int32(n), 1, g + lo * n, Int32(n))
                    }
                }
            }
        }
    }

    /// C += Aᵀ·B for A, B `[rows × n]` Float32 activations of the same tokens, accumulated in Float64
    /// (the rows are widened first): the cross-product of two activation streams, `[n × n]`, not
    /// symmetric. Split over the workers by row blocks of C (the same work per part).
    /// `crossReference` is the plain twin.
    public static func accumulateCross(_ c: inout Matrix<Double>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, rows: Int, columns n: Int,
                                       scratch: inout [Double]) {
        precondition(c.rows == n && c.columns == n)
        let count = rows * n
        if scratch.count < 2 * count { scratch = [Double](repeating: 0, count: 2 * count) }
        scratch.withUnsafeMutableBufferPointer { s in
            let widen = UncheckedSendableBox((s.baseAddress!, a, b))
            let widenParts = Parallel.partCount(count, minimum: 4096)
            Parallel.forEach(widenParts) { p in
                let (s, a, b) = widen.value
                for i in Parallel.part(p, of: widenParts, count: count) {
                    s[i] = Double(a[i])
                    s[count + i] = Double(b[i])
                }
            }
            let parts = Parallel.partCount(n, minimum: 64)
            c.storage.withUnsafeMutableBufferPointer { cp in
                let box = UncheckedSendableBox((UnsafePointer(s.baseAddress!), cp.baseAddress!))  // parts write disjoint rows of C
                Parallel.forEach(parts) { p in
                    let (x, c) = box.value
                    let rowsOfC = Parallel.part(p, of: parts, count: n)
                    guard !rowsOfC.isEmpty else { return }
                    // C[lo..<hi, :] += A[:, lo..<hi]ᵀ·B.
                    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(rowsOfC.count), Int32(n), Int32(rows), 1,
                                x + rowsOfC.lowerBound, Int32(n), x + count, Int32(n), 1, c + rowsOfC.lowerBound * n, Int32(n))
                }
            }
        }
    }

    /// Reference twin of `accumulateCross`: AᵀB by plain Float64 loops.
    public static func crossReference(_ a: [Float], _ b: [Float], rows: Int, columns n: Int) -> Matrix<Double> {
        var c = Matrix<Double>.zeros(rows: n, columns: n)
        for i in 0..<n {
            for j in 0..<n {
                var sum = 0.0
                for r in 0..<rows { sum += Double(a[r * n + i]) * Double(b[r * n + j]) }
                c[i, j] = sum
            }
        }
        return c
    }

    /// Reference twin of `accumulateGram`: the lower triangle of XᵀX by plain Float64 loops.
    public static func gramReference(_ x: [Float], rows: Int, columns n: Int) -> Matrix<Double> {
        var g = Matrix<Double>.zeros(rows: n, columns: n)
        for i in 0..<n {
            for j in 0...i {
                var sum = 0.0
                for r in 0..<rows { sum += Double(x[r * n + i]) * Double(x[r * n + j]) }
                g[i, j] = sum
            }
        }
        return g
    }

    /// Copies the lower triangle onto the upper one.
    public static func symmetrize(_ g: inout Matrix<Double>) {
        for i in 0..<g.rows { for j in 0..<i { g[j, i] = g[i, j] } }
    }
}
