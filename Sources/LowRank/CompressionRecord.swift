import Foundation
import Llama
import ModelFormats

/// `compression.json`, the record beside every compressed checkpoint: what was compressed, how
/// (the recipe), what came out (the report), and what it cost. This type is its only writer and
/// reader; the key names are part of the tool's interface (`compress --json` prints the same).
public struct CompressionRecord: Codable, Sendable {
    public static let fileName = "compression.json"

    public var lowrank_version: String
    public var source_model: String
    public var source_sha256: String
    public var recipe: CompressionRecipe
    public var calibration_file: String?
    public var calibration_sha256: String?
    public var calibration_tokens: Int?
    public var report: CompressionReport
    public var removed_projection_fraction: Double
    public var removed_model_fraction: Double
    public var calibration_seconds: Double
    public var factorisation_seconds: Double
    public var total_seconds: Double
    public var peak_rss_bytes: Int
    /// The BLAS kernels the run used (absent in records written before it was recorded).
    public var blas: String?
    /// A resumed run (`--resume`): the layers earlier runs had finished. Calibration and
    /// factorisation seconds then add up every run; `total_seconds` and `peak_rss_bytes` are the
    /// last run's.
    public var resumed_after_layers: Int?
    /// Where the (last) run's memory went: peak and the stage that reached it, the peak after
    /// each layer, and the parts (absent in records written before it was recorded).
    public var memory: CompressionMemory?
    /// Set when `lowrank heal` trained the factors after compression (absent otherwise).
    public var healing: HealingRecord?

    public init(lowrank_version: String, source_model: String, source_sha256: String, recipe: CompressionRecipe,
                calibration_file: String?, calibration_sha256: String?, calibration_tokens: Int?, report: CompressionReport,
                total_seconds: Double, peak_rss_bytes: Int, blas: String?) {
        self.lowrank_version = lowrank_version
        self.source_model = source_model
        self.source_sha256 = source_sha256
        self.recipe = recipe
        self.calibration_file = calibration_file
        self.calibration_sha256 = calibration_sha256
        self.calibration_tokens = calibration_tokens
        self.report = report
        removed_projection_fraction = report.removedProjectionFraction
        removed_model_fraction = report.removedModelFraction
        calibration_seconds = report.calibrationSeconds
        factorisation_seconds = report.factorisationSeconds
        self.total_seconds = total_seconds
        self.peak_rss_bytes = peak_rss_bytes
        self.blas = blas
        memory = report.memory
    }

    /// The bytes of `compression.json` (sorted keys, pretty-printed).
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// The record of the checkpoint in `directory` and the sha256 of its bytes; nil when the
    /// directory has none (a model lowrank did not compress).
    public static func read(directory: String) throws(CompressionRecordError) -> (record: CompressionRecord, sha256: String)? {
        let path = directory + "/" + fileName
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let bytes: Data
        do { bytes = try FileBytes.read(path) } catch { throw .unreadable(path: path, reason: "\(error)") }
        do {
            return (try JSONDecoder().decode(CompressionRecord.self, from: bytes), SHA256.hexDigest([UInt8](bytes)))
        } catch {
            throw .unreadable(path: path, reason: "\(error)")
        }
    }

    /// What identifies how a checkpoint was made, recorded beside every number measured on it
    /// (eval, perplexity): method, budget, calibration set and seed, source digest.
    public struct Provenance: Codable, Sendable {
        public var source_model: String
        public var source_sha256: String
        public var recipe: CompressionRecipe
        public var calibration_file: String?
        public var calibration_sha256: String?
        public var removed_projection_fraction: Double
        public var removed_model_fraction: Double
        /// Digest of the `compression.json` itself.
        public var compression_json_sha256: String?
        /// How the factors were healed after compression, when they were.
        public var healing: HealingRecord.Recipe?
    }

    public func provenance(sha256: String?) -> Provenance {
        Provenance(source_model: source_model, source_sha256: source_sha256, recipe: recipe, calibration_file: calibration_file,
                   calibration_sha256: calibration_sha256, removed_projection_fraction: removed_projection_fraction,
                   removed_model_fraction: removed_model_fraction, compression_json_sha256: sha256, healing: healing?.recipe)
    }
}

public enum CompressionRecordError: Error, CustomStringConvertible {
    case unreadable(path: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason):
            "\(path): not a compression record lowrank can read (\(reason)); recompress, or remove the file to evaluate the weights without provenance"
        }
    }
}
