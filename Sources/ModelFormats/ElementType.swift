/// Storage types of tensor elements that lowrank can read, with the GGML type ids GGUF uses.
///
/// Block-quantised types store `blockSize` values in `bytesPerBlock` bytes; they are dequantised to
/// Float32 on load (lowrank does not run quantised kernels).
public enum ElementType: String, CaseIterable, Sendable, Codable {
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"
    case q8_0 = "Q8_0"
    case q4_0 = "Q4_0"
    case q4_1 = "Q4_1"
    case q4_K = "Q4_K"
    case q5_K = "Q5_K"
    case q6_K = "Q6_K"

    /// The ggml_type id (ggml.h) of each supported type.
    public var ggmlTypeID: UInt32 {
        switch self {
        case .f32: 0
        case .f16: 1
        case .q4_0: 2
        case .q4_1: 3
        case .q8_0: 8
        case .q4_K: 12
        case .q5_K: 13
        case .q6_K: 14
        case .bf16: 30
        }
    }

    public init?(ggmlTypeID: UInt32) {
        guard let match = ElementType.allCases.first(where: { $0.ggmlTypeID == ggmlTypeID }) else { return nil }
        self = match
    }

    /// Values per block (1 for plain floating-point types).
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: 1
        case .q8_0, .q4_0, .q4_1: 32
        case .q4_K, .q5_K, .q6_K: 256
        }
    }

    /// Bytes per block (ggml-common.h block structs).
    public var bytesPerBlock: Int {
        switch self {
        case .f32: 4
        case .f16, .bf16: 2
        case .q8_0: 34  // f16 d, int8 qs[32]
        case .q4_0: 18  // f16 d, u8 qs[16]
        case .q4_1: 20  // f16 d, f16 m, u8 qs[16]
        case .q4_K: 144  // f16 d, f16 dmin, u8 scales[12], u8 qs[128]
        case .q5_K: 176  // f16 d, f16 dmin, u8 scales[12], u8 qh[32], u8 qs[128]
        case .q6_K: 210  // u8 ql[128], u8 qh[64], i8 scales[16], f16 d
        }
    }

    /// Bytes needed for `count` elements, or nil if `count` is not a whole number of blocks.
    public func byteCount(elements count: Int) -> Int? {
        guard count % blockSize == 0 else { return nil }
        let (product, overflow) = (count / blockSize).multipliedReportingOverflow(by: bytesPerBlock)
        return overflow ? nil : product
    }

    /// Names of GGML types lowrank knows exist but cannot read, for error messages.
    public static func ggmlName(of id: UInt32) -> String {
        let names: [UInt32: String] = [
            6: "Q5_0", 7: "Q5_1", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS",
            18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8",
            25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
        ]
        if let known = ElementType(ggmlTypeID: id) { return known.rawValue }
        return names[id] ?? "unknown type id \(id)"
    }
}
