import ArgumentParser
import Foundation
import Llama
import ModelFormats
import Tokenization

/// Loads the model named on the command line; a failure becomes a clean error message and exit 1.
func loadModel(_ options: ModelOptions) throws -> LoadedModel {
    do {
        return try ModelLoader.load(options.model, options: LoadOptions(preTokenizer: options.preTokenizer?.value))
    } catch let error as ModelFormatError {
        throw CLIError(String(describing: error))
    } catch let error as TokenizationError {
        throw CLIError(String(describing: error))
    }
}

/// An error whose message is meant for the user as it is.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ message: String) { description = message }
}
