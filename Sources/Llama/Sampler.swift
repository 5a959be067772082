/// How the next token is chosen from the logits.
public struct SamplingSettings: Sendable, Equatable, Codable {
    /// 0 means greedy (argmax).
    public var temperature: Float
    /// Keep only the k most likely tokens (0 = no limit).
    public var topK: Int
    /// Keep the smallest set of most likely tokens whose probability reaches p (1 = no limit).
    public var topP: Float
    public var seed: UInt64

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
    }

    public static let greedy = SamplingSettings()
}

/// Chooses tokens: argmax when greedy; otherwise softmax(logits / T), top-k, then top-p (nucleus),
/// then a draw from a seeded generator, so the same seed gives the same text.
public struct Sampler {
    public let settings: SamplingSettings
    private var random: SplitMix64

    public init(_ settings: SamplingSettings) {
        self.settings = settings
        random = SplitMix64(seed: settings.seed)
    }

    public mutating func next(_ logits: UnsafeBufferPointer<Float>) -> Int {
        if settings.temperature <= 0 { return Self.argmax(logits) }
        var candidates = Array(logits.indices)
        if settings.topK > 0 && settings.topK < candidates.count {
            candidates.sort { logits[$0] > logits[$1] }
            candidates.removeSubrange(settings.topK...)
        } else if settings.topP < 1 {
            candidates.sort { logits[$0] > logits[$1] }
        }
        let m = candidates.map { logits[$0] }.max()!
        var weights = candidates.map { exp(Double((logits[$0] - m) / settings.temperature)) }
        let total = weights.reduce(0, +)
        weights = weights.map { $0 / total }
        if settings.topP < 1 {
            var cumulative = 0.0
            var keep = 0
            while keep < weights.count {
                cumulative += weights[keep]
                keep += 1
                if cumulative >= Double(settings.topP) { break }
            }
            candidates.removeSubrange(keep...)
            weights.removeSubrange(keep...)
        }
        let kept = weights.reduce(0, +)
        var draw = Double(random.next() >> 11) / Double(1 << 53) * kept
        for (candidate, weight) in zip(candidates, weights) {
            draw -= weight
            if draw < 0 { return candidate }
        }
        return candidates.last!
    }

    /// Index of the largest logit (the first on ties).
    public static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        for i in 1..<logits.count where logits[i] > logits[best] { best = i }
        return best
    }
}

/// SplitMix64, the seeded generator behind sampling and calibration offsets.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

#if canImport(Glibc)
import Glibc
#endif
