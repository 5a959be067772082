/// Problems with a tokenizer description or its use, each naming the source and what to do.
public enum TokenizationError: Error, Equatable, CustomStringConvertible, Sendable {
    case missingField(source: String, field: String)
    case unsupported(source: String, what: String, value: String, supported: [String])
    case inconsistent(source: String, reason: String)
    case unknownTokenID(Int, vocabularySize: Int)
    case noChatTemplate(source: String)

    public var description: String {
        switch self {
        case .missingField(let source, let field):
            return "\(source): tokenizer field '\(field)' is missing; the model file is incomplete."
        case .unsupported(let source, let what, let value, let supported):
            return "\(source): \(what) '\(value)' is not supported (supported: \(supported.joined(separator: ", ")))."
        case .inconsistent(let source, let reason):
            return "\(source): tokenizer is inconsistent: \(reason)."
        case .unknownTokenID(let id, let size):
            return "token id \(id) is outside the vocabulary (0..<\(size))."
        case .noChatTemplate(let source):
            return "\(source): the model has no chat template; run without --chat and write the prompt yourself."
        }
    }
}
