import Foundation
import Testing
import Evaluation
import Gradients
import Llama
import TestSupport

/// Real model: the backward pass against two references of one recipe (8 windows of 512 tokens of the
/// C4 sample at the listed starts, same GGUF):
/// - `fisher_importance.json` (../shared; PyTorch, float32 model, float64 sums; fixture README);
/// - `Tests/Fixtures/fisher_importance_float64.json`: the same recipe run in float64 by
///   `scripts/reference/fisher_reference.py` (which, in float32, reproduces the shared fixture to
///   4.6e-8 relative, so the two differ only by the float32 run's rounding).
/// Against the float64 reference every projection's first-window gradient norm and both α variants
/// are held to 1e-4 relative (measured at most 4.4e-6, 9.0e-6 and 4.9e-5) and the loss to 1e-5 (3e-7).
/// Against the float32 fixture the bound is the issue's 1e-3, except for α of the summed gradient,
/// Σ ((Σ_windows G)⊙W)², whose float32 value is itself 1.15e-3 from the float64 one at 27.k_proj
/// (the windows' gradients partly cancel in the sum, ‖Σ G‖ ≈ 0.37 Σ ‖G‖ there, so the float32 run's
/// rounding adds up in the cross terms): that comparison is held to 2e-3 (measured 1.17e-3).
@Suite("SmolLM2 gradients match the PyTorch reference", .serialized)
struct SmolLM2GradientTests {
    @Test func gradientNormsAndBothFisherImportancesMatchTheFloat32AndFloat64References() throws {
        let fixture = try Fixtures.sharedJSON("fisher_importance.json")
        let float64Path = Fixtures.repositoryRoot + "/Tests/Fixtures/fisher_importance_float64.json"
        let float64 = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: float64Path))) as? [String: Any])
        let loaded = try ModelLoader.load(Fixtures.requireSmolLM2())
        let c4 = loaded.tokenizer.encode(try Corpus.c4.text(dataDirectory: Fixtures.repositoryRoot + "/data"))
        let starts = (fixture["starts"] as! [NSNumber]).map(\.intValue)
        let length = (fixture["length"] as! NSNumber).intValue
        #expect((float64["starts"] as! [NSNumber]).map(\.intValue) == starts && (float64["length"] as! NSNumber).intValue == length)
        let windows = starts.map { Array(c4[$0..<($0 + length)]) }
        let pass = GradientPass(configuration: loaded.configuration, weights: loaded.weights)
        let firstLoss = pass.loss(windows[0])
        #expect(abs(firstLoss - (fixture["first_window_loss"] as! NSNumber).doubleValue) < 1e-4)
        #expect(abs(firstLoss - (float64["first_window_loss"] as! NSNumber).doubleValue) < 1e-5)
        let importance = FisherImportance.measure(pass, windows: windows, weights: loaded.weights, squareOfSummedGradient: true)
        #expect(importance.entries.count == 210)

        let quantities = ["gradient_norm_first_window", "alpha_sum_over_windows_of_squares", "alpha_square_of_summed_gradient"]
        var worst: [String: (Double, String)] = [:]
        for (referenceName, reference) in [("float32 fixture", fixture), ("float64 reference", float64)] {
            for quantity in quantities {
                let values = try #require(reference[quantity] as? [String: NSNumber], "\(referenceName) has no \(quantity)")
                #expect(values.count == 210)
                let bound = referenceName == "float64 reference" ? 1e-4 : quantity == "alpha_square_of_summed_gradient" ? 2e-3 : 1e-3
                for (id, entry) in importance.entries {
                    let key = "\(id.layer).\(id.kind.shortName)"
                    let ours = switch quantity {
                    case "gradient_norm_first_window": entry.firstWindowGradientNorm
                    case "alpha_sum_over_windows_of_squares": entry.fisher
                    default: entry.squareOfSummedGradient ?? .nan
                    }
                    let r = try #require(values[key], "no \(quantity) for \(key) in the \(referenceName)").doubleValue
                    let error = abs(ours - r) / abs(r)
                    let name = "\(quantity) vs \(referenceName)"
                    if error > (worst[name]?.0 ?? -1) { worst[name] = (error, key) }
                    #expect(error < bound, "\(key) \(quantity): \(ours) vs \(r) (\(referenceName))")
                }
            }
        }
        print("largest relative differences: \(worst.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.0) at \($0.value.1)" }.joined(separator: "; "))")
    }
}
