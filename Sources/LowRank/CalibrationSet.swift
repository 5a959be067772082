import Llama

/// Calibration windows: `count` windows of `length` tokens cut from a tokenised corpus, the way
/// SVD-LLM and GPTQ sample them (a uniformly random start in 0 ... N − length − 1 per window).
public struct CalibrationSet: Sendable, Equatable {
    public var starts: [Int]
    public var length: Int
    public var windows: [[Int]]

    public var tokenCount: Int { starts.count * length }

    /// Seeded starts (SplitMix64; the reference's Python `random.seed(3)` stream is given explicitly
    /// with `init(tokens:starts:length:)`).
    public init(tokens: [Int], count: Int, length: Int, seed: UInt64) throws(CalibrationError) {
        guard count >= 1, length >= 2 else { throw .invalidOption("--samples must be ≥ 1 and --length ≥ 2") }
        guard tokens.count > length + 1 else { throw .corpusTooShort(tokens: tokens.count, length: length) }
        var random = SplitMix64(seed: seed)
        let range = UInt64(tokens.count - length)  // starts 0 ... N − length − 1
        let starts = (0..<count).map { _ in Int(random.next() % range) }
        try self.init(tokens: tokens, starts: starts, length: length)
    }

    /// Explicit start offsets (token offsets into the corpus).
    public init(tokens: [Int], starts: [Int], length: Int) throws(CalibrationError) {
        guard !starts.isEmpty, length >= 2 else { throw .invalidOption("need at least one start and a length ≥ 2") }
        for s in starts where s < 0 || s + length > tokens.count {
            throw .startOutOfRange(start: s, length: length, tokens: tokens.count)
        }
        self.starts = starts
        self.length = length
        windows = starts.map { Array(tokens[$0..<($0 + length)]) }
    }
}

public enum CalibrationError: Error, Equatable, CustomStringConvertible, Sendable {
    case invalidOption(String)
    case corpusTooShort(tokens: Int, length: Int)
    case startOutOfRange(start: Int, length: Int, tokens: Int)

    public var description: String {
        switch self {
        case .invalidOption(let m): m
        case .corpusTooShort(let tokens, let length): "the calibration corpus has \(tokens) tokens, too few for windows of \(length)"
        case .startOutOfRange(let start, let length, let tokens):
            "--calibration-starts: a window of \(length) at \(start) does not fit the corpus of \(tokens) tokens"
        }
    }
}
