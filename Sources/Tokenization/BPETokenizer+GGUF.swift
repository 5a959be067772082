import ModelFormats

extension BPETokenizer {
    /// GGUF `tokenizer.ggml.token_type` values (llama.cpp `llama_token_type`).
    enum GGUFTokenType: Int {
        case undefined = 0, normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    /// Builds the tokenizer from GGUF metadata (`tokenizer.ggml.*`).
    ///
    /// Pre-tokenizer: `tokenizer.ggml.pre` names it. For `smollm` llama.cpp splits digits first, but
    /// Hugging Face transformers, loading the same GGUF, uses the plain GPT-2 regex, and the
    /// reference fixtures follow transformers; so `smollm` maps to `.gpt2` by default and
    /// `preTokenizerOverride: .gpt2IndividualDigits` gives llama.cpp's behaviour. The two differ only
    /// on non-ASCII numerals (docs/TOKENIZER.md).
    public convenience init(gguf: GGUFFile, preTokenizerOverride: PreTokenizer? = nil) throws {
        let source = gguf.path
        let model = try gguf.requiredString("tokenizer.ggml.model")
        guard model == "gpt2" else {
            throw TokenizationError.unsupported(source: source, what: "tokenizer model (tokenizer.ggml.model)", value: model,
                                                supported: ["gpt2 (byte-level BPE)"])
        }
        guard let tokens = try gguf.stringArray("tokenizer.ggml.tokens") else {
            throw TokenizationError.missingField(source: source, field: "tokenizer.ggml.tokens")
        }
        guard let mergeStrings = try gguf.stringArray("tokenizer.ggml.merges") else {
            throw TokenizationError.missingField(source: source, field: "tokenizer.ggml.merges")
        }
        let types = try gguf.integerArray("tokenizer.ggml.token_type")
        if let types, types.count != tokens.count {
            throw TokenizationError.inconsistent(source: source, reason: "\(types.count) token types for \(tokens.count) tokens")
        }
        var added: Set<Int> = []
        for (id, type) in (types ?? []).enumerated()
        where type == GGUFTokenType.control.rawValue || type == GGUFTokenType.userDefined.rawValue {
            added.insert(id)
        }
        let merges = try mergeStrings.enumerated().map { index, merge throws(TokenizationError) -> (String, String) in
            guard let space = merge.firstIndex(of: " ") else {
                throw .inconsistent(source: source, reason: "merge #\(index) '\(merge)' has no space")
            }
            return (String(merge[..<space]), String(merge[merge.index(after: space)...]))
        }
        let pre = gguf.value("tokenizer.ggml.pre")?.string ?? "default"
        let preTokenizer: PreTokenizer
        switch pre {
        case "default", "gpt2", "gpt-2", "smollm": preTokenizer = .gpt2
        case "llama-bpe", "llama3", "llama-v3": preTokenizer = .llama3
        default:
            if let preTokenizerOverride {
                preTokenizer = preTokenizerOverride
            } else {
                throw TokenizationError.unsupported(source: source, what: "pre-tokenizer (tokenizer.ggml.pre)", value: pre,
                                                    supported: ["default", "gpt2", "smollm", "llama-bpe"])
            }
        }
        func id(_ key: String) throws -> Int? {
            guard let value = gguf.value(key) else { return nil }
            guard let id = value.integer, id >= 0, id < tokens.count else {
                throw TokenizationError.inconsistent(source: source, reason: "\(key) = \(value.summary) is not a token id")
            }
            return id
        }
        try self.init(
            tokens: tokens, merges: merges, addedTokenIDs: added,
            preTokenizer: preTokenizerOverride ?? preTokenizer,
            bosTokenID: try id("tokenizer.ggml.bos_token_id"), eosTokenID: try id("tokenizer.ggml.eos_token_id"),
            addBOS: gguf.value("tokenizer.ggml.add_bos_token")?.bool ?? false,
            ignoreMerges: preTokenizer == .llama3,
            addPrefixSpace: gguf.value("tokenizer.ggml.add_space_prefix")?.bool ?? false,
            source: source)
    }
}
