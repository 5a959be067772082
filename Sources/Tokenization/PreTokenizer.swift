/// How text is cut into pieces before BPE. Hand-written matchers for the regular expressions the
/// reference tokenizers use (Hugging Face `tokenizers` runs them with Oniguruma); each case's doc
/// gives the exact pattern, whose alternation order (first alternative that matches wins, greedy
/// quantifiers with backtracking) the matcher follows.
public enum PreTokenizer: String, Sendable, CaseIterable, Codable {
    /// GPT-2 / ByteLevel `use_regex`:
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    case gpt2 = "gpt2"
    /// `Digits(individual_digits: true)` then the GPT-2 pattern: the original SmolLM2
    /// `tokenizer.json`, and llama.cpp's `smollm` pre-type.
    case gpt2IndividualDigits = "gpt2-digits"
    /// Llama-3 `Split` pattern:
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    case llama3 = "llama3"

    /// The pieces of `text`, in order; concatenated they give `text` back.
    public func split(_ text: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        var ranges: [Range<Int>] = []
        switch self {
        case .gpt2:
            Self.splitGPT2(scalars, 0..<scalars.count, into: &ranges)
        case .gpt2IndividualDigits:
            var start = 0
            for i in 0..<scalars.count where scalars[i].isNumber {
                if start < i { Self.splitGPT2(scalars, start..<i, into: &ranges) }
                ranges.append(i..<(i + 1))
                start = i + 1
            }
            if start < scalars.count { Self.splitGPT2(scalars, start..<scalars.count, into: &ranges) }
        case .llama3:
            Self.splitLlama3(scalars, into: &ranges)
        }
        return ranges.map { r in
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars[r])
            return String(view)
        }
    }

    // MARK: - GPT-2

    static func splitGPT2(_ s: [Unicode.Scalar], _ bounds: Range<Int>, into out: inout [Range<Int>]) {
        let n = bounds.upperBound
        var i = bounds.lowerBound
        while i < n {
            let length = gpt2Match(s, at: i, end: n)
            out.append(i..<(i + length))
            i += length
        }
    }

    /// Length of the GPT-2 regex match at `i` (always ≥ 1: the last alternative matches any whitespace,
    /// and every non-whitespace character is a letter, a number or "other").
    static func gpt2Match(_ s: [Unicode.Scalar], at i: Int, end n: Int) -> Int {
        if let c = contraction(s, at: i, end: n, caseInsensitive: false) { return c }
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
        let j = (s[i] == " " && i + 1 < n) ? i + 1 : i
        for kind in [CharacterKind.letter, .number, .other] where s[j].kind == kind {
            if j == i + 1 || s[i].kind == kind { return run(of: kind, s, from: j, end: n) - i }
        }
        return whitespaceMatch(s, at: i, end: n)
    }

    // MARK: - Llama 3

    static func splitLlama3(_ s: [Unicode.Scalar], into out: inout [Range<Int>]) {
        let n = s.count
        var i = 0
        while i < n {
            let length = llama3Match(s, at: i, end: n)
            out.append(i..<(i + length))
            i += length
        }
    }

    static func llama3Match(_ s: [Unicode.Scalar], at i: Int, end n: Int) -> Int {
        if let c = contraction(s, at: i, end: n, caseInsensitive: true) { return c }
        // `[^\r\n\p{L}\p{N}]?\p{L}+`
        if s[i].kind == .letter { return run(of: .letter, s, from: i, end: n) - i }
        if !s[i].isNewline, s[i].kind != .number, i + 1 < n, s[i + 1].kind == .letter {
            return run(of: .letter, s, from: i + 1, end: n) - i
        }
        // `\p{N}{1,3}`
        if s[i].kind == .number { return min(run(of: .number, s, from: i, end: n) - i, 3) }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        let j = (s[i] == " " && i + 1 < n && s[i + 1].kind == .other) ? i + 1 : i
        if s[j].kind == .other {
            var k = run(of: .other, s, from: j, end: n)
            while k < n, s[k].isNewline { k += 1 }
            return k - i
        }
        // `\s*[\r\n]+`: the whitespace run up to and including its last newline.
        let k = run(of: .whitespace, s, from: i, end: n)
        if let lastNewline = (i..<k).last(where: { s[$0].isNewline }) { return lastNewline + 1 - i }
        return whitespaceMatch(s, at: i, end: n)
    }

    // MARK: - Shared pieces

    /// `'s|'t|'re|'ve|'m|'ll|'d`, optionally case-insensitive.
    static func contraction(_ s: [Unicode.Scalar], at i: Int, end n: Int, caseInsensitive: Bool) -> Int? {
        guard s[i] == "'", i + 1 < n else { return nil }
        func lower(_ c: Unicode.Scalar) -> Unicode.Scalar {
            caseInsensitive && ("A"..."Z").contains(c) ? Unicode.Scalar(c.value + 32)! : c
        }
        let a = lower(s[i + 1])
        if a == "s" || a == "t" || a == "m" || a == "d" { return 2 }
        guard i + 2 < n else { return nil }
        let b = lower(s[i + 2])
        if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") { return 3 }
        return nil
    }

    /// `\s+(?!\S)|\s+` at a whitespace character: the whole run if it ends the text or is one
    /// character long, otherwise all but its last character (which then prefixes the next piece).
    static func whitespaceMatch(_ s: [Unicode.Scalar], at i: Int, end n: Int) -> Int {
        let k = run(of: .whitespace, s, from: i, end: n)
        if k == n || k - i == 1 { return k - i }
        return k - 1 - i
    }

    static func run(of kind: CharacterKind, _ s: [Unicode.Scalar], from i: Int, end n: Int) -> Int {
        var k = i
        while k < n, s[k].kind == kind { k += 1 }
        return k
    }
}

/// The classes the pre-tokenizer regexes use: `\p{L}`, `\p{N}`, `\s` (Unicode White_Space), and the rest.
enum CharacterKind { case letter, number, whitespace, other }

extension Unicode.Scalar {
    var kind: CharacterKind {
        if value < 128 {  // ASCII fast path
            switch value {
            case 0x41...0x5A, 0x61...0x7A: return .letter
            case 0x30...0x39: return .number
            case 0x09...0x0D, 0x20: return .whitespace
            default: return .other
            }
        }
        if properties.isWhitespace { return .whitespace }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    var isNumber: Bool { kind == .number }
    var isNewline: Bool { self == "\r" || self == "\n" }
}
