import Testing
import Tokenization

/// Expected splits were produced by Python's `regex` module running the exact GPT-2 and Llama-3
/// patterns (`regex.findall`), then checked by hand against the alternation rules.
@Suite("Pre-tokenizers match the reference regular expressions")
struct PreTokenizerTests {
    static let cases: [(text: String, gpt2: [String], llama3: [String])] = [
        ("Hello world", ["Hello", " world"], ["Hello", " world"]),
        ("  two  spaces   x", [" ", " two", " ", " spaces", "  ", " x"], [" ", " two", " ", " spaces", "  ", " x"]),
        ("I'm here, they'RE not", ["I", "'m", " here", ",", " they", "'", "RE", " not"],
         ["I", "'m", " here", ",", " they", "'RE", " not"]),
        ("12345 and 3.14", ["12345", " and", " 3", ".", "14"], ["123", "45", " and", " ", "3", ".", "14"]),
        ("line\n\n  next\r\n\tend  ", ["line", "\n\n ", " next", "\r\n", "\t", "end", "  "],
         ["line", "\n\n", " ", " next", "\r\n", "\tend", "  "]),
        ("café ½ x² ①", ["café", " ½", " x", "²", " ①"], ["café", " ", "½", " x", "²", " ", "①"]),
        ("  ", ["  "], ["  "]),
        ("a\u{a0}b\u{3000}c", ["a", "\u{a0}", "b", "\u{3000}", "c"], ["a", "\u{a0}b", "\u{3000}c"]),
        ("$$$ (ok)...\n\n", ["$$$", " (", "ok", ")...", "\n\n"], ["$$$", " (", "ok", ")...\n\n"]),
        ("'s 'S 'll", ["'s", " '", "S", " '", "ll"], ["'s", " '", "S", " '", "ll"]),
    ]

    @Test(arguments: cases.indices)
    func gpt2PatternSplitsLikeTheRegex(index: Int) {
        let c = Self.cases[index]
        #expect(PreTokenizer.gpt2.split(c.text) == c.gpt2)
    }

    @Test(arguments: cases.indices)
    func llama3PatternSplitsLikeTheRegex(index: Int) {
        let c = Self.cases[index]
        #expect(PreTokenizer.llama3.split(c.text) == c.llama3)
    }

    @Test func individualDigitsIsolatesEveryNumeral() {
        #expect(PreTokenizer.gpt2IndividualDigits.split("ab 123 ½x") == ["ab", " ", "1", "2", "3", " ", "½", "x"])
    }

    @Test func piecesAlwaysConcatenateToTheText() {
        let text = "Mixed: naïve café 東京 🚀 42\n\n\t x²  'll"
        for p in PreTokenizer.allCases { #expect(p.split(text).joined() == text) }
    }

    @Test func byteLevelMappingIsABijectionOnAllBytes() {
        let bytes = (0...255).map(UInt8.init)
        #expect(ByteLevel.decode(ByteLevel.encode(bytes)) == bytes)
        #expect(Set(ByteLevel.characterOf).count == 256)
        #expect(ByteLevel.encode([0x20]) == "Ġ")
        #expect(ByteLevel.encode([0x0A]) == "Ċ")
    }
}
