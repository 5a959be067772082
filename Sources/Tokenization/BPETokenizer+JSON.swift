import Foundation
import ModelFormats

extension BPETokenizer {
    /// Builds the tokenizer from a Hugging Face `tokenizer.json` (model type BPE with a ByteLevel
    /// pre-tokenizer, optionally after `Digits` or the Llama-3 `Split`), and reads BOS/EOS from
    /// `tokenizer_config.json` beside it when present.
    public convenience init(tokenizerJSON path: String, preTokenizerOverride: PreTokenizer? = nil) throws {
        let root = try Self.readJSONObject(path)
        guard let model = root["model"] as? [String: Any] else {
            throw TokenizationError.missingField(source: path, field: "model")
        }
        let type = model["type"] as? String ?? "BPE"
        guard type == "BPE" else {
            throw TokenizationError.unsupported(source: path, what: "tokenizer model type", value: type, supported: ["BPE"])
        }
        if let byteFallback = model["byte_fallback"] as? Bool, byteFallback {
            throw TokenizationError.unsupported(source: path, what: "BPE option", value: "byte_fallback (SentencePiece-style BPE)",
                                                supported: ["byte-level BPE"])
        }
        if let normalizer = root["normalizer"], !(normalizer is NSNull) {
            throw TokenizationError.unsupported(source: path, what: "normalizer", value: Self.typeName(normalizer), supported: ["none"])
        }
        guard let vocab = model["vocab"] as? [String: Any] else {
            throw TokenizationError.missingField(source: path, field: "model.vocab")
        }
        var tokensByID: [Int: String] = [:]
        for (token, value) in vocab {
            guard let id = (value as? NSNumber)?.intValue, id >= 0 else {
                throw TokenizationError.inconsistent(source: path, reason: "vocab['\(token)'] is not a token id")
            }
            tokensByID[id] = token
        }
        var added: Set<Int> = []
        for entry in root["added_tokens"] as? [[String: Any]] ?? [] {
            guard let id = (entry["id"] as? NSNumber)?.intValue, let content = entry["content"] as? String else {
                throw TokenizationError.inconsistent(source: path, reason: "an added_tokens entry lacks id or content")
            }
            // A negative id would pass the contiguity check below in place of a missing one (found by
            // the tokenizer-json fuzz target: ids {-1, 1} count as two tokens, largest id 1).
            guard id >= 0 else {
                throw TokenizationError.inconsistent(source: path, reason: "added token '\(content)' has a negative id \(id)")
            }
            if let existing = tokensByID[id], existing != content {
                throw TokenizationError.inconsistent(source: path, reason: "added token \(id) '\(content)' differs from vocab '\(existing)'")
            }
            tokensByID[id] = content
            added.insert(id)
        }
        let count = (tokensByID.keys.max() ?? -1) + 1
        guard tokensByID.count == count else {
            throw TokenizationError.inconsistent(source: path, reason: "token ids are not contiguous (\(tokensByID.count) tokens, largest id \(count - 1))")
        }
        let tokens = (0..<count).map { tokensByID[$0]! }

        guard let rawMerges = model["merges"] as? [Any] else {
            throw TokenizationError.missingField(source: path, field: "model.merges")
        }
        // Merges are "left right" strings (older files) or ["left", "right"] pairs (newer files).
        let merges = try rawMerges.enumerated().map { index, merge throws(TokenizationError) -> (String, String) in
            if let string = merge as? String, let space = string.firstIndex(of: " ") {
                return (String(string[..<space]), String(string[string.index(after: space)...]))
            }
            if let pair = merge as? [String], pair.count == 2 { return (pair[0], pair[1]) }
            throw .inconsistent(source: path, reason: "merge #\(index) is neither \"a b\" nor [\"a\", \"b\"]")
        }

        let (preTokenizer, addPrefixSpace) = try Self.preTokenizer(from: root["pre_tokenizer"], source: path)

        var bos: Int?
        var eos: Int?
        var addBOS = false
        let configPath = (path as NSString).deletingLastPathComponent + "/tokenizer_config.json"
        if FileManager.default.fileExists(atPath: configPath) {
            let config = try Self.readJSONObject(configPath)
            func tokenID(_ key: String) -> Int? {
                let value = config[key]
                let content = (value as? String) ?? ((value as? [String: Any])?["content"] as? String)
                return content.flatMap { c in tokens.firstIndex(of: c) }
            }
            bos = tokenID("bos_token")
            eos = tokenID("eos_token")
            addBOS = config["add_bos_token"] as? Bool ?? false
        }
        try self.init(tokens: tokens, merges: merges, addedTokenIDs: added,
                      preTokenizer: preTokenizerOverride ?? preTokenizer,
                      bosTokenID: bos, eosTokenID: eos, addBOS: addBOS,
                      ignoreMerges: model["ignore_merges"] as? Bool ?? false,
                      addPrefixSpace: addPrefixSpace, source: path)
    }

    static let llama3Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    static func preTokenizer(from value: Any?, source: String) throws -> (PreTokenizer, addPrefixSpace: Bool) {
        guard let object = value as? [String: Any], let type = object["type"] as? String else {
            throw TokenizationError.missingField(source: source, field: "pre_tokenizer")
        }
        let supported = ["ByteLevel", "Sequence[Digits(individual), ByteLevel]", "Sequence[Split(Llama-3 regex), ByteLevel]"]
        switch type {
        case "ByteLevel":
            return (.gpt2, object["add_prefix_space"] as? Bool ?? false)
        case "Sequence":
            let steps = object["pretokenizers"] as? [[String: Any]] ?? []
            let types = steps.map { $0["type"] as? String ?? "?" }
            if types == ["Digits", "ByteLevel"], steps[0]["individual_digits"] as? Bool == true {
                return (.gpt2IndividualDigits, steps[1]["add_prefix_space"] as? Bool ?? false)
            }
            if types == ["Split", "ByteLevel"],
               let pattern = (steps[0]["pattern"] as? [String: Any])?["Regex"] as? String,
               pattern == llama3Pattern, steps[1]["use_regex"] as? Bool == false {
                return (.llama3, steps[1]["add_prefix_space"] as? Bool ?? false)
            }
            throw TokenizationError.unsupported(source: source, what: "pre-tokenizer", value: "Sequence\(types)", supported: supported)
        default:
            throw TokenizationError.unsupported(source: source, what: "pre-tokenizer", value: type, supported: supported)
        }
    }

    static func readJSONObject(_ path: String) throws -> [String: Any] {
        let data: Data
        do { data = try FileBytes.read(path) } catch {
            throw TokenizationError.missingField(source: path, field: "(file cannot be read: \(error))")
        }
        guard String(data: data, encoding: .utf8) != nil else {
            throw TokenizationError.inconsistent(source: path, reason: "the file is not valid UTF-8")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data), let root = object as? [String: Any] else {
            throw TokenizationError.inconsistent(source: path, reason: "malformed JSON (not a JSON object)")
        }
        return root
    }

    static func typeName(_ value: Any) -> String {
        (value as? [String: Any])?["type"] as? String ?? "\(value)"
    }
}
