import CKernels

/// 16-bit floating-point formats weights may be stored in.
public enum HalfFormat: Sendable {
    case float16
    case bfloat16
}

/// Matrix-vector products for batch-1 decoding, on weights stored as Float32 or 16-bit floats
/// (`CKernels`: AVX-512 or AVX2 when the CPU has it, portable loops otherwise). OpenBLAS's sgemv
/// reached only about half the memory bandwidth on the project machines (docs/BENCHMARKS.md), hence these.
public enum DecodeKernels {
    /// A tier of kernels, by the instructions it needs.
    public enum Level: Int32, CaseIterable, Comparable, Sendable, CustomStringConvertible {
        /// Plain C loops: any CPU.
        case portable = 0
        /// AVX2 with FMA and F16C (Intel since Haswell, AMD since Zen 1).
        case avx2 = 1
        /// AVX-512 F, BW and VL with FMA and F16C (Intel Skylake-SP and later server cores, AMD Zen 4 and later).
        case avx512 = 2

        public var description: String {
            switch self {
            case .portable: "portable"
            case .avx2: "avx2"
            case .avx512: "avx512"
            }
        }

        public init?(name: String) {
            guard let level = Self.allCases.first(where: { $0.description == name.lowercased() }) else { return nil }
            self = level
        }

        public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    }

    /// The tier this CPU supports.
    public static var cpuLevel: Level { Level(rawValue: lowrank_kernels_cpu_level()) ?? .portable }

    /// The tier in use: `cpuLevel`, or a lower one set by `force`.
    public static var level: Level { Level(rawValue: lowrank_kernels_level()) ?? .portable }

    /// Every tier this CPU can run (the tests compare each with its reference twin).
    public static var supportedLevels: [Level] { Level.allCases.filter { $0 <= cpuLevel } }

    /// Runs `level` instead of the CPU's tier (tests, and `LOWRANK_DECODE_KERNELS` for A/B
    /// measurements); nil restores the choice by CPU. A tier above the CPU's is refused.
    public static func force(_ level: Level?) throws(ChoiceError) {
        if let level, level > cpuLevel {
            throw ChoiceError(description: "this CPU cannot run the \(level) decode kernels (it runs \(supportedNames))")
        }
        lowrank_kernels_force_level(level?.rawValue ?? -1)
    }

    /// The environment variable that forces a tier for a whole run.
    public static let environmentVariable = "LOWRANK_DECODE_KERNELS"

    /// Applies `LOWRANK_DECODE_KERNELS` (its value, nil when unset): a tier name, at most the CPU's.
    public static func applyEnvironment(_ value: String?) throws(ChoiceError) {
        guard let value, !value.isEmpty else { return }
        guard let level = Level(name: value) else {
            throw ChoiceError(description: "\(environmentVariable)=\(value) is not a tier of decode kernels; use one of \(supportedNames), or unset it")
        }
        do { try force(level) } catch {
            throw ChoiceError(description: "\(environmentVariable)=\(value): \(error.description); unset it or choose a lower tier")
        }
    }

    /// A bad choice of tier, with what to do instead.
    public struct ChoiceError: Error, CustomStringConvertible {
        public var description: String
    }

    private static var supportedNames: String { supportedLevels.map(\.description).joined(separator: ", ") }

    /// One line for reports: the tier in use, and whether the user forced it.
    public static var summary: String {
        level == cpuLevel ? "\(level)" : "\(level) (forced by \(environmentVariable); the CPU runs \(cpuLevel))"
    }

    /// Tests: the vector width of the transposed products' AVX-512 kernels (256 or 512 bits), or
    /// nil for the choice by CPU (half-precision factors: 256 on Zen 4, which splits 512-bit
    /// operations, 512 elsewhere; Float32 factors: 256).
    public static func forceTransposedWidth(_ bits: Int?) { lowrank_kernels_force_transposed_width(Int32(bits ?? 0)) }

    /// `y[r] = W[r, 0..<inputs] · x` for r in `rows`; W row-major Float32 with row stride `ld`
    /// (default `inputs`; a larger stride runs a prefix of each row: the active rank of a factor).
    @inline(__always)
    public static func gemv(_ w: UnsafePointer<Float>, ld: Int? = nil, inputs: Int, rows: Range<Int>, x: UnsafePointer<Float>,
                            y: UnsafeMutablePointer<Float>) {
        lowrank_gemv_f32(w, ld ?? inputs, x, y, rows.lowerBound, rows.upperBound, inputs)
    }

    /// The same with 16-bit weights.
    @inline(__always)
    public static func gemv(_ w: UnsafePointer<UInt16>, format: HalfFormat, ld: Int? = nil, inputs: Int, rows: Range<Int>,
                            x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        switch format {
        case .float16: lowrank_gemv_f16(w, ld ?? inputs, x, y, rows.lowerBound, rows.upperBound, inputs)
        case .bfloat16: lowrank_gemv_bf16(w, ld ?? inputs, x, y, rows.lowerBound, rows.upperBound, inputs)
        }
    }

    /// `y[j] = Σ_{k ∈ rows} x[k] · W[k, j]` for j in `0..<outputs` (overwrites y): the transposed
    /// product over a block of rows of W (row stride `ld`).
    @inline(__always)
    public static func gemvTransposed(_ w: UnsafePointer<Float>, ld: Int, outputs: Int, rows: Range<Int>, x: UnsafePointer<Float>,
                                      y: UnsafeMutablePointer<Float>) {
        lowrank_gemv_t_f32(w, ld, x, y, rows.lowerBound, rows.upperBound, outputs)
    }

    /// The same with 16-bit weights.
    @inline(__always)
    public static func gemvTransposed(_ w: UnsafePointer<UInt16>, format: HalfFormat, ld: Int, outputs: Int, rows: Range<Int>,
                                      x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        switch format {
        case .float16: lowrank_gemv_t_f16(w, ld, x, y, rows.lowerBound, rows.upperBound, outputs)
        case .bfloat16: lowrank_gemv_t_bf16(w, ld, x, y, rows.lowerBound, rows.upperBound, outputs)
        }
    }

    /// Input rows a call of `gemvRows`/`gemvTransposedRows` takes at once (more are split).
    public static let rowsPerCall = 4

    /// `y[s · ldy + r] = W[r, 0..<inputs] · x[s · ldx ..< s · ldx + inputs]` for r in `rows` and
    /// s < `count` (≤ `rowsPerCall`): a few input rows at once, each weight value read once for all.
    @inline(__always)
    public static func gemvRows(_ w: UnsafePointer<Float>, ld: Int, inputs: Int, rows: Range<Int>, x: UnsafePointer<Float>, ldx: Int,
                                count t: Int, y: UnsafeMutablePointer<Float>, ldy: Int) {
        lowrank_gemm_rows_f32(w, ld, x, ldx, t, y, ldy, rows.lowerBound, rows.upperBound, inputs)
    }

    @inline(__always)
    public static func gemvRows(_ w: UnsafePointer<UInt16>, format: HalfFormat, ld: Int, inputs: Int, rows: Range<Int>,
                                x: UnsafePointer<Float>, ldx: Int, count t: Int, y: UnsafeMutablePointer<Float>, ldy: Int) {
        switch format {
        case .float16: lowrank_gemm_rows_f16(w, ld, x, ldx, t, y, ldy, rows.lowerBound, rows.upperBound, inputs)
        case .bfloat16: lowrank_gemm_rows_bf16(w, ld, x, ldx, t, y, ldy, rows.lowerBound, rows.upperBound, inputs)
        }
    }

    /// `y[s · ldy + j] = Σ_{k ∈ rows} x[s · ldx + k] · W[k, j]` for j < `outputs` and s < `count`
    /// (≤ `rowsPerCall`; overwrites y): the transposed product for a few input rows at once.
    @inline(__always)
    public static func gemvTransposedRows(_ w: UnsafePointer<Float>, ld: Int, outputs: Int, rows: Range<Int>, x: UnsafePointer<Float>,
                                          ldx: Int, count t: Int, y: UnsafeMutablePointer<Float>, ldy: Int) {
        lowrank_gemm_t_rows_f32(w, ld, x, ldx, t, y, ldy, rows.lowerBound, rows.upperBound, outputs)
    }

    @inline(__always)
    public static func gemvTransposedRows(_ w: UnsafePointer<UInt16>, format: HalfFormat, ld: Int, outputs: Int, rows: Range<Int>,
                                          x: UnsafePointer<Float>, ldx: Int, count t: Int, y: UnsafeMutablePointer<Float>, ldy: Int) {
        switch format {
        case .float16: lowrank_gemm_t_rows_f16(w, ld, x, ldx, t, y, ldy, rows.lowerBound, rows.upperBound, outputs)
        case .bfloat16: lowrank_gemm_t_rows_bf16(w, ld, x, ldx, t, y, ldy, rows.lowerBound, rows.upperBound, outputs)
        }
    }

    /// Grouped-query attention scores while decoding: `scores[g · stride + (r − positions.lowerBound)]
    /// = q_g · K[r]` for the `group` query heads `q [group × headSize]` that share one key head, and
    /// cached keys K (row stride `ld`) at `positions`. Each key row is read from memory once.
    @inline(__always)
    public static func attentionScores(keys k: UnsafePointer<Float>, ld: Int, queries q: UnsafePointer<Float>, group: Int,
                                       headSize d: Int, positions: Range<Int>, into scores: UnsafeMutablePointer<Float>, stride: Int) {
        lowrank_attend_scores_f32(k, ld, q, group, d, scores, stride, positions.lowerBound, positions.upperBound)
    }

    /// The weighted values of a group: `out[g · headSize + j] = Σ_r p[g · stride + (r − lower)] · V[r, j]`
    /// over `positions` (overwrites `out [group × headSize]`). Each value row is read once.
    @inline(__always)
    public static func attentionValues(values v: UnsafePointer<Float>, ld: Int, weights p: UnsafePointer<Float>, stride: Int,
                                       group: Int, headSize d: Int, positions: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        lowrank_attend_values_f32(v, ld, p, stride, group, d, out, positions.lowerBound, positions.upperBound)
    }

    /// `attentionScores` over a half-precision cache (keys as IEEE half bit patterns).
    @inline(__always)
    public static func attentionScores(keys k: UnsafePointer<UInt16>, ld: Int, queries q: UnsafePointer<Float>, group: Int,
                                       headSize d: Int, positions: Range<Int>, into scores: UnsafeMutablePointer<Float>, stride: Int) {
        lowrank_attend_scores_f16(k, ld, q, group, d, scores, stride, positions.lowerBound, positions.upperBound)
    }

    /// `attentionValues` over a half-precision cache.
    @inline(__always)
    public static func attentionValues(values v: UnsafePointer<UInt16>, ld: Int, weights p: UnsafePointer<Float>, stride: Int,
                                       group: Int, headSize d: Int, positions: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        lowrank_attend_values_f16(v, ld, p, stride, group, d, out, positions.lowerBound, positions.upperBound)
    }

    /// `out[i] = half(x[i])` for i < count, rounding to nearest even as `Float16(_:)` does, except
    /// that finite values beyond the half range (|x| ≥ 65520) saturate to ±65504 instead of
    /// becoming infinite. Returns how many saturated.
    @inline(__always)
    @discardableResult
    public static func roundToHalf(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<UInt16>, count: Int) -> Int {
        Int(lowrank_round_f16(x, out, count))
    }

    /// Σ p[i] for i < count, reading the buffer once in order (a memory bandwidth probe).
    public static func readSum(_ p: UnsafePointer<Float>, count: Int) -> Float { lowrank_read_sum(p, count) }

    /// `out[i] = Float(h[i])`.
    @inline(__always)
    public static func widen(_ h: UnsafePointer<UInt16>, format: HalfFormat, count: Int, into out: UnsafeMutablePointer<Float>) {
        switch format {
        case .float16: lowrank_widen_f16(h, out, count)
        case .bfloat16: lowrank_widen_bf16(h, out, count)
        }
    }
}
