import LinearAlgebra
import ModelFormats

/// How a weight is kept in memory. Computation is always Float32; half-precision storage halves
/// the bytes read per decoded token (decode is memory-bound). Applies to dense weights and to
/// low-rank factors alike.
public enum WeightPrecision: String, Sendable, Codable, CaseIterable {
    case float32 = "f32"
    case float16 = "f16"
    case bfloat16 = "bf16"

    public var bytesPerValue: Int { self == .float32 ? 4 : 2 }
}

/// A row-major weight `[rows × columns]` at a storage precision. Products may use a prefix of its
/// rows and of its columns (a low-rank factor at an active rank below its stored rank) without
/// copying: the row stride stays `columns`.
public struct WeightMatrix: Sendable, Equatable {
    public let rows: Int
    public let columns: Int
    public let precision: WeightPrecision
    /// Exactly one of the two is non-empty (unless the matrix is empty).
    /// Float32 values share the loader's array (no copy: the loaded weights and the model hold one
    /// buffer), which starts 48 bytes into a cache line, until `cacheLineAligned` copies them into
    /// an `AlignedBuffer` (a runtime model built by moving the loaded weights, `LlamaModel(moving:)`);
    /// half-precision values are converted into an `AlignedBuffer` anyway, so they start on one.
    let float32: Float32Values
    let half: HalfValues

    public init(_ m: Matrix<Float>, precision: WeightPrecision = .float32) {
        rows = m.rows
        columns = m.columns
        self.precision = precision
        switch precision {
        case .float32:
            float32 = Float32Values(m.storage)
            half = .empty
        case .float16, .bfloat16:
            float32 = .empty
            half = m.storage.withUnsafeBufferPointer { HalfValues(rounding: $0, to: precision) }
        }
    }

    private init(rows: Int, columns: Int, precision: WeightPrecision, float32: Float32Values, half: HalfValues) {
        self.rows = rows
        self.columns = columns
        self.precision = precision
        self.float32 = float32
        self.half = half
    }

    /// A half-precision weight that stays in a memory-mapped file (safetensors stores IEEE half
    /// and bfloat16 little-endian, as the kernels read them): no copy is made, the pages are read
    /// from the file as the products touch them, and `owner` (the mapping) lives as long as any
    /// copy of this matrix.
    /// - Precondition: `base` holds `rows · columns` values, 2-byte aligned.
    public init(mapped base: UnsafePointer<UInt16>, rows: Int, columns: Int, precision: WeightPrecision, owner: AnyObject & Sendable) {
        precondition(precision != .float32, "only 16-bit weights are used from the mapping as they are")
        precondition(Int(bitPattern: base) % 2 == 0, "16-bit values must be 2-byte aligned")
        self.rows = rows
        self.columns = columns
        self.precision = precision
        float32 = .empty
        half = HalfValues(mapped: base, count: rows * columns, owner: owner)
    }

    /// Whether the values start on a 64-byte boundary: always for half-precision values in memory and
    /// for `cacheLineAligned` Float32 ones; for a mapped file, when the tensor's offset allows; for
    /// Float32 values shared with a loader's array, only by chance. An empty matrix counts as aligned.
    public var isCacheLineAligned: Bool { (storageAddress ?? 0) % AlignedBuffer<Float>.alignment == 0 }

    /// The same weight with Float32 values of its own, copied onto a cache-line boundary: the decode
    /// kernels stream rows in 64-byte vectors, and one-thread decoding ran 11–33% faster from
    /// aligned storage on the project's AMD EPYC (docs/BENCHMARKS.md). Half-precision weights (in
    /// aligned memory already, or used in place from a mapped file) and aligned ones are returned
    /// as they are. The copy is what the caller keeps; release the original to avoid holding both.
    public func cacheLineAligned() -> WeightMatrix {
        guard precision == .float32, !float32.isAligned else { return self }
        return float32.withUnsafeBufferPointer {
            WeightMatrix(rows: rows, columns: columns, precision: .float32, float32: Float32Values(aligning: $0), half: half)
        }
    }

    /// The address of the values (what identifies a buffer several weights share); nil when empty.
    var storageAddress: Int? {
        guard count > 0 else { return nil }
        return precision == .float32 ? float32.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) }
            : half.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) }
    }

    /// Whether both read one buffer (not merely equal values): a tied head and embedding, a basis
    /// shared across layers.
    public func sharesStorage(with other: WeightMatrix) -> Bool {
        storageAddress != nil && storageAddress == other.storageAddress
    }

    /// Whether the values are read from a memory-mapped file in place.
    public var isMapped: Bool { half.isMapped }

    /// For a mapped matrix, drops the pages it has read from the resident set (`MappedFile.releasePages`;
    /// the values stay readable). Nothing for a matrix in memory.
    public func releaseMappedPages() {
        guard half.isMapped else { return }
        half.withUnsafeBufferPointer { MappedFile.releasePages(UnsafeRawPointer($0.baseAddress!), count: $0.count * 2) }
    }

    /// Fills `out` (`rows · columns` Float32 values) with the weight as Float32 (`matrix` without
    /// an array of its own).
    public func widen(into out: UnsafeMutableBufferPointer<Float>) {
        precondition(out.count == count, "the buffer holds \(out.count) values, the weight \(count)")
        guard count > 0 else { return }
        switch precision {
        case .float32: float32.withUnsafeBufferPointer { out.baseAddress!.update(from: $0.baseAddress!, count: count) }
        case .float16, .bfloat16:
            half.withUnsafeBufferPointer { DecodeKernels.widen($0.baseAddress!, format: precision.halfFormat!, count: count, into: out.baseAddress!) }
        }
    }

    /// Row `i` as Float32 into `out [columns]` (an embedding lookup).
    public func widenRow(_ i: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(i >= 0 && i < rows, "row \(i) is outside 0..<\(rows)")
        switch precision {
        case .float32: float32.withUnsafeBufferPointer { out.update(from: $0.baseAddress! + i * columns, count: columns) }
        case .float16, .bfloat16:
            half.withUnsafeBufferPointer { DecodeKernels.widen($0.baseAddress! + i * columns, format: precision.halfFormat!, count: columns, into: out) }
        }
    }

    /// The weight as Float32 (exactly what the kernels multiply by).
    public var matrix: Matrix<Float> {
        guard precision != .float32 else { return Matrix(rows: rows, columns: columns, storage: float32.array) }
        var out = [Float](repeating: 0, count: rows * columns)
        out.withUnsafeMutableBufferPointer { widen(into: $0) }
        return Matrix(rows: rows, columns: columns, storage: out)
    }

    /// The same weight kept at `precision` (rounded from its Float32 values; unchanged if equal).
    public func converted(to precision: WeightPrecision) -> WeightMatrix {
        if precision == self.precision { return self }
        if self.precision == .float32 {  // straight from the values (an aligned weight has no array to share)
            return float32.withUnsafeBufferPointer {
                WeightMatrix(rows: rows, columns: columns, precision: precision, float32: .empty, half: HalfValues(rounding: $0, to: precision))
            }
        }
        return WeightMatrix(matrix, precision: precision)
    }

    /// Rows `0..<rows` and columns `0..<columns` as a new Float32 matrix (a truncated factor).
    public func prefix(rows r: Int, columns n: Int) -> Matrix<Float> {
        let m = matrix
        var out = [Float](repeating: 0, count: r * n)
        for i in 0..<r { for j in 0..<n { out[i * n + j] = m.storage[i * columns + j] } }
        return Matrix(rows: r, columns: n, storage: out)
    }

    public var count: Int { rows * columns }
    /// Bytes read by a product over rows `0..<r` and columns `0..<n`.
    public func byteCount(rows r: Int, columns n: Int) -> Int { r * n * precision.bytesPerValue }

    /// The weight as the decode kernels read it (valid while this matrix is alive).
    var operand: WeightOperand {
        WeightOperand(base: precision == .float32 ? float32.baseAddress : half.baseAddress, columns: columns, precision: precision)
    }

    /// `y[i] = W[i, 0..<n] · x` for i in `part` (one input row; part of a fused decode region).
    @inline(__always)
    func gemvRows(_ part: Range<Int>, columns n: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        operand.gemvRows(part, columns: n, x: x, y: y)
    }

    /// `y[s][i] = W[i, 0..<n] · x[s]` for i in `part` and every input row s < t (`WeightOperand.gemvRows`).
    @inline(__always)
    func gemvRows(_ part: Range<Int>, columns n: Int, x: UnsafePointer<Float>, ldx: Int, rows t: Int,
                  y: UnsafeMutablePointer<Float>, ldy: Int) {
        operand.gemvRows(part, columns: n, x: x, ldx: ldx, rows: t, y: y, ldy: ldy)
    }

    /// The transposed product over `rows` into columns `block` of every input row (`WeightOperand.gemvTransposedRows`).
    @inline(__always)
    func gemvTransposedRows(rows: Range<Int>, columns block: Range<Int>, x: UnsafePointer<Float>, ldx: Int, count t: Int,
                            y: UnsafeMutablePointer<Float>, ldy: Int) {
        operand.gemvTransposedRows(rows: rows, columns: block, x: x, ldx: ldx, count: t, y: y, ldy: ldy)
    }

    /// `y[j] = Σ_{k ∈ rows} x[k] · W[k, j]` for every column j (overwrites y).
    @inline(__always)
    func gemvTransposed(rows: Range<Int>, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        operand.gemvTransposed(rows: rows, columns: 0..<columns, x: x, y: y)
    }

    /// Input rows up to which `multiply` and `multiplyTransposed` stream the weights through the
    /// decode kernels instead of sgemm, and the weight block they keep in L2 meanwhile (beyond four rows).
    public static let smallBatch = 8
    /// The chunk a one-row product is stolen in (`Parallel.forEachStealing`). The output head is the
    /// largest decode region (113 MB in Float32 for SmolLM2); cut in two fixed halves, the caller
    /// waited for the helper 0.2–0.8 ms per token there (AMD EPYC, a scratch region timer, 7 decodes). Calls
    /// alternating between the two within one process (400 calls each way, three runs per size):
    /// 64 KB chunks took 1.6–4.3% less time than the halves, 256 KB 0.4–2.9% less, and 16 KB 1.3–3.3%
    /// more (docs/BENCHMARKS.md).
    static let stealChunkBytes = 64 * 1024
    static let blockBytes = 192 * 1024

    /// `y[t × columns] = x[t × r] · W[0..<r, :]` for more than one row (the few-row kernels up to
    /// `smallBatch` rows, sgemm beyond, split by output columns over the workers). `scratch` holds
    /// `scratchCount(rows: r)` floats.
    func multiplyTransposed(_ x: UnsafePointer<Float>, rows t: Int, ldx: Int, into y: UnsafeMutablePointer<Float>, ldy: Int,
                            activeRows r: Int, scratch: UnsafeMutablePointer<Float>) {
        if t <= Self.smallBatch {
            // A few rows: the few-row transposed kernel over each worker's columns, each weight
            // read from memory once for all rows.
            let n = columns
            let parts = Parallel.partCount(n * t, minimum: 512)
            let box = UncheckedSendableBox((operand, x, y))  // disjoint column blocks of every y row
            Parallel.forEach(parts) { p in
                let (w, x, y) = box.value
                w.gemvTransposedRows(rows: 0..<r, columns: Parallel.part(p, of: parts, count: n), x: x, ldx: ldx, count: t, y: y, ldy: ldy)
            }
            return
        }
        let run = { (w: UnsafePointer<Float>) in
            let parts = Parallel.partCount(self.columns, minimum: 128)
            let box = UncheckedSendableBox((w, x, y))  // disjoint column blocks of y
            let n = self.columns
            Parallel.forEach(parts) { p in
                let (w, x, y) = box.value
                let block = Parallel.part(p, of: parts, count: n)
                BLAS.gemmNN(m: t, n: block.count, k: r, a: x, lda: ldx, b: w + block.lowerBound, ldb: n, c: y + block.lowerBound, ldc: ldy)
            }
        }
        switch precision {
        case .float32:
            float32.withUnsafeBufferPointer { run($0.baseAddress!) }
        case .float16, .bfloat16:
            half.withUnsafeBufferPointer { DecodeKernels.widen($0.baseAddress!, format: precision.halfFormat!, count: r * columns, into: scratch) }
            run(scratch)
        }
    }

    /// Floats of scratch `multiply` needs for more than `smallBatch` rows: each worker widens up to
    /// `widenRows` half-precision rows at a time, then multiplies them by sgemm.
    func scratchCount(rows r: Int) -> Int { Parallel.workers * blockScratchCount(rows: r) }

    /// Floats of scratch one worker's `multiplyBlock` needs for a block of up to `r` rows.
    func blockScratchCount(rows r: Int) -> Int { precision == .float32 ? 0 : min(r, Self.widenRows) * columns }

    /// Weight rows a worker widens at a time in `multiply` of a half-precision weight over many rows.
    static let widenRows = 256

    /// Floats of scratch `multiplyTransposed` needs for more than `smallBatch` rows: the first r
    /// rows widened whole (a left factor, `[rank × outputs]`).
    func transposedScratchCount(rows r: Int) -> Int { precision == .float32 ? 0 : r * columns }

    /// `y[t × r] = x[t × n] · W[0..<r, 0..<n]ᵀ` (row strides `ldx`, `ldy`). One row runs the decode
    /// kernels split over the workers; more rows run sgemm split by output columns. `scratch` holds
    /// `scratchCount(rows: r)` floats.
    func multiply(_ x: UnsafePointer<Float>, rows t: Int, ldx: Int, into y: UnsafeMutablePointer<Float>, ldy: Int,
                  activeRows r: Int, activeColumns n: Int, scratch: UnsafeMutablePointer<Float>) {
        if t == 1 {
            let box = UncheckedSendableBox((operand, x, y))  // each chunk writes a disjoint slice of y; no reference counted
            let chunk = max(8, Self.stealChunkBytes / max(1, byteCount(rows: 1, columns: n)))
            Parallel.forEachStealing(r, minimum: 128, chunk: chunk) { rows in
                let (w, x, y) = box.value
                w.gemvRows(rows, columns: n, x: x, y: y)
            }
            return
        }
        if t <= Self.smallBatch {
            // A few rows (batched decoding): the few-row decode kernel over each worker's rows, each
            // weight read from memory once for all rows (sgemm would pack, i.e. copy, the whole
            // weight matrix on every call).
            let parts = Parallel.partCount(r * t, minimum: 512)
            let box = UncheckedSendableBox((operand, x, y))  // each part writes disjoint rows of every y row
            Parallel.forEach(parts) { p in
                let (w, x, y) = box.value
                w.gemvRows(Parallel.part(p, of: parts, count: r), columns: n, x: x, ldx: ldx, rows: t, y: y, ldy: ldy)
            }
            return
        }
        // Each worker multiplies its block of weight rows (half precision: widened `widenRows`
        // rows at a time into its own part of scratch, so scratch stays small — an 8B model's head
        // widened whole would be 2 GB — and the widening runs on every worker).
        let parts = Parallel.partCount(r, minimum: 128)
        let chunk = blockScratchCount(rows: r)  // each worker's share of scratch, as `scratchCount` sized it
        let box = UncheckedSendableBox((self, x, y, scratch))  // disjoint column blocks of y and scratch parts
        Parallel.forEach(parts) { p in
            let (w, x, y, scratch) = box.value
            w.multiplyBlock(x, rows: t, ldx: ldx, into: y, ldy: ldy, block: Parallel.part(p, of: parts, count: r), activeColumns: n,
                            scratch: scratch + p * chunk)
        }
    }

    /// `y[t × block] = x[t × n] · W[block, 0..<n]ᵀ` on the calling thread, by sgemm: one worker's
    /// share of a many-row product (`ProjectionGroup` runs every dense member of a group in one
    /// region with it). A half-precision weight is widened `widenRows` rows at a time into
    /// `scratch` (`min(block.count, widenRows) × columns` floats).
    func multiplyBlock(_ x: UnsafePointer<Float>, rows t: Int, ldx: Int, into y: UnsafeMutablePointer<Float>, ldy: Int,
                       block: Range<Int>, activeColumns n: Int, scratch: UnsafeMutablePointer<Float>) {
        guard !block.isEmpty else { return }
        switch precision {
        case .float32:
            float32.withUnsafeBufferPointer { w in
                BLAS.gemmNT(m: t, n: block.count, k: n, a: x, lda: ldx, b: w.baseAddress! + block.lowerBound * columns, ldb: columns,
                            c: y + block.lowerBound, ldc: ldy)
            }
        case .float16, .bfloat16:
            var start = block.lowerBound
            while start < block.upperBound {
                let rows = start..<min(block.upperBound, start + Self.widenRows)
                half.withUnsafeBufferPointer { h in
                    DecodeKernels.widen(h.baseAddress! + rows.lowerBound * columns, format: precision.halfFormat!,
                                        count: rows.count * columns, into: scratch)
                }
                BLAS.gemmNT(m: t, n: rows.count, k: n, a: x, lda: ldx, b: scratch, ldb: columns, c: y + rows.lowerBound, ldc: ldy)
                start = rows.upperBound
            }
        }
    }

}

/// The Float32 values of a weight: the loader's array, shared (no copy), or a cache-line aligned
/// copy (`WeightMatrix.cacheLineAligned`). Equality compares the values.
struct Float32Values: Sendable, Equatable {
    private let shared: [Float]
    private let aligned: AlignedBuffer<Float>?

    init(_ values: [Float]) {
        shared = values
        aligned = nil
    }

    init(aligning values: UnsafeBufferPointer<Float>) {
        shared = []
        aligned = AlignedBuffer(values)
    }

    static let empty = Float32Values([])

    var isAligned: Bool { aligned != nil }

    /// The values as an array (the shared one, or a copy of the aligned ones).
    var array: [Float] {
        guard let aligned else { return shared }
        return aligned.withUnsafeBufferPointer { Array($0) }
    }

    /// The address of the values, for `WeightOperand`: it stays valid while these values are alive
    /// (an aligned buffer never moves; a `let` array is never mutated, so its storage does not either).
    var baseAddress: UnsafeRawPointer? { withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress) } }

    @inline(__always)
    func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        if let aligned { return try aligned.withUnsafeBufferPointer(body) }
        return try shared.withUnsafeBufferPointer(body)
    }

    static func == (a: Float32Values, b: Float32Values) -> Bool {
        a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in x.elementsEqual(y) } }
    }
}

/// The 16-bit values of a weight: an array of its own, or a view of a memory-mapped file that
/// `owner` keeps mapped. Equality compares the values.
struct HalfValues: @unchecked Sendable, Equatable {  // the mapping is read-only and outlives every view
    private let owned: AlignedBuffer<UInt16>
    private let base: UnsafePointer<UInt16>?
    private let owner: AnyObject?
    let count: Int

    private static let none = AlignedBuffer<UInt16>([])

    init(_ buffer: AlignedBuffer<UInt16>) {
        owned = buffer
        base = nil
        owner = nil
        count = buffer.count
    }

    /// Float32 values rounded to `precision` (IEEE half, or bfloat16 rounded to nearest even).
    init(rounding values: UnsafeBufferPointer<Float>, to precision: WeightPrecision) {
        switch precision {
        case .float16:
            self.init(AlignedBuffer(count: values.count) { out in for i in values.indices { out[i] = Float16(values[i]).bitPattern } })
        case .bfloat16:
            self.init(AlignedBuffer(count: values.count) { out in for i in values.indices { out[i] = HalfPrecision.bfloat16Bits(values[i]) } })
        case .float32: preconditionFailure("Float32 values are not half precision")
        }
    }

    static let empty = HalfValues(none)

    init(mapped base: UnsafePointer<UInt16>, count: Int, owner: AnyObject) {
        owned = Self.none
        self.base = base
        self.owner = owner
        self.count = count
    }

    var isMapped: Bool { base != nil }

    /// The address of the values, for `WeightOperand` (an aligned buffer or a mapping: neither moves).
    var baseAddress: UnsafeRawPointer? { withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress) } }

    @inline(__always)
    func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<UInt16>) throws -> R) rethrows -> R {
        if let base { return try body(UnsafeBufferPointer(start: base, count: count)) }
        return try owned.withUnsafeBufferPointer(body)
    }

    static func == (a: HalfValues, b: HalfValues) -> Bool {
        a.count == b.count && a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in x.elementsEqual(y) } }
    }
}
