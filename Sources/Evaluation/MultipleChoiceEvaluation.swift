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

    /// Scores one item (see `score(_:model:)` for a batch).
    public func score(_ item: MultipleChoiceItem, model: some LanguageModel) -> ItemScore {
        score([item], model: model)[0]
    }

    /// Scores a batch of items with one call to the model: each distinct context of an item is one
    /// request whose continuations are the choices that share it (all of them, except for
    /// WinoGrande, whose choices differ in the context).
    public func score(_ items: [MultipleChoiceItem], model: some LanguageModel) -> [ItemScore] {
        var requests: [ContinuationRequest] = []
        // For each item, for each request of it: the choice indices it answers.
        var plan: [[(request: Int, choices: [Int])]] = []
        var lengths: [[Int]] = []
        for item in items {
            var byContext: [String: [Int]] = [:]
            var order: [String] = []
            for i in 0..<item.choiceCount {
                let c = item.context(i)
                if byContext[c] == nil { order.append(c) }
                byContext[c, default: []].append(i)
            }
            var itemPlan: [(request: Int, choices: [Int])] = []
            var itemLengths = [Int](repeating: 0, count: item.choiceCount)
            for c in order {
                let indices = byContext[c]!
                let pairs = indices.map { encodePair(context: c, continuation: item.continuation($0)) }
                for (k, i) in indices.enumerated() { itemLengths[i] = pairs[k].continuation.count }
                itemPlan.append((requests.count, indices))
                requests.append(ContinuationRequest(context: pairs[0].context, continuations: pairs.map(\.continuation)))
            }
            plan.append(itemPlan)
            lengths.append(itemLengths)
        }
        let answers = model.continuationLogLikelihoods(requests)
        return items.indices.map { n in
            let item = items[n]
            var logLikelihoods = [Double](repeating: 0, count: item.choiceCount)
            for (request, choices) in plan[n] {
                for (k, i) in choices.enumerated() { logLikelihoods[i] = answers[request][k] }
            }
            let normalised = logLikelihoods.enumerated().map { i, ll in ll / Double(max(1, HarnessText.pythonLength(item.choices[i]))) }
            return ItemScore(logLikelihoods: logLikelihoods, continuationTokens: lengths[n], predicted: Self.argmax(logLikelihoods),
                             predictedNormalised: Self.argmax(normalised), gold: item.gold)
        }
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

    /// Scores `items` of `task`, `batch` items per call to the model (the model packs them into
    /// passes; results do not depend on the batch); `progress(done, total)` after each batch.
    public func run(_ task: ZeroShotTask, items: [MultipleChoiceItem], model: some LanguageModel, batch: Int = 16,
                    progress: (Int, Int) -> Void = { _, _ in }) -> TaskResult {
        precondition(batch > 0, "batch must be positive")
        let clock = ContinuousClock()
        let started = clock.now
        var hits: [Bool] = [], hitsNormalised: [Bool] = []
        var nonFinite = 0
        var start = 0
        while start < items.count {
            let end = min(items.count, start + batch)
            for s in score(Array(items[start..<end]), model: model) {
                if !s.logLikelihoods.allSatisfy(\.isFinite) { nonFinite += 1 }
                hits.append(s.predicted == s.gold)
                hitsNormalised.append(s.predictedNormalised == s.gold)
            }
            progress(end, items.count)
            start = end
        }
        return TaskResult(task: task, items: items.count, acc: Metric(hits), accNorm: task.hasNormalisedAccuracy ? Metric(hitsNormalised) : nil,
                          nonFiniteItems: nonFinite, seconds: (clock.now - started).seconds)
    }
}
