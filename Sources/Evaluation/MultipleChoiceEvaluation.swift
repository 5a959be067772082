import Foundation

/// Scores multiple-choice items the way lm-evaluation-harness does (zero-shot, `multiple_choice`):
/// for each choice the summed log-probability of its continuation tokens given its context;
/// `acc` takes the argmax of the sums, `acc_norm` of the sums divided by the choice's character
/// count. Ties go to the first choice (NumPy argmax).
public struct MultipleChoiceEvaluation: Sendable {
    /// Tokenises text as the model's tokenizer does, without adding special tokens (SmolLM2 adds no
    /// BOS; a tokenizer that should prepend one does so here).
    public var encode: @Sendable (String) -> [Int]

    public init(encode: @escaping @Sendable (String) -> [Int]) { self.encode = encode }

    /// The harness's `_encode_pair`: trailing spaces of the context move to the continuation; the
    /// continuation tokens are those of tok(context + continuation) after the first len(tok(context)).
    public func encodePair(context: String, continuation: String) -> (context: [Int], continuation: [Int]) {
        var context = context, continuation = continuation
        let trailing = context.unicodeScalars.reversed().prefix { $0 == " " }.count
        if trailing > 0 {
            let scalars = Array(context.unicodeScalars)
            continuation = String(String.UnicodeScalarView(scalars[(scalars.count - trailing)...])) + continuation
            context = String(String.UnicodeScalarView(scalars[..<(scalars.count - trailing)]))
        }
        let whole = encode(context + continuation)
        let contextTokens = encode(context)
        return (contextTokens, Array(whole.dropFirst(contextTokens.count)))
    }

    public struct ItemScore: Sendable, Equatable {
        public var logLikelihoods: [Double]
        public var continuationTokens: [Int]
        public var predicted: Int
        public var predictedNormalised: Int
        public var gold: Int
    }

    /// Scores one item: each distinct context is run once, its continuations branch from it.
    public func score(_ item: MultipleChoiceItem, model: some LanguageModel) -> ItemScore {
        var logLikelihoods = [Double](repeating: 0, count: item.choiceCount)
        var lengths = [Int](repeating: 0, count: item.choiceCount)
        var byContext: [String: [Int]] = [:]
        var order: [String] = []
        for i in 0..<item.choiceCount {
            let c = item.context(i)
            if byContext[c] == nil { order.append(c) }
            byContext[c, default: []].append(i)
        }
        for c in order {
            let indices = byContext[c]!
            let pairs = indices.map { encodePair(context: c, continuation: item.continuation($0)) }
            let scores = model.continuationLogLikelihoods(context: pairs[0].context, continuations: pairs.map(\.continuation))
            for (k, i) in indices.enumerated() {
                logLikelihoods[i] = scores[k]
                lengths[i] = pairs[k].continuation.count
            }
        }
        let normalised = logLikelihoods.enumerated().map { i, ll in ll / Double(max(1, HarnessText.pythonLength(item.choices[i]))) }
        return ItemScore(logLikelihoods: logLikelihoods, continuationTokens: lengths, predicted: Self.argmax(logLikelihoods),
                         predictedNormalised: Self.argmax(normalised), gold: item.gold)
    }

    static func argmax(_ values: [Double]) -> Int {
        var best = 0
        for i in values.indices where values[i] > values[best] { best = i }
        return best
    }

    /// Accuracy and its standard error as the harness reports them (sample standard deviation
    /// over items / √n).
    public struct Metric: Codable, Sendable, Equatable {
        public var value: Double
        public var standardError: Double

        init(_ hits: [Bool]) {
            let n = Double(hits.count)
            let mean = hits.isEmpty ? .nan : Double(hits.filter { $0 }.count) / n
            value = mean
            standardError = hits.count > 1 ? (mean * (1 - mean) * n / (n - 1)).squareRoot() / n.squareRoot() : .nan
        }
    }

    public struct TaskResult: Codable, Sendable {
        public var task: ZeroShotTask
        public var items: Int
        public var acc: Metric
        /// nil for WinoGrande (the harness does not report it).
        public var accNorm: Metric?
        /// Positions whose log-probabilities were not finite (kept, never dropped).
        public var nonFiniteItems: Int
        public var seconds: Double
    }

    /// Scores `items` of `task`; `progress(done, total)` after each item.
    public func run(_ task: ZeroShotTask, items: [MultipleChoiceItem], model: some LanguageModel,
                    progress: (Int, Int) -> Void = { _, _ in }) -> TaskResult {
        let clock = ContinuousClock()
        let started = clock.now
        var hits: [Bool] = [], hitsNormalised: [Bool] = []
        var nonFinite = 0
        for (i, item) in items.enumerated() {
            let s = score(item, model: model)
            if !s.logLikelihoods.allSatisfy(\.isFinite) { nonFinite += 1 }
            hits.append(s.predicted == s.gold)
            hitsNormalised.append(s.predictedNormalised == s.gold)
            progress(i + 1, items.count)
        }
        return TaskResult(task: task, items: items.count, acc: Metric(hits), accNorm: task.hasNormalisedAccuracy ? Metric(hitsNormalised) : nil,
                          nonFiniteItems: nonFinite, seconds: (clock.now - started).seconds)
    }
}
