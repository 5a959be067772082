/// Everything that can be wrong with a model file, each case naming the file and the tensor or
/// key involved and saying what to do about it.
public enum ModelFormatError: Error, Equatable, CustomStringConvertible, Sendable {
    case cannotOpen(path: String, reason: String)
    case truncated(path: String, needed: Int, available: Int, context: String)
    case badMagic(path: String, found: String, expected: String)
    case unsupportedVersion(path: String, version: Int, supported: [Int])
    case unsupportedValueType(path: String, key: String, type: Int)
    case unsupportedTensorType(path: String, tensor: String, type: String)
    case invalidUTF8(path: String, context: String)
    case tensorOutOfBounds(path: String, tensor: String, end: Int, fileSize: Int)
    case invalidTensorShape(path: String, tensor: String, shape: [Int], reason: String)
    case duplicateTensor(path: String, tensor: String)
    case duplicateKey(path: String, key: String)
    case invalidAlignment(path: String, alignment: Int)
    case malformedJSON(path: String, reason: String)
    case malformedHeader(path: String, reason: String)
    case missingTensor(path: String, tensor: String)
    case missingKey(path: String, key: String)
    case wrongKeyType(path: String, key: String, expected: String, found: String)
    case shapeMismatch(path: String, tensor: String, expected: [Int], found: [Int])
    case unexpectedTensors(path: String, tensors: [String])
    case invalidValue(path: String, key: String, reason: String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason):
            return "\(path): cannot open (\(reason)). Check the path and permissions."
        case .truncated(let path, let needed, let available, let context):
            return "\(path): file is truncated while reading \(context) (needed \(needed) bytes, \(available) left). "
                + "Download or copy the file again."
        case .badMagic(let path, let found, let expected):
            return "\(path): not a \(expected) file (magic bytes \(found)). Pass a .gguf file or a Hugging Face model directory."
        case .unsupportedVersion(let path, let version, let supported):
            return "\(path): GGUF version \(version) is not supported (supported: \(supported.map(String.init).joined(separator: ", "))). "
                + "Re-convert the model with a current llama.cpp converter."
        case .unsupportedValueType(let path, let key, let type):
            return "\(path): metadata key '\(key)' has unknown value type \(type); the file is corrupt or from a newer GGUF revision."
        case .unsupportedTensorType(let path, let tensor, let type):
            return "\(path): tensor '\(tensor)' has type \(type), which lowrank cannot dequantise. "
                + "Supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K; re-quantise or convert to F16."
        case .invalidUTF8(let path, let context):
            return "\(path): \(context) is not valid UTF-8; the file is corrupt."
        case .tensorOutOfBounds(let path, let tensor, let end, let fileSize):
            return "\(path): tensor '\(tensor)' ends at byte \(end) but the file has \(fileSize) bytes; the file is truncated or corrupt."
        case .invalidTensorShape(let path, let tensor, let shape, let reason):
            return "\(path): tensor '\(tensor)' has invalid shape \(shape): \(reason)."
        case .duplicateTensor(let path, let tensor):
            return "\(path): tensor '\(tensor)' appears twice; the file is corrupt."
        case .duplicateKey(let path, let key):
            return "\(path): metadata key '\(key)' appears twice; the file is corrupt."
        case .invalidAlignment(let path, let alignment):
            return "\(path): general.alignment = \(alignment) is not a positive power of two."
        case .malformedJSON(let path, let reason):
            return "\(path): malformed JSON (\(reason)). Re-download the file."
        case .malformedHeader(let path, let reason):
            return "\(path): malformed header: \(reason)."
        case .missingTensor(let path, let tensor):
            return "\(path): required tensor '\(tensor)' is missing; the model is incomplete or not a Llama-family model."
        case .missingKey(let path, let key):
            return "\(path): required key '\(key)' is missing."
        case .wrongKeyType(let path, let key, let expected, let found):
            return "\(path): key '\(key)' should be \(expected) but is \(found)."
        case .shapeMismatch(let path, let tensor, let expected, let found):
            return "\(path): tensor '\(tensor)' has shape \(found) but the configuration implies \(expected); "
                + "the weights and the configuration disagree."
        case .unexpectedTensors(let path, let tensors):
            let shown = tensors.prefix(5).joined(separator: ", ") + (tensors.count > 5 ? ", …" : "")
            return "\(path): \(tensors.count) tensor(s) that a Llama model does not use (\(shown)); "
                + "this architecture variant is not supported."
        case .invalidValue(let path, let key, let reason):
            return "\(path): '\(key)' is invalid: \(reason)."
        }
    }
}
