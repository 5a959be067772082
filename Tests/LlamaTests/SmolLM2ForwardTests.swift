import Foundation
import Testing
import LinearAlgebra
import TestSupport
import Llama

/// Records the L2 norm of the last row at the points the fixture lists.
final class NormRecorder: ForwardObserver {
    var norms: [ObservationPoint: Double] = [:]
    func wants(_ point: ObservationPoint) -> Bool {
        switch point {
        case .embedding, .layerOutput, .finalNorm: true
        default: false
        }
    }
    func observe(_ point: ObservationPoint, values: UnsafePointer<Float>, rows: Int, columns: Int) {
        let last = values + (rows - 1) * columns
        norms[point] = (0..<columns).reduce(0.0) { $0 + Double(last[$1]) * Double(last[$1]) }.squareRoot()
    }
}

/// Real model against `forward_cases.json` (PyTorch float32, sdpa): top-10 ids identical at every
/// recorded position, logits within 2e-3, mean NLL within 1e-4, hidden-state norms within 1e-3
/// relative. The worst differences are printed so the closing note can quote them.
@Suite("SmolLM2 forward matches the PyTorch reference", .serialized)
struct SmolLM2ForwardTests {
    static let loaded: Result<LoadedModel, any Error> = Result { try ModelLoader.load(Fixtures.requireSmolLM2()) }

    static func cases() throws -> [[String: Any]] {
        try Fixtures.sharedJSON("forward_cases.json")["cases"] as! [[String: Any]]
    }

    func check(precision: WeightPrecision, cache: KVCachePrecision = .float32, logitTolerance: Float, nllTolerance: Double,
               normTolerance: Double) throws {
        let loaded = try Self.loaded.get()
        var model = LlamaModel(configuration: loaded.configuration, weights: loaded.weights, precision: precision)
        model.keyValuePrecision = cache
        var worstLogit: Float = 0, worstNLL = 0.0, worstNorm = 0.0
        for fixture in try Self.cases() {
            let name = fixture["name"] as! String
            let ids = fixture["ids"] as! [Int]
            let positions = fixture["positions"] as! [[String: Any]]
            let recorder = NormRecorder()
            let scores = model.score(ids, keepLogitsAt: Set(positions.map { $0["position"] as! Int }), observer: recorder)
            for p in positions {
                let position = p["position"] as! Int
                let row = scores.logits[position]!
                let topIDs = p["top10_ids"] as! [Int]
                let topLogits = (p["top10_logits"] as! [Double]).map(Float.init)
                let ours = row.indices.sorted { row[$0] > row[$1] }.prefix(10)
                if precision == .float32 && cache == .float32 { #expect(Array(ours) == topIDs, "\(name) position \(position)") }
                for (id, logit) in zip(topIDs, topLogits) { worstLogit = max(worstLogit, abs(row[id] - logit)) }
                for (i, logit) in (p["first16_logits"] as! [Double]).enumerated() { worstLogit = max(worstLogit, abs(row[i] - Float(logit))) }
                let lse = p["logsumexp"] as! Double
                #expect(abs(scores.logSumExp[position]! - lse) < Double(logitTolerance), "\(name) position \(position)")
            }
            let nll = fixture["mean_nll"] as! Double
            worstNLL = max(worstNLL, abs(scores.meanNLL - nll))
            #expect(abs(scores.meanNLL - nll) < nllTolerance, "\(name): mean NLL \(scores.meanNLL) vs \(nll)")
            #expect(scores.negativeLogLikelihoods.count == fixture["n_predicted"] as! Int)
            let norms = fixture["hidden_l2_at_last_position"] as! [String: Double]
            for (key, expected) in norms {
                let point: ObservationPoint = switch key {
                case "embedding": .embedding
                case "final_norm": .finalNorm
                default: .layerOutput(layer: Int(key.dropFirst("layer".count))!)
                }
                let ours = try #require(recorder.norms[point], "\(key)")
                worstNorm = max(worstNorm, abs(ours - expected) / expected)
                #expect(abs(ours - expected) / expected < normTolerance, "\(name) \(key): \(ours) vs \(expected)")
            }
        }
        #expect(worstLogit < logitTolerance)
        print("forward fixtures (\(precision.rawValue) weights, \(cache.rawValue) KV cache): worst logit difference \(worstLogit), worst mean-NLL difference \(worstNLL), worst hidden-norm relative difference \(worstNorm)")
    }

    @Test func float32MatchesEveryForwardCase() throws {
        try check(precision: .float32, logitTolerance: 2e-3, nllTolerance: 1e-4, normTolerance: 1e-3)
    }

    /// Half-precision storage rounds the weights, so the comparison is looser; the errors are
    /// recorded in docs/BENCHMARKS.md.
    @Test(arguments: [WeightPrecision.float16, .bfloat16])
    func halfPrecisionStorageStaysCloseToTheReference(precision: WeightPrecision) throws {
        let f16 = precision == .float16
        try check(precision: precision, logitTolerance: f16 ? 0.05 : 0.5, nllTolerance: f16 ? 2e-3 : 1e-2, normTolerance: f16 ? 1e-3 : 5e-3)
    }

    /// A half KV cache (`--kv-cache f16`, the default with half-precision weights) rounds every key
    /// and value once; with Float32 weights and with f16 weights. Errors in docs/RESULTS.md.
    @Test(arguments: [WeightPrecision.float32, .float16])
    func aHalfKVCacheStaysCloseToTheReference(weights: WeightPrecision) throws {
        try check(precision: weights, cache: .float16, logitTolerance: 0.05, nllTolerance: 2e-3, normTolerance: 1e-3)
    }
}
