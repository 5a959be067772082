import Foundation

extension BPETokenizer {
    /// A Hugging Face `tokenizer.json` describing this tokenizer (used when a checkpoint made from a
    /// GGUF needs tokenizer files). Loading it back with `init(tokenizerJSON:)` gives the same encodings.
    public func huggingFaceTokenizerJSON() throws -> Data {
        var vocab: [String: Int] = [:]
        for (id, token) in tokens.enumerated() where !addedTokenIDs.contains(id) && vocab[token] == nil { vocab[token] = id }
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": addPrefixSpace, "trim_offsets": false, "use_regex": true]
        let preTokenizer: [String: Any]
        switch self.preTokenizer {
        case .gpt2:
            preTokenizer = byteLevel
        case .gpt2IndividualDigits:
            preTokenizer = ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true], byteLevel]]
        case .llama3:
            var plain = byteLevel
            plain["use_regex"] = false
            preTokenizer = ["type": "Sequence", "pretokenizers": [
                ["type": "Split", "pattern": ["Regex": Self.llama3Pattern], "behavior": "Isolated", "invert": false], plain,
            ]]
        }
        let added: [[String: Any]] = addedTokenIDs.sorted().map { id in
            ["id": id, "content": tokens[id], "single_word": false, "lstrip": false, "rstrip": false,
             "normalized": false, "special": true]
        }
        let root: [String: Any] = [
            "version": "1.0",
            "truncation": NSNull(), "padding": NSNull(), "normalizer": NSNull(), "post_processor": NSNull(),
            "added_tokens": added,
            "pre_tokenizer": preTokenizer,
            "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
            "model": [
                "type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": "",
                "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": ignoreMerges,
                "vocab": vocab, "merges": merges.map { [$0.0, $0.1] },
            ] as [String: Any],
        ]
        return try JSONSerialization.data(withJSONObject: root, options: [.sortedKeys, .withoutEscapingSlashes])
    }

    /// `tokenizer_config.json`: special tokens, BOS policy and the chat template.
    public func huggingFaceTokenizerConfig(chatTemplate: ChatTemplate?) throws -> Data {
        var config: [String: Any] = ["add_bos_token": addBOS, "clean_up_tokenization_spaces": false]
        if let bosTokenID { config["bos_token"] = tokens[bosTokenID] }
        if let eosTokenID { config["eos_token"] = tokens[eosTokenID] }
        if let chatTemplate { config["chat_template"] = chatTemplate.jinja }
        return try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys, .withoutEscapingSlashes])
    }
}

extension ChatTemplate {
    /// The ChatML Jinja template this value renders (SmolLM2's, with this default system prompt).
    public var jinja: String {
        var t = "{% for message in messages %}"
        if let defaultSystemPrompt {
            t += "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n\(defaultSystemPrompt)<|im_end|>\n' }}{% endif %}"
        }
        t += "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
        t += "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
        return t
    }
}
