import LinearAlgebra
import Llama

/// Where the inputs of layer l come from during calibration (algorithms.md §1.3, §1.6).
public enum CalibrationSource: String, CaseIterable, Codable, Sendable {
    /// Every layer sees the original model's activations (SVD-LLM (W) as released: statistics of
    /// the uncompressed model; the reference numbers use this).
    case dense
    /// Layer l sees the outputs of the already-compressed layers 0 ..< l, so its whitening accounts
    /// for the error upstream (SVD-LLM's sequential variant, at the granularity of a layer: within a
    /// layer the o, MLP and down inputs come from the layer's original projections).
    case compressed
}

/// Layer-by-layer calibration: the residual stream of every calibration window at the input of the
/// next layer, advanced one decoder layer at a time. Only one layer's statistics are alive at a
/// time, so memory is the windows' residual streams (`windows × length × hidden` Float32) plus one
/// layer's Gram matrices, not the model's.
public final class LayerwiseCalibration {
    public let windows: [[Int]]
    public let length: Int
    /// The next layer to run.
    public private(set) var layer = 0
    private var streams: [[Float]]  // per window [length × hidden]

    public init(model: LlamaModel, calibration: CalibrationSet) {
        windows = calibration.windows
        let length = calibration.length
        self.length = length
        let h = model.configuration.hiddenSize
        let workspace = Workspace(model: model, rows: length, contextCapacity: length)
        streams = calibration.windows.map { window in
            model.embed(window[...], workspace: workspace)
            return Array(UnsafeBufferPointer(start: workspace.residualStream, count: length * h))
        }
    }

    public var tokenCount: Int { windows.count * length }
    public var streamBytes: Int { streams.reduce(0) { $0 + $1.count * MemoryLayout<Float>.size } }

    /// Runs layer `self.layer` of `model` on every window, feeding `observer` (for statistics);
    /// when `advance` is true the windows' streams become that layer's outputs and the next call
    /// runs the next layer. `progress(window)` after each window.
    public func run(_ model: LlamaModel, observer: (any ForwardObserver)?, advance: Bool, progress: (Int) -> Void = { _ in }) {
        precondition(layer < model.configuration.layerCount, "every layer has been run")
        let h = model.configuration.hiddenSize
        let workspace = Workspace(model: model, rows: length, contextCapacity: length)
        let cache = KVCache(configuration: model.configuration, capacity: length)
        for w in streams.indices {
            streams[w].withUnsafeBufferPointer { workspace.residualStream.update(from: $0.baseAddress!, count: length * h) }
            cache.reset()
            model.forwardLayer(layer, rows: length, cache: cache, workspace: workspace, observer: observer)
            if advance {
                streams[w].withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: workspace.residualStream, count: length * h) }
            }
            progress(w + 1)
        }
        if advance { layer += 1 }
    }
}
