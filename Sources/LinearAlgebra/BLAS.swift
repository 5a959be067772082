import COpenBLAS

/// Thin, shape-documented wrappers over the CBLAS routines the engine uses. Every matrix is
/// row-major with an explicit leading dimension (the distance between rows, ≥ the row length), so
/// callers can address a head's columns inside a wider buffer without copying.
public enum BLAS {
    /// `C[m × n] = α · A[m × k] · B[n × k]ᵀ + β · C` (B in `nn.Linear` layout).
    @inline(__always)
    public static func gemmNT(
        m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// `C[m × n] = α · A[m × k] · B[k × n] + β · C`.
    @inline(__always)
    public static func gemmNN(
        m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// `C[m × n] = α · A[k × m]ᵀ · B[k × n] + β · C` (weight gradients: dW = dYᵀ · X).
    @inline(__always)
    public static func gemmTN(
        m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// `y[rows] = α · A[rows × columns] · x[columns] + β · y`. For one input row use this, never
    /// gemm with m = 1 (4–5× slower with OpenBLAS, toolchain notes §0).
    @inline(__always)
    public static func gemv(
        rows: Int, columns: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        x: UnsafePointer<Float>, beta: Float = 0, y: UnsafeMutablePointer<Float>
    ) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(rows), Int32(columns), alpha, a, Int32(lda), x, 1, beta, y, 1)
    }

    /// `y[columns] = α · A[rows × columns]ᵀ · x[rows] + β · y`.
    @inline(__always)
    public static func gemvTransposed(
        rows: Int, columns: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        x: UnsafePointer<Float>, beta: Float = 0, y: UnsafeMutablePointer<Float>
    ) {
        cblas_sgemv(CblasRowMajor, CblasTrans, Int32(rows), Int32(columns), alpha, a, Int32(lda), x, 1, beta, y, 1)
    }
}
