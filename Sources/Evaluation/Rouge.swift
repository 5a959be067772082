/// Precision, recall and F1 of one ROUGE variant.
public struct RougeScore: Sendable, Equatable, Codable {
    public var precision: Double
    public var recall: Double
    public var f1: Double

    init(precision: Double, recall: Double) {
        self.precision = precision
        self.recall = recall
        f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
    }

    static let zero = RougeScore(precision: 0, recall: 0)
}

/// ROUGE-1, ROUGE-2 and ROUGE-L of a prediction against a reference.
public struct RougeScores: Sendable, Equatable, Codable {
    public var rouge1: RougeScore
    public var rouge2: RougeScore
    public var rougeL: RougeScore
}

/// ROUGE as Google's `rouge-score` package computes it (`RougeScorer(["rouge1", "rouge2",
/// "rougeL"], use_stemmer=True)`), which replicates ROUGE-1.5.5 with `-m`:
/// - tokens: the text lowercased, every run of characters other than a–z and 0–9 a separator,
///   words longer than 3 characters Porter-stemmed (`PorterStemmer`);
/// - ROUGE-N: clipped n-gram overlap over the prediction's (precision) and the reference's
///   (recall) n-gram counts;
/// - ROUGE-L: the longest common subsequence of the token lists (sentence-level, not the
///   summary-level ROUGE-Lsum);
/// - several references: each variant takes the reference with the highest F1 (`score_multi`).
public struct RougeScorer: Sendable {
    public var stemming: Bool

    public init(stemming: Bool = true) { self.stemming = stemming }

    public func tokenize(_ text: String) -> [String] {
        var tokens: [String] = []
        var current = ""
        func flush() {
            guard !current.isEmpty else { return }
            tokens.append(stemming && current.count > 3 ? PorterStemmer.stem(current) : current)
            current = ""
        }
        // Python's str.lower() and Swift's lowercased() both apply Unicode's full lowercase
        // mapping; whatever is not ASCII a–z or 0–9 afterwards separates words.
        for scalar in text.lowercased().unicodeScalars {
            if ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) {
                current.unicodeScalars.append(scalar)
            } else {
                flush()
            }
        }
        flush()
        return tokens.filter { !$0.isEmpty }
    }

    public func score(reference: String, prediction: String) -> RougeScores {
        let r = tokenize(reference), p = tokenize(prediction)
        return RougeScores(rouge1: Self.ngramScore(r, p, n: 1), rouge2: Self.ngramScore(r, p, n: 2), rougeL: Self.lcsScore(r, p))
    }

    /// Against several references: per variant, the reference scoring the highest F1 (the first on ties).
    public func score(references: [String], prediction: String) -> RougeScores {
        precondition(!references.isEmpty, "at least one reference")
        let all = references.map { score(reference: $0, prediction: prediction) }
        func best(_ key: KeyPath<RougeScores, RougeScore>) -> RougeScore {
            all.map { $0[keyPath: key] }.reduce(nil) { (best: RougeScore?, s) in best.map { s.f1 > $0.f1 ? s : $0 } ?? s }!
        }
        return RougeScores(rouge1: best(\.rouge1), rouge2: best(\.rouge2), rougeL: best(\.rougeL))
    }

    static func ngramScore(_ reference: [String], _ prediction: [String], n: Int) -> RougeScore {
        func counts(_ tokens: [String]) -> [ArraySlice<String>: Int] {
            var c: [ArraySlice<String>: Int] = [:]
            if tokens.count >= n { for i in 0...(tokens.count - n) { c[tokens[i..<(i + n)], default: 0] += 1 } }
            return c
        }
        let r = counts(reference), p = counts(prediction)
        let overlap = r.reduce(0) { $0 + min($1.value, p[$1.key] ?? 0) }
        let referenceCount = r.values.reduce(0, +), predictionCount = p.values.reduce(0, +)
        return RougeScore(precision: Double(overlap) / Double(max(predictionCount, 1)), recall: Double(overlap) / Double(max(referenceCount, 1)))
    }

    static func lcsScore(_ reference: [String], _ prediction: [String]) -> RougeScore {
        guard !reference.isEmpty && !prediction.isEmpty else { return .zero }
        let length = Double(longestCommonSubsequence(reference, prediction))
        return RougeScore(precision: length / Double(prediction.count), recall: length / Double(reference.count))
    }

    /// Length of the longest common subsequence, one row of the dynamic-programming table at a time.
    static func longestCommonSubsequence(_ a: [String], _ b: [String]) -> Int {
        var previous = [Int](repeating: 0, count: b.count + 1), row = previous
        for x in a {
            for (j, y) in b.enumerated() {
                row[j + 1] = x == y ? previous[j] + 1 : max(previous[j + 1], row[j])
            }
            swap(&previous, &row)
        }
        return previous[b.count]
    }
}
