import Foundation
import Llama
import ModelFormats

/// The unfinished run of a resumable compression, owned here: a directory beside the output
/// (`<output>.partial`) holding `state.json` (recipe, source and calibration digests, finished layer
/// count, reports, times) and one directory per finished layer (`layer-00007`, its compressed groups:
/// `Checkpoint.writeLayerGroups`). Each layer is written before the state names it, both atomically,
/// so a run killed at any moment leaves a state that names only whole layers.
public struct PartialCompression {
    public let directory: String

    public struct State: Codable, Sendable {
        /// The lowrank that made the saved layers (another build may round differently).
        public var lowrank_version: String
        public var recipe: CompressionRecipe
        public var source_sha256: String
        public var calibration_sha256: String?
        public var layers_finished: Int
        /// The finished layers that have a file (a layer whose projections all stayed dense has none).
        public var layer_files: [Int]
        public var reports: [ProjectionReport]
        public var calibration_seconds: Double
        public var factorisation_seconds: Double

        public init(lowrank_version: String, recipe: CompressionRecipe, source_sha256: String, calibration_sha256: String?, layers_finished: Int,
                    layer_files: [Int], reports: [ProjectionReport], calibration_seconds: Double, factorisation_seconds: Double) {
            self.lowrank_version = lowrank_version
            self.recipe = recipe
            self.source_sha256 = source_sha256
            self.calibration_sha256 = calibration_sha256
            self.layers_finished = layers_finished
            self.layer_files = layer_files
            self.reports = reports
            self.calibration_seconds = calibration_seconds
            self.factorisation_seconds = factorisation_seconds
        }
    }

    public init(output: String) {
        directory = URL(fileURLWithPath: output).standardizedFileURL.path + ".partial"
    }

    var statePath: String { directory + "/state.json" }
    func layerDirectory(_ layer: Int) -> String { directory + "/" + String(format: "layer-%05d", layer) }

    /// Whether an unfinished run is here: a state names its finished layers. (A run killed before
    /// its first state leaves at most layer files no state names; a new run replaces them.)
    public var exists: Bool { FileManager.default.fileExists(atPath: statePath) }

    /// The state of the unfinished run, or nil when there is none.
    public func readState() throws -> State? {
        guard FileManager.default.fileExists(atPath: statePath) else { return nil }
        do {
            return try JSONDecoder().decode(State.self, from: FileBytes.read(statePath))
        } catch {
            throw ModelFormatError.malformedJSON(path: statePath, reason: "not the state of a lowrank compression (\(error)); delete \(directory) to start over")
        }
    }

    /// The finished layers of `state`, after checking that every layer file it names is there and
    /// holds that layer's groups (their values are read when needed: `groups(layer:)`).
    public func finishedLayers(_ state: State, configuration: LlamaConfiguration) throws -> Compressor.FinishedLayers {
        for layer in state.layer_files {
            let path = layerDirectory(layer)
            guard layer < state.layers_finished, FileManager.default.fileExists(atPath: path) else {
                throw ModelFormatError.cannotOpen(path: path, reason: "the state names layer \(layer) as saved but its file is missing; delete \(directory) to start over")
            }
            for id in try Checkpoint.layerGroupIDs(directory: path, configuration: configuration) where id.layer != layer {
                throw ModelFormatError.invalidValue(path: path, key: "low_rank_modules", reason: "holds layer \(id.layer), not \(layer)")
            }
        }
        return Compressor.FinishedLayers(count: state.layers_finished, reports: state.reports,
                                         calibrationSeconds: state.calibration_seconds, factorisationSeconds: state.factorisation_seconds)
    }

    /// The compressed groups of a finished layer, read back from its file (none when the layer stayed dense).
    public func groups(layer: Int, configuration: LlamaConfiguration) throws -> [GroupID: ProjectionGroup] {
        let path = layerDirectory(layer)
        guard FileManager.default.fileExists(atPath: path) else { return [:] }
        return try Checkpoint.readLayerGroups(directory: path, configuration: configuration)
    }

    /// The directories of the finished layers that have a file, as the state names them, by layer:
    /// what the checkpoint is assembled from (`Checkpoint.write(_:savedLayers:…)`). (A file the
    /// state does not name, left by a run killed between the two writes, is not used.)
    public func savedLayers() throws -> [Int: String] {
        var out: [Int: String] = [:]
        for layer in try readState()?.layer_files ?? [] { out[layer] = layerDirectory(layer) }
        return out
    }

    /// Saves a finished layer, then the state that names it.
    public func save(layer: Int, groups: [GroupID: ProjectionGroup], done: Compressor.FinishedLayers, version: String, recipe: CompressionRecipe,
                     sourceSHA256: String, calibrationSHA256: String?) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if !groups.isEmpty { try Checkpoint.writeLayerGroups(groups, to: layerDirectory(layer)) }
        let earlier = try readState()?.layer_files.filter { $0 < layer } ?? []
        let state = State(lowrank_version: version, recipe: recipe, source_sha256: sourceSHA256, calibration_sha256: calibrationSHA256, layers_finished: done.count,
                          layer_files: earlier + (groups.isEmpty ? [] : [layer]), reports: done.reports, calibration_seconds: done.calibrationSeconds, factorisation_seconds: done.factorisationSeconds)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try AtomicWrite.write(try encoder.encode(state), to: statePath)
    }

    /// Removes the directory (once the checkpoint is written, or before a new run when no state
    /// names any layer in it).
    public func remove() throws {
        // The state first: a removal cut short then leaves no unfinished run, only files a new run replaces.
        if FileManager.default.fileExists(atPath: statePath) { try FileManager.default.removeItem(atPath: statePath) }
        if FileManager.default.fileExists(atPath: directory) { try FileManager.default.removeItem(atPath: directory) }
    }

    /// Why `state` cannot continue a run of `recipe` by this lowrank on this source and calibration
    /// file (nil: it can).
    public static func mismatch(_ state: State, version: String, recipe: CompressionRecipe, sourceSHA256: String, calibrationSHA256: String?) -> String? {
        if state.lowrank_version != version { return "it was made by lowrank \(state.lowrank_version), this is \(version)" }
        if state.source_sha256 != sourceSHA256 { return "the source model differs (sha256 \(state.source_sha256.prefix(12))… then, \(sourceSHA256.prefix(12))… now)" }
        if state.calibration_sha256 != calibrationSHA256 { return "the calibration file differs (its sha256 changed)" }
        guard state.recipe != recipe else { return nil }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        func fields(_ r: CompressionRecipe) -> [String: String] {
            guard let data = try? encoder.encode(r), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
            return object.mapValues { "\($0)" }
        }
        let then = fields(state.recipe), now = fields(recipe)
        let differing = Set(then.keys).union(now.keys).filter { then[$0] != now[$0] }.sorted()
        return "the recipe differs: " + differing.map { "\($0) was \(then[$0] ?? "unset"), now \(now[$0] ?? "unset")" }.joined(separator: "; ")
    }
}
