import Foundation
import Testing
import TestSupport
import Tokenization

@Suite("Tokenizer descriptions and their errors")
struct TokenizerDescriptionTests {
    @Test func mergesApplyInRankOrder() throws {
        let tiny = TinyLlama()
        let tokenizer = try tiny.tokenizer()
        // "Ġthe" needs "h e" (rank 0), "Ġ t" (rank 1), then "Ġt he" (rank 2).
        let the = try #require(tokenizer.id(of: "Ġthe"))
        #expect(tokenizer.encode(" the") == [the])
        // "hell": "h e" first, then "l l", then "e ll" cannot apply because "he" consumed the e.
        let ids = tokenizer.encode("hell")
        #expect(ids.map { tokenizer.tokens[$0] } == ["he", "ll"])
        #expect(try tokenizer.decode(ids) == "hell")
    }

    @Test func specialTokensMatchLeftmostLongestInsideText() throws {
        let tokenizer = try TinyLlama().tokenizer()
        // Byte tokens sit at their byte value; <|endoftext|> 262, <|im_start|> 263, <|im_end|> 264.
        #expect(tokenizer.encode("a<|im_start|>b<|im_end|>") == [97, 263, 98, 264])
        #expect(tokenizer.encode("<|im_end|><|im_end|>") == [264, 264])
    }

    @Test func decodingAnUnknownIDIsAnError() throws {
        let tokenizer = try TinyLlama().tokenizer()
        #expect(throws: TokenizationError.unknownTokenID(9999, vocabularySize: 265)) { try tokenizer.decode([9999]) }
    }

    @Test func cutMultibyteCharactersDecodeToTheReplacementCharacter() throws {
        let tokenizer = try TinyLlama().tokenizer()
        let ids = tokenizer.encode("é")  // two byte tokens
        #expect(ids.count == 2)
        #expect(try tokenizer.decode([ids[0]]) == "\u{FFFD}")
    }

    func writeJSON(_ text: String) -> (TemporaryDirectory, String) {
        let dir = TemporaryDirectory()
        try! Data(text.utf8).write(to: URL(fileURLWithPath: dir.file("tokenizer.json")))
        return (dir, dir.file("tokenizer.json"))
    }

    @Test func malformedTokenizerJSONIsReported() {
        let (dir, path) = writeJSON("{\"model\": {")
        _ = dir
        #expect(throws: TokenizationError.inconsistent(source: path, reason: "malformed JSON (not a JSON object)")) {
            try BPETokenizer(tokenizerJSON: path)
        }
    }

    @Test func unsupportedModelTypeIsNamed() {
        let (dir, path) = writeJSON(#"{"model": {"type": "Unigram", "vocab": []}, "pre_tokenizer": null}"#)
        _ = dir
        #expect(throws: TokenizationError.unsupported(source: path, what: "tokenizer model type", value: "Unigram", supported: ["BPE"])) {
            try BPETokenizer(tokenizerJSON: path)
        }
    }

    @Test func unsupportedPreTokenizerIsNamed() {
        let (dir, path) = writeJSON(#"{"model": {"type": "BPE", "vocab": {}, "merges": []}, "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}}"#)
        _ = dir
        do {
            _ = try BPETokenizer(tokenizerJSON: path)
            Issue.record("accepted")
        } catch let error as TokenizationError {
            guard case .unsupported(_, "pre-tokenizer", "Whitespace", _) = error else { Issue.record("\(error)"); return }
        } catch { Issue.record("\(error)") }
    }

    /// Found by the tokenizer-json fuzz target (fuzz/regressions/tokenizer-json): ids {-1, 1} passed
    /// the contiguity check as two tokens with largest id 1, and id 0 was then force-unwrapped.
    @Test func anAddedTokenWithANegativeIDIsRefusedByName() {
        let (dir, path) = writeJSON(#"{"model": {"type": "BPE", "vocab": {"b": 1}, "merges": []}, "normalizer": null, "pre_tokenizer": null, "added_tokens": [{"id": -1, "content": "a"}]}"#)
        _ = dir
        #expect(throws: TokenizationError.inconsistent(source: path, reason: "added token 'a' has a negative id -1")) {
            try BPETokenizer(tokenizerJSON: path)
        }
    }

    @Test func invalidUTF8TokenizerJSONIsReported() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("tokenizer.json")
        try Data([0x7B, 0xFF, 0x7D]).write(to: URL(fileURLWithPath: path))
        #expect(throws: TokenizationError.inconsistent(source: path, reason: "the file is not valid UTF-8")) {
            try BPETokenizer(tokenizerJSON: path)
        }
    }

    @Test func mergeOfUnknownTokensIsAnError() {
        #expect(throws: TokenizationError.self) {
            try BPETokenizer(tokens: (0..<256).map { String(ByteLevel.characterOf[$0]) }, merges: [("a", "b")],
                             addedTokenIDs: [], preTokenizer: .gpt2, bosTokenID: nil, eosTokenID: nil, source: "test")
        }
    }

    @Test func nonChatMLTemplateIsRejectedWithTheSupportedForm() {
        #expect(throws: TokenizationError.self) {
            try ChatTemplate(jinja: "{{ bos_token }}[INST] {{ message }} [/INST]", source: "x")
        }
    }
}
