import Foundation
import Testing
import LinearAlgebra
import Llama
import LowRank
import ModelFormats
import TestSupport

@Suite("Compressed checkpoints")
struct CheckpointTests {
    static let tiny = TinyLlama(seed: 41, tiedEmbeddings: false)

    static func compressedTiny(method: CompressionMethod = .svd, remove: Double = 0.3) throws -> (LlamaModel, CompressionReport) {
        let model = LlamaModel(configuration: tiny.configuration, weights: tiny.weights)
        let calibration = try CalibrationSet(tokens: [1, 5, 9, 200, 31, 7, 64, 12, 250, 3, 3, 90, 17, 44, 8, 2], starts: [0, 8], length: 8)
        return try Compressor.compress(model, weights: tiny.weights, recipe: CompressionRecipe(method: method, removedFraction: remove),
                                       calibration: method.needsCalibration ? calibration : nil)
    }

    @Test(arguments: [CompressionMethod.svd, .asvd, .svdLLM])
    func saveAndReloadIsBitExact(method: CompressionMethod) throws {
        let (compressed, report) = try Self.compressedTiny(method: method)
        #expect(report.projections.allSatisfy { $0.rank != nil })
        let dir = TemporaryDirectory()
        try Checkpoint.write(compressed, tokenizer: try Self.tiny.tokenizer(), chatTemplate: Self.tiny.chatTemplate, to: dir.file("ck"))
        let loaded = try ModelLoader.load(dir.file("ck"))
        #expect(loaded.weights.factored.count == 2 * 7)
        let reloaded = LlamaModel(configuration: loaded.configuration, weights: loaded.weights)
        #expect(reloaded.layers == compressed.layers)
        #expect(reloaded.tokenEmbedding == compressed.tokenEmbedding)
        #expect(reloaded.outputHead == compressed.outputHead)
        #expect(reloaded.finalNorm == compressed.finalNorm)
        let tokens = [5, 80, 2, 33, 190]
        #expect(reloaded.score(tokens, keepLogitsAt: [4]).logits[4]! == compressed.score(tokens, keepLogitsAt: [4]).logits[4]!)
        #expect(loaded.chatTemplate == Self.tiny.chatTemplate)
        let counts = ParameterCount(configuration: loaded.configuration, compressedGroups: loaded.weights.compressedGroups)
        #expect(counts.projectionTotal == report.projectionParametersAfter)
    }

    /// A compressed projection loads straight into its form: the loaded weights hold no dense
    /// matrix for it (not even an empty one). Its group owns every member (a dense neighbour
    /// reading the same input too); the other groups' projections keep their dense weights.
    @Test func compressedProjectionsLoadWithNoDenseWeight() throws {
        var model = LlamaModel(configuration: Self.tiny.configuration, weights: Self.tiny.weights)
        let w = Self.tiny.weights.layers[1].up  // [96 × 64]
        let left = Matrix(rows: w.rows, columns: 8, storage: Array(w.storage.prefix(w.rows * 8)))
        let right = Matrix(rows: 8, columns: w.columns, storage: Array(w.storage.suffix(8 * w.columns)))
        model[ProjectionID(layer: 1, kind: .up)] = .lowRank(LowRankLinear(left: left, right: right))
        let dir = TemporaryDirectory()
        try Checkpoint.write(model, tokenizer: try Self.tiny.tokenizer(), chatTemplate: nil, to: dir.file("ck"))
        let loaded = try ModelLoader.load(dir.file("ck"))
        for layer in 0..<2 {
            for kind in ProjectionKind.allCases {
                let dense = loaded.weights.layers[layer].dense(kind)
                if layer == 1 && kind.inputSite == .mlpInput {
                    #expect(dense == nil, "\(kind) belongs to a compressed group: no dense weight in the layer")
                    #expect(loaded.weights.values(of: .projection(ProjectionID(layer: 1, kind: kind))) == nil)
                } else {
                    #expect(dense == Self.tiny.weights.layers[layer][kind], "layer \(layer) \(kind) stays dense")
                }
            }
        }
        let group = try #require(loaded.weights.compressedGroups[GroupID(layer: 1, site: .mlpInput)])
        #expect(group[.gate] == .dense(DenseLinear(Self.tiny.weights.layers[1].gate)))
        #expect(LlamaModel(configuration: loaded.configuration, weights: loaded.weights).layers == model.layers)
    }

    @Test func uniformRanksRemoveTheRequestedFraction() throws {
        let (_, report) = try Self.compressedTiny(remove: 0.2)
        // q [64 × 64] → r = ⌊0.8·64·64/128⌋ = 25; k/v [32 × 64] → 17; gate/up/down → ⌊0.8·96·64/160⌋ = 30.
        let ranks = Dictionary(grouping: report.projections, by: \.projection).mapValues { Set($0.compactMap(\.rank)) }
        #expect(ranks == ["q_proj": [25], "o_proj": [25], "k_proj": [17], "v_proj": [17], "gate_proj": [30], "up_proj": [30], "down_proj": [30]])
        #expect(report.removedProjectionFraction >= 0.2 && report.removedProjectionFraction < 0.23)
        #expect(report.removedModelFraction < report.removedProjectionFraction)
    }

    @Test func overwritingReplacesTheWholeDirectory() throws {
        let (compressed, _) = try Self.compressedTiny()
        let dir = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir.file("ck"), withIntermediateDirectories: true)
        try Data("stale".utf8).write(to: URL(fileURLWithPath: dir.file("ck/stale.txt")))
        try Checkpoint.write(compressed, tokenizer: try Self.tiny.tokenizer(), chatTemplate: nil, to: dir.file("ck"))
        #expect(!FileManager.default.fileExists(atPath: dir.file("ck/stale.txt")))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["ck"])
    }

    func writeCheckpoint(_ dir: TemporaryDirectory) throws -> [String: Any] {
        let (compressed, _) = try Self.compressedTiny()
        try Checkpoint.write(compressed, tokenizer: try Self.tiny.tokenizer(), chatTemplate: nil, to: dir.file("ck"))
        return try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.file("ck/config.json")))) as! [String: Any]
    }

    func rewrite(_ dir: TemporaryDirectory, _ config: [String: Any]) throws {
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: dir.file("ck/config.json")))
    }

    func setModule(_ dir: TemporaryDirectory, _ config: [String: Any], _ module: String, _ entry: [String: Any]) throws {
        var config = config
        var lowRank = config["low_rank"] as! [String: Any]
        var modules = lowRank["modules"] as! [String: Any]
        modules[module] = entry
        lowRank["modules"] = modules
        config["low_rank"] = lowRank
        try rewrite(dir, config)
    }

    @Test func aRankLargerThanTheShapeIsRejected() throws {
        let dir = TemporaryDirectory()
        let config = try writeCheckpoint(dir)
        try setModule(dir, config, "model.layers.0.self_attn.k_proj", ["form": "low_rank", "rank": 40])  // k is [32 × 64]
        do {
            _ = try ModelLoader.load(dir.file("ck"))
            Issue.record("loaded")
        } catch let error as ModelFormatError {
            guard case .invalidValue(_, "low_rank.modules.model.layers.0.self_attn.k_proj", let reason) = error else { Issue.record("\(error)"); return }
            #expect(reason == "rank 40 exceeds 32")
        }
    }

    @Test func aFactorOfTheWrongShapeIsNamed() throws {
        let dir = TemporaryDirectory()
        let config = try writeCheckpoint(dir)
        try setModule(dir, config, "model.layers.1.mlp.down_proj", ["form": "low_rank", "rank": 12])  // the tensors hold rank 26
        do {
            _ = try ModelLoader.load(dir.file("ck"))
            Issue.record("loaded")
        } catch let error as ModelFormatError {
            guard case .shapeMismatch(_, let tensor, _, _) = error else { Issue.record("\(error)"); return }
            #expect(tensor.hasPrefix("model.layers.1.mlp.down_proj."))
        }
    }

    @Test func anUnknownFormIsNamed() throws {
        let dir = TemporaryDirectory()
        let config = try writeCheckpoint(dir)
        try setModule(dir, config, "model.layers.1.mlp.down_proj", ["form": "tucker", "rank": 26])
        do {
            _ = try ModelLoader.load(dir.file("ck"))
            Issue.record("loaded")
        } catch let error as ModelFormatError {
            guard case .invalidValue(_, "low_rank.modules.model.layers.1.mlp.down_proj.form", _) = error else { Issue.record("\(error)"); return }
        }
    }

    /// Checkpoints written before layer forms (format 1: `projections` with ranks, `.left`/`.right`
    /// tensors) load into the same model.
    @Test func aFormatOneCheckpointStillLoads() throws {
        let dir = TemporaryDirectory()
        var config = try writeCheckpoint(dir)
        let (compressed, _) = try Self.compressedTiny()
        let modules = (config["low_rank"] as! [String: Any])["modules"] as! [String: Any]
        var projections: [String: Any] = [:]
        for (module, entry) in modules { projections[module] = ["rank": (entry as! [String: Any])["rank"]!] }
        config["low_rank"] = ["format_version": 1, "projections": projections]
        try rewrite(dir, config)
        let loaded = try ModelLoader.load(dir.file("ck"))
        #expect(LlamaModel(configuration: loaded.configuration, weights: loaded.weights).layers == compressed.layers)
    }

    @Test func anUnknownFormatVersionIsRejected() throws {
        let dir = TemporaryDirectory()
        var config = try writeCheckpoint(dir)
        var lowRank = config["low_rank"] as! [String: Any]
        lowRank["format_version"] = 99
        config["low_rank"] = lowRank
        try rewrite(dir, config)
        do {
            _ = try ModelLoader.load(dir.file("ck"))
            Issue.record("loaded")
        } catch let error as ModelFormatError {
            guard case .invalidValue(_, "low_rank.format_version", _) = error else { Issue.record("\(error)"); return }
        }
    }

    @Test func anInvalidBudgetIsRejected() throws {
        let model = LlamaModel(configuration: Self.tiny.configuration, weights: Self.tiny.weights)
        #expect(throws: CompressionError.invalidBudget(1.2)) {
            try Compressor.compress(model, weights: Self.tiny.weights, recipe: CompressionRecipe(method: .svd, removedFraction: 1.2), calibration: nil)
        }
        #expect(throws: CompressionError.missingCalibration(.svdLLM)) {
            try Compressor.compress(model, weights: Self.tiny.weights, recipe: CompressionRecipe(method: .svdLLM, removedFraction: 0.2), calibration: nil)
        }
    }
}
