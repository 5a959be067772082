import ArgumentParser
import Foundation
import Llama
import ModelFormats
import Tokenization

/// Loads the model named on the command line; a failure becomes a clean error message and exit 1.
/// With `engine` (a command that only runs the model) and half-precision `--weights`, tensors the
/// file stores in that precision are used in place from the memory map, with no Float32 copy.
/// With `mapsStoredHalfPrecision` (compression) tensors the file stores in F16/BF16 stay in the map
/// in their own precision (`LoadOptions.mapsStoredHalfPrecision`).
func loadModel(_ options: ModelOptions, engine: EngineOptions? = nil, mapsStoredHalfPrecision: Bool = false) throws -> LoadedModel {
    let map = engine.map { $0.weights == .float32 ? nil : $0.weights } ?? nil
    do {
        return try ModelLoader.load(options.model, options: LoadOptions(preTokenizer: options.preTokenizer?.value, halfPrecision: map,
                                                                         mapsStoredHalfPrecision: mapsStoredHalfPrecision))
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
