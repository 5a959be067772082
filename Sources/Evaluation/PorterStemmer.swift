/// The Porter stemmer as Google's `rouge-score` runs it with `use_stemmer=True`: NLTK's
/// `PorterStemmer()` in its default `NLTK_EXTENSIONS` mode (Porter 1980, "An algorithm for suffix
/// stripping", plus NLTK's irregular forms and its changes to steps 1a, 1b, 1c and 2). Written
/// from the published algorithm and NLTK's documented departures, rule by rule; `RougeTests`
/// compares it with NLTK on a word list and `rouge-score` end to end.
///
/// Words are lowercase ASCII letters and digits (what ROUGE's tokeniser leaves); a digit counts as
/// a consonant, as in NLTK.
public enum PorterStemmer {
    public static func stem(_ word: String) -> String {
        let lower = word.lowercased()
        if let irregular = irregularForms[lower] { return irregular }
        var w = Array(lower.utf8)
        // NLTK: words of one or two letters are left alone.
        if w.count <= 2 { return lower }
        w = step1a(w)
        w = step1b(w)
        w = step1c(w)
        w = step2(w)
        w = step3(w)
        w = step4(w)
        w = step5a(w)
        w = step5b(w)
        return String(decoding: w, as: UTF8.self)
    }

    /// NLTK's pool of irregular forms (inflection → stem).
    static let irregularForms: [String: String] = [
        "sky": "sky", "skies": "sky", "dying": "die", "lying": "lie", "tying": "tie", "news": "news",
        "innings": "inning", "inning": "inning", "outings": "outing", "outing": "outing",
        "cannings": "canning", "canning": "canning", "howe": "howe", "proceed": "proceed",
        "exceed": "exceed", "succeed": "succeed",
    ]

    /// A word as ASCII bytes (the steps are exposed for tests against the paper's examples).
    public typealias Word = [UInt8]

    // MARK: - Conditions of the paper

    private static func isVowelLetter(_ c: UInt8) -> Bool {
        c == UInt8(ascii: "a") || c == UInt8(ascii: "e") || c == UInt8(ascii: "i") || c == UInt8(ascii: "o") || c == UInt8(ascii: "u")
    }

    /// Consonant flags, left to right: a `y` is a consonant at the start or after a vowel.
    static func consonants(_ w: some Collection<UInt8>) -> [Bool] {
        var flags: [Bool] = []
        flags.reserveCapacity(w.count)
        for c in w {
            if isVowelLetter(c) {
                flags.append(false)
            } else if c == UInt8(ascii: "y") {
                flags.append(flags.last.map { !$0 } ?? true)
            } else {
                flags.append(true)
            }
        }
        return flags
    }

    /// m in [C](VC)^m[V]: the number of vowel-to-consonant transitions.
    public static func measure(_ w: some Collection<UInt8>) -> Int {
        let flags = consonants(w)
        var m = 0
        for i in flags.indices.dropFirst() where !flags[i - 1] && flags[i] { m += 1 }
        return m
    }

    private static func containsVowel(_ w: some Collection<UInt8>) -> Bool { consonants(w).contains(false) }

    /// *d: ends with a double consonant.
    private static func endsDoubleConsonant(_ w: Word) -> Bool {
        w.count >= 2 && w[w.count - 1] == w[w.count - 2] && consonants(w).last!
    }

    /// *o: ends consonant–vowel–consonant, the last not w, x or y; NLTK also accepts a two-letter
    /// vowel–consonant word.
    private static func endsCVC(_ w: Word) -> Bool {
        let f = consonants(w), n = w.count
        if n >= 3 && f[n - 3] && !f[n - 2] && f[n - 1] && ![UInt8(ascii: "w"), UInt8(ascii: "x"), UInt8(ascii: "y")].contains(w[n - 1]) {
            return true
        }
        return n == 2 && !f[0] && f[1]
    }

    private static func ends(_ w: Word, _ suffix: String) -> Bool {
        let s = Array(suffix.utf8)
        return w.count >= s.count && Array(w[(w.count - s.count)...]) == s
    }

    private static func dropping(_ w: Word, _ count: Int) -> Word { Array(w[..<(w.count - count)]) }

    /// One rule: (suffix, replacement, condition on the stem); nil condition = always.
    struct Rule {
        var suffix: String
        var replacement: String
        var condition: ((Word) -> Bool)?
    }

    /// The first rule whose suffix matches decides: applied if its condition holds on the stem,
    /// otherwise the word is returned unchanged (no later rule is tried).
    private static func applyFirst(_ w: Word, _ rules: [Rule]) -> Word {
        for rule in rules where ends(w, rule.suffix) {
            let stem = dropping(w, rule.suffix.utf8.count)
            return rule.condition.map { $0(stem) } ?? true ? stem + Array(rule.replacement.utf8) : w
        }
        return w
    }

    private static let positiveMeasure: @Sendable (Word) -> Bool = { measure($0) > 0 }
    private static let measureAboveOne: @Sendable (Word) -> Bool = { measure($0) > 1 }

    // MARK: - Steps

    /// SSES → SS, IES → I, SS → SS, S → ''; NLTK: a four-letter -ies word keeps -ie ("dies" → "die").
    public static func step1a(_ w: Word) -> Word {
        if w.count == 4 && ends(w, "ies") { return dropping(w, 3) + Array("ie".utf8) }
        return applyFirst(w, [Rule(suffix: "sses", replacement: "ss"), Rule(suffix: "ies", replacement: "i"),
                              Rule(suffix: "ss", replacement: "ss"), Rule(suffix: "s", replacement: "")])
    }

    /// (m>0) EED → EE; (*v*) ED → ''; (*v*) ING → ''; then AT → ATE, BL → BLE, IZ → IZE, a double
    /// consonant other than l, s, z → single, (m=1 and *o) → +E. NLTK: -ied → -ie in a four-letter
    /// word, else -i.
    public static func step1b(_ w: Word) -> Word {
        if ends(w, "ied") { return dropping(w, 3) + Array((w.count == 4 ? "ie" : "i").utf8) }
        if ends(w, "eed") {
            let stem = dropping(w, 3)
            return measure(stem) > 0 ? stem + Array("ee".utf8) : w
        }
        var stem: Word?
        for suffix in ["ed", "ing"] where ends(w, suffix) {
            let candidate = dropping(w, suffix.utf8.count)
            if containsVowel(candidate) {
                stem = candidate
                break
            }
        }
        guard let s = stem else { return w }
        for (suffix, replacement) in [("at", "ate"), ("bl", "ble"), ("iz", "ize")] where ends(s, suffix) {
            return dropping(s, 2) + Array(replacement.utf8)
        }
        if endsDoubleConsonant(s) {
            let last = s[s.count - 1]
            return [UInt8(ascii: "l"), UInt8(ascii: "s"), UInt8(ascii: "z")].contains(last) ? s : dropping(s, 1)
        }
        return measure(s) == 1 && endsCVC(s) ? s + [UInt8(ascii: "e")] : s
    }

    /// Y → I; NLTK: only when the y follows a consonant that is not the word's first letter
    /// ("happy" → "happi", "enjoy" and "by" unchanged, "spy" → "spi").
    public static func step1c(_ w: Word) -> Word {
        applyFirst(w, [Rule(suffix: "y", replacement: "i", condition: { $0.count > 1 && consonants($0).last! })])
    }

    public static func step2(_ w: Word) -> Word {
        // NLTK: ALLI → AL first, and the result through step 2 again.
        if ends(w, "alli") && measure(dropping(w, 4)) > 0 { return step2(dropping(w, 4) + Array("al".utf8)) }
        let p = positiveMeasure
        var rules = [
            Rule(suffix: "ational", replacement: "ate", condition: p), Rule(suffix: "tional", replacement: "tion", condition: p),
            Rule(suffix: "enci", replacement: "ence", condition: p), Rule(suffix: "anci", replacement: "ance", condition: p),
            Rule(suffix: "izer", replacement: "ize", condition: p),
            Rule(suffix: "bli", replacement: "ble", condition: p),  // NLTK's form of ABLI → ABLE
            Rule(suffix: "alli", replacement: "al", condition: p), Rule(suffix: "entli", replacement: "ent", condition: p),
            Rule(suffix: "eli", replacement: "e", condition: p), Rule(suffix: "ousli", replacement: "ous", condition: p),
            Rule(suffix: "ization", replacement: "ize", condition: p), Rule(suffix: "ation", replacement: "ate", condition: p),
            Rule(suffix: "ator", replacement: "ate", condition: p), Rule(suffix: "alism", replacement: "al", condition: p),
            Rule(suffix: "iveness", replacement: "ive", condition: p), Rule(suffix: "fulness", replacement: "ful", condition: p),
            Rule(suffix: "ousness", replacement: "ous", condition: p), Rule(suffix: "aliti", replacement: "al", condition: p),
            Rule(suffix: "iviti", replacement: "ive", condition: p), Rule(suffix: "biliti", replacement: "ble", condition: p),
            Rule(suffix: "fulli", replacement: "ful", condition: p),
        ]
        // NLTK: LOGI → LOG with the l counted in the stem ("geologi" → "geolog").
        rules.append(Rule(suffix: "logi", replacement: "log", condition: { _ in measure(dropping(w, 3)) > 0 }))
        return applyFirst(w, rules)
    }

    public static func step3(_ w: Word) -> Word {
        let p = positiveMeasure
        return applyFirst(w, [
            Rule(suffix: "icate", replacement: "ic", condition: p), Rule(suffix: "ative", replacement: "", condition: p),
            Rule(suffix: "alize", replacement: "al", condition: p), Rule(suffix: "iciti", replacement: "ic", condition: p),
            Rule(suffix: "ical", replacement: "ic", condition: p), Rule(suffix: "ful", replacement: "", condition: p),
            Rule(suffix: "ness", replacement: "", condition: p),
        ])
    }

    public static func step4(_ w: Word) -> Word {
        let q = measureAboveOne
        var rules = ["al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent"].map {
            Rule(suffix: $0, replacement: "", condition: q)
        }
        rules.append(Rule(suffix: "ion", replacement: "", condition: { stem in
            measure(stem) > 1 && [UInt8(ascii: "s"), UInt8(ascii: "t")].contains(stem.last!)
        }))
        rules += ["ou", "ism", "ate", "iti", "ous", "ive", "ize"].map { Rule(suffix: $0, replacement: "", condition: q) }
        return applyFirst(w, rules)
    }

    /// (m>1) E → ''; (m=1 and not *o) E → '' (both conditions tried).
    public static func step5a(_ w: Word) -> Word {
        guard ends(w, "e") else { return w }
        let stem = dropping(w, 1)
        let m = measure(stem)
        return m > 1 || (m == 1 && !endsCVC(stem)) ? stem : w
    }

    /// (m>1 and *d and *L) → single letter, m measured on the word less one l.
    public static func step5b(_ w: Word) -> Word {
        ends(w, "ll") && measure(dropping(w, 1)) > 1 ? dropping(w, 1) : w
    }
}
