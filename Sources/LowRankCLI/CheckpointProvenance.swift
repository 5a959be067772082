import Foundation
import Llama
import LowRank

extension CompressionRecord.Provenance {
    /// The provenance of a compressed checkpoint, from its `compression.json`; nil for a GGUF file
    /// or a directory without one. Commands call it before they evaluate, so an unreadable record
    /// fails at once, not after the run.
    static func read(_ loaded: LoadedModel) throws -> CompressionRecord.Provenance? {
        guard loaded.source.format == .huggingFace else { return nil }
        do {
            guard let (record, sha256) = try CompressionRecord.read(directory: loaded.source.path) else { return nil }
            return record.provenance(sha256: sha256)
        } catch {
            throw CLIError(error.description)
        }
    }
}
