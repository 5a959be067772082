import ArgumentParser
import Foundation
import Llama
import Tokenization

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Encode text with the model's tokenizer (special tokens written in the text map to their ids; no BOS is added unless the model asks).")

    @OptionGroup var model: ModelOptions

    @Option(help: "The text to encode.")
    var text: String

    @Flag(help: "Print {\"ids\": [...], \"tokens\": [...]}.")
    var json = false

    struct Output: Encodable {
        var ids: [Int]
        var tokens: [String]
    }

    func run() throws {
        let loaded = try loadModel(model)
        let ids = loaded.tokenizer.encode(text, addSpecialTokens: true)
        let tokens = ids.map { loaded.tokenizer.tokens[$0] }
        if json {
            try Terminal.printJSON(Output(ids: ids, tokens: tokens))
        } else {
            print("\(ids.count) tokens")
            for (id, token) in zip(ids, tokens) { print("\(id)\t\(token)") }
        }
    }
}
