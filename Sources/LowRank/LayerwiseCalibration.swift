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
    /// As `compressed`, and each unit is fitted to the *dense* model's outputs: with X the dense
    /// model's inputs and X̂ the compressed prefix's at the same tokens, min ‖X·Wᵀ − X̂·W′ᵀ‖² +
    /// λ‖W′‖² over rank-r W′, which truncates W* = W·(X̂ᵀX)ᵀ·(X̂ᵀX̂ + λI)⁻¹ in the whitening of
    /// X̂ᵀX̂ + λI (`InputScaling.compensated`). SVD-LLM's sequential update refits only against
    /// W·X̂ (the original weight on the drifted inputs, algorithms.md §1.6), which leaves the drift
    /// itself in place; this corrects toward the dense activations as well. Our addition, beside
    /// the papers' recipes: it keeps a second residual stream (the dense one) and runs one paired
    /// pass per input site, in the order the layer reads them. It did not help SmolLM2
    /// (docs/RESULTS.md): opt-in.
    case compensated

    /// Whether the windows advance through the compressed layers (else through the dense ones).
    public var followsCompressedPrefix: Bool { self != .dense }

    /// Passes over the calibration windows per layer: dense collects and advances in one;
    /// compressed observes, then advances through the factors; compensated runs both streams once
    /// per input site, then advances.
    public var windowPassesPerLayer: Int {
        switch self {
        case .dense: 1
        case .compressed: 2
        case .compensated: 2 * InputSite.allCases.count + 1
        }
    }
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
        let pass = Pass(model: model, length: length)
        for w in streams.indices {
            runWindow(w, pass, observer: observer, advance: advance)
            progress(w + 1)
        }
        if advance { layer += 1 }
    }

    /// Runs layer `self.layer` on every window twice, window by window: first `reference` (another
    /// calibration of the same windows, at the same layer) through `referenceModel`, advancing it
    /// when `advanceReference`, then these streams through `model` without advancing (they advance
    /// later, through the compressed layer). `observer` sees the reference window's activations and
    /// then this one's, so it can pair the two streams token by token (`CompensationStatistics`).
    public func runPaired(_ model: LlamaModel, reference: LayerwiseCalibration, referenceModel: LlamaModel,
                          observer: CompensationStatistics, advanceReference: Bool, progress: (Int) -> Void = { _ in }) {
        precondition(reference.layer == layer && reference.windows == windows && reference.length == length,
                     "the reference calibration must hold the same windows at the same layer")
        let pass = Pass(model: model, length: length)
        let referencePass = Pass(model: referenceModel, length: length)
        for w in streams.indices {
            observer.phase = .reference
            reference.runWindow(w, referencePass, observer: observer, advance: advanceReference)
            observer.phase = .compressed
            runWindow(w, pass, observer: observer, advance: false)
            progress(w + 1)
        }
        if advanceReference { reference.layer += 1 }
    }

    /// One model's scratch for running windows through a layer.
    private struct Pass {
        var model: LlamaModel
        var workspace: Workspace
        var cache: KVCache

        init(model: LlamaModel, length: Int) {
            self.model = model
            workspace = Workspace(model: model, rows: length, contextCapacity: length)
            cache = KVCache(configuration: model.configuration, capacity: length)
        }
    }

    private func runWindow(_ w: Int, _ pass: Pass, observer: (any ForwardObserver)?, advance: Bool) {
        let count = length * pass.model.configuration.hiddenSize
        streams[w].withUnsafeBufferPointer { pass.workspace.residualStream.update(from: $0.baseAddress!, count: count) }
        pass.cache.reset()
        pass.model.forwardLayer(layer, rows: length, cache: pass.cache, workspace: pass.workspace, observer: observer)
        if advance {
            streams[w].withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: pass.workspace.residualStream, count: count) }
        }
    }
}
