import Foundation
import Testing
import ModelFormats
import TestSupport
import Tokenization

/// Real model: every case of `../shared/fixtures/smollm2/tokenizer_cases.json` (Hugging Face
/// transformers 5.23 / tokenizers 0.23 from the same GGUF) must be reproduced exactly.
@Suite("SmolLM2 tokenizer reproduces the reference fixtures", .serialized)
struct TokenizerFixtureTests {
    struct Case {
        var text: String
        var ids: [Int]
        var decoded: String
        var digitSplitIDs: [Int]?
    }

    static func load() throws -> (BPETokenizer, [Case], GGUFFile) {
        let gguf = try GGUFFile(path: Fixtures.requireSmolLM2())
        let tokenizer = try BPETokenizer(gguf: gguf)
        let json = try Fixtures.sharedJSON("tokenizer_cases.json")
        let cases = (json["cases"] as! [[String: Any]]).map {
            Case(text: $0["text"] as! String, ids: $0["ids"] as! [Int], decoded: $0["decoded"] as! String,
                 digitSplitIDs: $0["ids_with_original_digit_split_pretokenizer"] as? [Int])
        }
        return (tokenizer, cases, gguf)
    }

    @Test func everyFixtureCaseEncodesToTheReferenceIDsAndDecodesBack() throws {
        let (tokenizer, cases, _) = try Self.load()
        #expect(cases.count == 45)
        for c in cases {
            #expect(tokenizer.encode(c.text) == c.ids, "\(c.text.debugDescription)")
            #expect(try tokenizer.decode(c.ids) == c.decoded, "\(c.text.debugDescription)")
            #expect(c.decoded == c.text)
        }
    }

    @Test func digitSplittingPreTokenizerGivesTheOriginalSmolLM2IDs() throws {
        let gguf = try GGUFFile(path: Fixtures.requireSmolLM2())
        let tokenizer = try BPETokenizer(gguf: gguf, preTokenizerOverride: .gpt2IndividualDigits)
        let (_, cases, _) = try Self.load()
        let special = try #require(cases.first { $0.digitSplitIDs != nil })
        #expect(tokenizer.encode(special.text) == special.digitSplitIDs)
        // On every other case the two pre-tokenizers agree (no multi-character token holds a digit).
        for c in cases where c.digitSplitIDs == nil { #expect(tokenizer.encode(c.text) == c.ids, "\(c.text.debugDescription)") }
    }

    @Test func specialTokensAndFlagsComeFromTheGGUFMetadata() throws {
        let (tokenizer, _, _) = try Self.load()
        #expect(tokenizer.vocabularySize == 49152)
        #expect(tokenizer.bosTokenID == 1)
        #expect(tokenizer.eosTokenID == 2)
        #expect(tokenizer.addBOS == false)
        #expect(tokenizer.addedTokenIDs.count == 17)
        #expect(tokenizer.encode("<|im_start|>", addSpecialTokens: true) == [1])
    }

    @Test func bytesWithoutATokenAreSkippedAndCounted() throws {
        let (tokenizer, _, _) = try Self.load()
        // SmolLM2 has no token for byte 0x04; Hugging Face drops it ('a\x04b' → [81, 82]).
        #expect(tokenizer.missingBytes.contains(0x04))
        let encoding = tokenizer.encodeCounting("a\u{04}b")
        #expect(encoding.ids == [81, 82])
        #expect(encoding.skippedBytes == 1)
        #expect(tokenizer.encodeCounting("plain text").skippedBytes == 0)
    }

    @Test func tokenizerJSONWrittenFromTheGGUFEncodesIdentically() throws {
        let (tokenizer, cases, _) = try Self.load()
        let dir = TemporaryDirectory()
        try tokenizer.huggingFaceTokenizerJSON().write(to: URL(fileURLWithPath: dir.file("tokenizer.json")))
        try tokenizer.huggingFaceTokenizerConfig(chatTemplate: ChatTemplate(defaultSystemPrompt: "x"))
            .write(to: URL(fileURLWithPath: dir.file("tokenizer_config.json")))
        let reloaded = try BPETokenizer(tokenizerJSON: dir.file("tokenizer.json"))
        #expect(reloaded.tokens == tokenizer.tokens)
        #expect(reloaded.addedTokenIDs == tokenizer.addedTokenIDs)
        #expect(reloaded.bosTokenID == 1)
        #expect(reloaded.eosTokenID == 2)
        for c in cases { #expect(reloaded.encode(c.text) == c.ids, "\(c.text.debugDescription)") }
    }

    @Test func chatTemplateFromTheGGUFRendersTheReferencePrompt() throws {
        let (tokenizer, cases, gguf) = try Self.load()
        let template = try ChatTemplate(jinja: try gguf.requiredString("tokenizer.chat_template"), source: gguf.path)
        #expect(template.defaultSystemPrompt == "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        let rendered = template.render([.init(.system, "You are a helpful assistant."), .init(.user, "What is the capital of France?")])
        let reference = try #require(cases.last)
        #expect(rendered == reference.text)
        #expect(tokenizer.encode(rendered) == reference.ids)
        // Without a system message the template inserts its default one.
        #expect(template.render([.init(.user, "Hi")]) ==
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    }
}
