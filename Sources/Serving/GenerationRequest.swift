import Foundation
import Llama
import Tokenization

/// A parsed `POST /v1/chat/completions` or `/v1/completions` body (OpenAI's API reference): what
/// to generate and how, every field checked with an error that names it.
public struct GenerationRequest: Sendable {
    public enum Endpoint: String, Sendable {
        case chat = "/v1/chat/completions"
        case completion = "/v1/completions"
    }

    public var endpoint: Endpoint
    public var prompt: Prompt
    /// nil: until the context is full (chat's default); completions default to 16, as OpenAI's.
    public var maxTokens: Int?
    public var sampling: SamplingSettings
    /// Up to 4 sequences that end the reply (not included in it).
    public var stop: [String]
    public var stream: Bool
    /// `stream_options.include_usage`: a last chunk carries the usage.
    public var includeUsage: Bool
    public var model: String?

    /// Parses a request body. Unknown fields are ignored; `n` other than 1, and tools, are refused.
    public static func parse(_ body: Data, endpoint: Endpoint) throws(APIError) -> GenerationRequest {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: body) } catch {
            throw .invalid("the body is not valid JSON (\(Self.reason(error))); send a JSON object")
        }
        guard let json = object as? [String: Any] else { throw .invalid("the body must be a JSON object") }
        let prompt: Prompt
        switch endpoint {
        case .chat: prompt = .chat(try messages(json["messages"]))
        case .completion: prompt = .text(try completionPrompt(json["prompt"]))
        }
        var maxTokens = try integer(json, "max_completion_tokens")
        if maxTokens == nil { maxTokens = try integer(json, "max_tokens") }
        if endpoint == .completion && maxTokens == nil { maxTokens = 16 }
        if let m = maxTokens, m < 1 {
            throw .invalid("max_tokens must be at least 1 (got \(m))", param: json["max_completion_tokens"] != nil ? "max_completion_tokens" : "max_tokens")
        }
        let temperature = try number(json, "temperature") ?? 1
        guard temperature >= 0 && temperature <= 2 else { throw .invalid("temperature must be between 0 and 2 (got \(temperature))", param: "temperature") }
        let topP = try number(json, "top_p") ?? 1
        guard topP > 0 && topP <= 1 else { throw .invalid("top_p must be in (0, 1] (got \(topP))", param: "top_p") }
        let seed = try integer(json, "seed") ?? 0
        if let n = try integer(json, "n"), n != 1 { throw .invalid("n must be 1: this server returns one choice per request", param: "n") }
        if json["tools"] != nil && !(json["tools"] is NSNull) { throw .invalid("tools are not supported by this server", param: "tools") }
        let stream = try boolean(json, "stream") ?? false
        var includeUsage = false
        if let options = json["stream_options"], !(options is NSNull) {
            guard let options = options as? [String: Any] else { throw .invalid("stream_options must be an object", param: "stream_options") }
            includeUsage = try boolean(options, "include_usage", path: "stream_options.include_usage") ?? false
        }
        let model = try string(json, "model")
        return GenerationRequest(endpoint: endpoint, prompt: prompt, maxTokens: maxTokens,
                                 sampling: SamplingSettings(temperature: Float(temperature), topK: 0, topP: Float(topP), seed: UInt64(bitPattern: Int64(seed))),
                                 stop: try stops(json["stop"]), stream: stream, includeUsage: includeUsage, model: model)
    }

    // MARK: - Fields

    static func reason(_ error: any Error) -> String {
        let text = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
        return text.count > 120 ? String(text.prefix(117)) + "..." : text
    }

    static func messages(_ value: Any?) throws(APIError) -> [ChatTemplate.Message] {
        guard let value, !(value is NSNull) else { throw .invalid("messages is required: an array of {\"role\", \"content\"}", param: "messages") }
        guard let list = value as? [Any] else { throw .invalid("messages must be an array", param: "messages") }
        guard !list.isEmpty else { throw .invalid("messages must not be empty", param: "messages") }
        var out: [ChatTemplate.Message] = []
        for (i, item) in list.enumerated() {
            let path = "messages[\(i)]"
            guard let message = item as? [String: Any] else { throw .invalid("\(path) must be an object with role and content", param: path) }
            guard let roleName = message["role"] as? String else { throw .invalid("\(path).role must be a string", param: path + ".role") }
            let role: ChatTemplate.Message.Role
            switch roleName {
            case "system", "developer": role = .system
            case "user": role = .user
            case "assistant": role = .assistant
            default:
                throw .invalid("\(path).role '\(roleName)' is not supported (system, developer, user, assistant)", param: path + ".role")
            }
            out.append(ChatTemplate.Message(role, try content(message["content"], path: path + ".content")))
        }
        return out
    }

    /// A string, or an array of text parts `{"type": "text", "text": ...}` (joined).
    static func content(_ value: Any?, path: String) throws(APIError) -> String {
        if let text = value as? String { return text }
        guard let parts = value as? [Any] else { throw .invalid("\(path) must be a string or an array of text parts", param: path) }
        var text = ""
        for (i, part) in parts.enumerated() {
            guard let part = part as? [String: Any], part["type"] as? String == "text", let piece = part["text"] as? String else {
                throw .invalid("\(path)[\(i)] must be {\"type\": \"text\", \"text\": ...} (this model reads text only)", param: "\(path)[\(i)]")
            }
            text += piece
        }
        return text
    }

    static func completionPrompt(_ value: Any?) throws(APIError) -> String {
        if let text = value as? String { return text }
        if let list = value as? [Any], list.count == 1, let text = list[0] as? String { return text }
        if value == nil || value is NSNull { throw .invalid("prompt is required: a string", param: "prompt") }
        throw .invalid("prompt must be a string (or an array of one string)", param: "prompt")
    }

    static func stops(_ value: Any?) throws(APIError) -> [String] {
        guard let value, !(value is NSNull) else { return [] }
        if let one = value as? String { return one.isEmpty ? [] : [one] }
        guard let list = value as? [Any], list.count <= 4, list.allSatisfy({ $0 is String }) else {
            throw .invalid("stop must be a string or an array of up to 4 strings", param: "stop")
        }
        return (list as! [String]).filter { !$0.isEmpty }
    }

    /// JSON numbers arrive as NSNumber, and so do true and false (`value is Bool` holds for 0 and 1
    /// too): a boolean's Objective-C type is "c".
    static func isBoolean(_ value: Any) -> Bool {
        guard let n = value as? NSNumber else { return false }
        return String(cString: n.objCType) == "c"
    }

    static func integer(_ json: [String: Any], _ key: String) throws(APIError) -> Int? {
        guard let value = json[key], !(value is NSNull) else { return nil }
        guard !isBoolean(value), let n = value as? NSNumber, n.doubleValue == n.doubleValue.rounded(), abs(n.doubleValue) < 9e15 else {
            throw .invalid("\(key) must be an integer", param: key)
        }
        return n.intValue
    }

    static func number(_ json: [String: Any], _ key: String) throws(APIError) -> Double? {
        guard let value = json[key], !(value is NSNull) else { return nil }
        guard !isBoolean(value), let n = value as? NSNumber, n.doubleValue.isFinite else { throw .invalid("\(key) must be a number", param: key) }
        return n.doubleValue
    }

    static func boolean(_ json: [String: Any], _ key: String, path: String? = nil) throws(APIError) -> Bool? {
        guard let value = json[key], !(value is NSNull) else { return nil }
        guard isBoolean(value), let b = value as? Bool else { throw .invalid("\(path ?? key) must be true or false", param: path ?? key) }
        return b
    }

    static func string(_ json: [String: Any], _ key: String) throws(APIError) -> String? {
        guard let value = json[key], !(value is NSNull) else { return nil }
        guard let s = value as? String else { throw .invalid("\(key) must be a string", param: key) }
        return s
    }
}
