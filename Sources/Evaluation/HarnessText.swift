import Foundation

/// lm-evaluation-harness's text preprocessing, reproduced exactly (Python string semantics).
public enum HarnessText {
    /// Python `str.capitalize()`: the first character upper-cased, every other one lower-cased.
    public static func pythonCapitalize(_ s: String) -> String {
        guard let first = s.first else { return s }
        return first.uppercased() + s.dropFirst().lowercased()
    }

    /// `hellaswag/utils.py` `preprocess`: strip; " [title]" → ". "; remove every `\[.*?\]`
    /// (non-greedy, within a line); "  " → " " (one pass, as Python's replace).
    public static func hellaswagPreprocess(_ text: String) -> String {
        var t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        t = t.replacingOccurrences(of: " [title]", with: ". ")
        t = removeBracketed(t)
        return t.replacingOccurrences(of: "  ", with: " ")
    }

    /// `re.sub("\\[.*?\\]", "", t)`: each "[" up to the nearest "]" on the same line is removed;
    /// a "[" without a closing "]" before the next newline stays.
    static func removeBracketed(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        outer: while i < scalars.count {
            if scalars[i] == "[" {
                var j = i + 1
                while j < scalars.count && scalars[j] != "\n" {
                    if scalars[j] == "]" {
                        i = j + 1
                        continue outer
                    }
                    j += 1
                }
            }
            out.append(scalars[i])
            i += 1
        }
        return String(out)
    }

    /// `mathqa/utils.py`: `re.findall(r"[abcd] \) .*?, |e \) .*?$", options)`, then each match
    /// `c[4:].rstrip(" ,")`.
    public static func mathqaChoices(_ options: String) -> [String] {
        let pattern = try! NSRegularExpression(pattern: "[abcd] \\) .*?, |e \\) .*?$")
        let ns = options as NSString
        return pattern.matches(in: options, range: NSRange(location: 0, length: ns.length)).map { match in
            let m = ns.substring(with: match.range)
            var choice = String(m.unicodeScalars.dropFirst(4))
            while let last = choice.unicodeScalars.last, last == " " || last == "," { choice.unicodeScalars.removeLast() }
            return choice
        }
    }

    /// The length `acc_norm` divides by: Python `len(choice)`, Unicode scalars (not grapheme clusters).
    public static func pythonLength(_ s: String) -> Int { s.unicodeScalars.count }
}
