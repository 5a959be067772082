import Llama

/// FLRC's Fisher-based importance of each projection (arXiv 2510.09332 Eq. 1, algorithms.md §6.1):
/// `α = Σ_windows Σ_i (G_i · W_i)²` with G the gradient of one window's mean next-token NLL, on the
/// dense weights; and the paper's ablations, weight-only `Σ W²` and gradient-only `Σ_windows Σ G²`.
/// Sums are in Double. Only one projection's gradient exists at a time, unless `squareOfSummedGradient`
/// is asked for (it keeps Σ_windows G of every projection in Double, as the reference: 8 bytes per weight).
public struct FisherImportance: Sendable, Equatable {
    public struct Entry: Sendable, Equatable, Codable {
        /// Σ_windows Σ_i (G_i·W_i)²: FLRC's α, the `fisher` allocation.
        public var fisher: Double
        /// Σ_i W_i² (the `fisher-weight` ablation).
        public var weightOnly: Double
        /// Σ_windows Σ_i G_i² (the `fisher-gradient` ablation).
        public var gradientOnly: Double
        /// ‖G‖_F of the first window alone (checks a backward pass against a reference).
        public var firstWindowGradientNorm: Double
        /// Σ_i ((Σ_windows G)_i · W_i)², when asked for.
        public var squareOfSummedGradient: Double?

        public init(fisher: Double, weightOnly: Double, gradientOnly: Double, firstWindowGradientNorm: Double,
                    squareOfSummedGradient: Double? = nil) {
            self.fisher = fisher
            self.weightOnly = weightOnly
            self.gradientOnly = gradientOnly
            self.firstWindowGradientNorm = firstWindowGradientNorm
            self.squareOfSummedGradient = squareOfSummedGradient
        }
    }

    public var entries: [ProjectionID: Entry]
    /// Mean over the windows of their mean next-token NLL.
    public var meanLoss: Double
    public var windows: Int

    public struct Progress: Sendable {
        public var window: Int
        public var windows: Int
    }

    /// Runs the backward pass on every window (each its own mean NLL, as the reference fixture).
    public static func measure(_ pass: GradientPass, windows: [[Int]], weights: LlamaWeights, squareOfSummedGradient: Bool = false,
                               progress: (Progress) -> Void = { _ in }) -> FisherImportance {
        precondition(!windows.isEmpty, "Fisher importance needs at least one window")
        var entries: [ProjectionID: Entry] = [:]
        var summed: [ProjectionID: [Double]] = [:]
        var totalLoss = 0.0
        for (index, window) in windows.enumerated() {
            totalLoss += pass.lossAndGradients(window) { id, g in
                let w = weights[id].storage
                precondition(w.count == g.count, "gradient of \(id) has \(g.count) values for a weight of \(w.count)")
                var fisher = 0.0, gradient = 0.0
                for i in 0..<g.count {
                    let gw = Double(g[i]) * Double(w[i])
                    fisher += gw * gw
                    gradient += Double(g[i]) * Double(g[i])
                }
                if index == 0 {
                    let weightOnly = w.reduce(0.0) { $0 + Double($1) * Double($1) }
                    entries[id] = Entry(fisher: fisher, weightOnly: weightOnly, gradientOnly: gradient,
                                        firstWindowGradientNorm: gradient.squareRoot(), squareOfSummedGradient: nil)
                } else {
                    entries[id]!.fisher += fisher
                    entries[id]!.gradientOnly += gradient
                }
                if squareOfSummedGradient {
                    if summed[id] == nil { summed[id] = g.map(Double.init) } else { summed[id]!.withUnsafeMutableBufferPointer { s in for i in 0..<g.count { s[i] += Double(g[i]) } } }
                }
            }
            progress(Progress(window: index + 1, windows: windows.count))
        }
        for (id, s) in summed {
            let w = weights[id].storage
            entries[id]!.squareOfSummedGradient = zip(s, w).reduce(0.0) { let x = $1.0 * Double($1.1); return $0 + x * x }
        }
        return FisherImportance(entries: entries, meanLoss: totalLoss / Double(windows.count), windows: windows.count)
    }
}
