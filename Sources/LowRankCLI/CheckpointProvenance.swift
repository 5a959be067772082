import Foundation
import Llama
import LowRank
import ModelFormats

/// Where a compressed checkpoint came from, read from its `compression.json` and recorded beside
/// every number measured on it (eval, perplexity), so a result names its method, budget,
/// calibration set and seed, not only a file. The reading side of `Compress.Summary` (which writes
/// the file): only the fields that identify how the checkpoint was made, so a change to the timing
/// or report fields of the summary does not break reading older checkpoints.
struct CheckpointProvenance: Codable {
    var source_model: String
    var source_sha256: String
    var recipe: CompressionRecipe
    var calibration_file: String?
    var calibration_sha256: String?
    var removed_projection_fraction: Double
    var removed_model_fraction: Double
    /// Digest of the `compression.json` itself.
    var compression_json_sha256: String?

    /// nil for a GGUF file or a directory without `compression.json` (a model we did not compress).
    /// Commands call it before they evaluate, so an unreadable record fails at once, not after the run.
    static func read(_ loaded: LoadedModel) throws -> CheckpointProvenance? {
        guard loaded.source.format == .huggingFace else { return nil }
        let path = loaded.source.path + "/compression.json"
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        do {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            var provenance = try JSONDecoder().decode(CheckpointProvenance.self, from: bytes)
            provenance.compression_json_sha256 = SHA256.hexDigest([UInt8](bytes))
            return provenance
        } catch {
            throw CLIError("\(path): not a compression record lowrank can read (\(error)); recompress, or remove the file to evaluate the weights without provenance")
        }
    }
}
