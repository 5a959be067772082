import ArgumentParser
import Tokenization

/// `--pretokenizer` values.
struct PreTokenizerChoice: ExpressibleByArgument, Sendable {
    var value: PreTokenizer

    init?(argument: String) {
        guard let value = PreTokenizer(rawValue: argument) else { return nil }
        self.value = value
    }

    static var allValueStrings: [String] { PreTokenizer.allCases.map(\.rawValue) }
}
