import LinearAlgebra
import Llama

/// ASVD's sensitivity measurement (algorithms.md §3.3 step 2): the calibration loss of the model
/// with exactly one projection replaced. The residual stream of every probe window at the input of
/// every layer is computed once from the dense model, so probing a projection of layer l re-runs
/// only layers l … L−1 (on average half the model). Memory: layers × windows × length × hidden
/// Float32 (SmolLM2, 4 windows of 512: 141 MB).
public final class SensitivityProbe {
    public let windows: [[Int]]
    private let model: LlamaModel
    private var streams: [[[Float]]]  // [layer][window] → [length × hidden], the stream entering that layer
    private let cache: KVCache
    private let logits: UnsafeMutablePointer<Float>
    private static let logitRows = 64

    public init(model: LlamaModel, windows: [[Int]]) {
        precondition(!windows.isEmpty && windows.allSatisfy { $0.count == windows[0].count && $0.count >= 2 }, "probe windows must share one length ≥ 2")
        self.model = model
        self.windows = windows
        let length = windows[0].count, h = model.configuration.hiddenSize
        let workspace = Workspace(model: model, rows: length, contextCapacity: length)
        cache = KVCache(configuration: model.configuration, capacity: length)
        logits = .allocate(capacity: Self.logitRows * model.configuration.vocabularySize)
        var streams = [[[Float]]](repeating: [], count: model.configuration.layerCount)
        for window in windows {
            model.embed(window[...], workspace: workspace)
            cache.reset()
            for l in 0..<model.configuration.layerCount {
                streams[l].append(Array(UnsafeBufferPointer(start: workspace.residualStream, count: length * h)))
                model.forwardLayer(l, rows: length, cache: cache, workspace: workspace)
            }
        }
        self.streams = streams
    }

    deinit { logits.deallocate() }

    /// Mean next-token NLL over the probe windows with projection `id` replaced by `linear`.
    public func loss(replacing id: ProjectionID, with linear: Linear) -> Double {
        var probed = model
        probed[id] = linear
        return loss(of: probed, from: id.layer)
    }

    /// Every profile's sensitivity list: the loss with the unit truncated to each candidate kept
    /// fraction (its uniform rank for that fraction; `truncated` gives the edit that installs it),
    /// one probe at a time.
    func measure(_ profiles: inout [ProjectionProfile], candidates: [Double],
                 truncated: (ProjectionID, Int) throws -> (inout LlamaModel) -> Void,
                 progress: (Compressor.Progress) -> Void) throws {
        let total = profiles.count * candidates.count
        var done = 0
        progress(Compressor.Progress(stage: .search, done: 0, total: total, layer: 0))
        for i in profiles.indices {
            let p = profiles[i]
            profiles[i].sensitivity = try candidates.map { fraction in
                var probed = model
                try truncated(p.id, p.uniformRank(keptFraction: fraction))(&probed)
                let loss = self.loss(of: probed, from: p.members.map(\.layer).min()!)
                done += 1
                progress(Compressor.Progress(stage: .search, done: done, total: total, layer: p.id.layer))
                return SensitivityPoint(keptFraction: fraction, loss: loss)
            }
        }
    }

    /// The dense model's loss (what every probe is compared with).
    public func denseLoss() -> Double { loss(of: model, from: 0) }

    private func loss(of m: LlamaModel, from layer: Int) -> Double {
        let length = windows[0].count, h = m.configuration.hiddenSize, vocabulary = m.configuration.vocabularySize
        // Sized for this model: a low-rank replacement needs scratch the dense model does not.
        let workspace = Workspace(model: m, rows: length, contextCapacity: length)
        var total = 0.0
        for (w, window) in windows.enumerated() {
            streams[layer][w].withUnsafeBufferPointer { workspace.residualStream.update(from: $0.baseAddress!, count: length * h) }
            cache.reset()
            m.forwardSuffix(from: layer, rows: length, cache: cache, workspace: workspace)
            var r = 0
            while r < length - 1 {
                let n = min(Self.logitRows, length - 1 - r)
                m.logits(workspace: workspace, rows: r..<(r + n), into: logits)
                for i in 0..<n {
                    let row = logits + i * vocabulary
                    total += VectorMath.logSumExp(row, count: vocabulary) - Double(row[window[r + i + 1]])
                }
                r += n
            }
        }
        return total / Double(windows.count * (length - 1))
    }
}
