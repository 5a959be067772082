import Llama

/// Where a compression run's memory went (`compression.json` → `memory`): the measured peak and
/// the stage that reached it, the peak after each layer (flat when the run streams), and the size
/// of each part that can be resident at once. Sizes are exact byte counts of the arrays held,
/// except `factorisation_bytes`, an estimate (LAPACK's workspace is not visible from here).
public struct CompressionMemory: Codable, Sendable, Equatable {
    /// Finished layers were saved to the checkpoint's partial directory and dropped from memory
    /// (every recipe `Compressor.resumeObstacle` allows).
    public var streaming: Bool
    /// Peak resident set (VmHWM) of the whole run, as `/usr/bin/time` reports it.
    public var peakRSSBytes: Int
    /// The stage during which the peak was last raised ("factorisation, layer 3", "writing the checkpoint").
    public var peakStage: String
    /// Resident set when compression started: the loaded model (the Float32 parts), tokeniser, corpus.
    public var residentAtStartBytes: Int
    /// Peak resident set at the end of each layer, in order: when it stops rising after the first
    /// layers, memory does not grow with the layer count.
    public var peakRSSAfterLayer: [Int]
    /// Token embedding and output head held in Float32 (0 for those used in place from the map).
    public var embeddingAndHeadBytes: Int
    /// Weights used in place from the memory-mapped source: resident only while a layer reads them.
    public var mappedSourceBytes: Int
    /// Projection weights held in Float32 for the whole run (a Float32 source loads them all).
    public var residentProjectionBytes: Int
    /// The largest layer's projections widened to Float32 while that layer is compressed (mapped sources).
    public var layerWeightsBytes: Int
    /// The calibration windows' residual streams (Float32, windows × length × hidden).
    public var calibrationStreamBytes: Int
    /// The largest layer's statistics (Float64 Gram matrices, sums; Basis Sharing's running sums).
    public var statisticsBytes: Int
    /// The largest layer's whitenings (Float64 `[n × n]` per input site), held while its units are
    /// factorised (the statistics are gone by then).
    public var whiteningBytes: Int
    /// Estimated Float64 working set of the largest units factorised at once (one per worker). Per
    /// unit `[m × n]`, k = min(m, n), rank r: with `gesdd` 8·(3·m·n + 3·(m + n)·k + 4·k²) bytes (the
    /// stacked and scaled weights, LAPACKE's column-major copy, U and Vᵀ with their row-major copies,
    /// the workspace); with the Gram route 8·(2·m·n + 4·k² + (m + n)·r) (the two weights, the Gram
    /// matrix, its eigenvectors and dsyevd's workspace, the two factors).
    public var factorisationBytes: Int
    /// The largest layer's factors, held until that layer is saved (streaming runs).
    public var layerFactorsBytes: Int
    /// Factors held in memory until the end (runs that do not stream: every layer's).
    public var heldFactorsBytes: Int

    enum CodingKeys: String, CodingKey {
        case streaming
        case peakRSSBytes = "peak_rss_bytes"
        case peakStage = "peak_stage"
        case residentAtStartBytes = "resident_at_start_bytes"
        case peakRSSAfterLayer = "peak_rss_after_layer"
        case embeddingAndHeadBytes = "embedding_and_head_bytes"
        case mappedSourceBytes = "mapped_source_bytes"
        case residentProjectionBytes = "resident_projection_bytes"
        case layerWeightsBytes = "layer_weights_bytes"
        case calibrationStreamBytes = "calibration_stream_bytes"
        case statisticsBytes = "statistics_bytes"
        case whiteningBytes = "whitening_bytes"
        case factorisationBytes = "factorisation_bytes"
        case layerFactorsBytes = "layer_factors_bytes"
        case heldFactorsBytes = "held_factors_bytes"
    }

    /// The parts known before the first layer: what `model` holds in memory and what it maps.
    init(model: LlamaModel, streaming: Bool, layerCount: Int) {
        self.streaming = streaming
        residentAtStartBytes = ResidentMemory.currentBytes()
        peakRSSBytes = ResidentMemory.peakBytes()
        peakStage = "loading"
        peakRSSAfterLayer = []
        func resident(_ w: WeightMatrix) -> Int { w.isMapped ? 0 : w.count * w.precision.bytesPerValue }
        var head = 0
        if case .dense(let d) = model.outputHead, !model.configuration.tiedEmbeddings { head = resident(d.weight) }
        embeddingAndHeadBytes = resident(model.tokenEmbedding) + head
        mappedSourceBytes = model.mappedWeightBytes
        residentProjectionBytes = model.layers.reduce(0) { total, layer in
            total + layer.groups.reduce(0) { sum, group in
                sum + group.members.reduce(0) { t, member in
                    if case .dense(let d) = member { return t + resident(d.weight) }
                    return t
                }
            }
        }
        layerWeightsBytes = 0
        calibrationStreamBytes = 0
        statisticsBytes = 0
        whiteningBytes = 0
        factorisationBytes = 0
        layerFactorsBytes = 0
        heldFactorsBytes = 0
    }

    /// Reads the peak after a stage of `layer` (or of the run, nil) and names the stage when it raised it.
    mutating func sample(_ layer: Int?, stage: String) {
        let peak = ResidentMemory.peakBytes()
        if peak > peakRSSBytes {
            peakRSSBytes = peak
            peakStage = layer.map { "\(stage), layer \($0)" } ?? stage
        }
    }

    mutating func afterLayer(_ layer: Int, stage: String) {
        sample(layer, stage: stage)
        peakRSSAfterLayer.append(peakRSSBytes)
    }

    /// After the checkpoint is written (the last stage of a run).
    public mutating func sampleAfterWriting() { sample(nil, stage: "writing the checkpoint") }

    /// `factorisationBytes` for one layer's units at their ranks (nil: full rank), `concurrent` at
    /// a time (the largest ones).
    static func factorisationEstimate(_ profiles: [ProjectionProfile], ranks: [Int?], solver: SVDSolver, concurrent: Int) -> Int {
        let each = zip(profiles, ranks).map { p, rank -> Int in
            let m = p.outputs, n = p.inputs, k = min(m, n), r = rank ?? k
            guard r > 0 else { return 0 }  // kept dense: not factorised
            guard solver.resolved(rows: m, columns: n) == .gram else { return 8 * (3 * m * n + 3 * (m + n) * k + 4 * k * k) }
            return 8 * (2 * m * n + 4 * k * k + (m + n) * r)
        }
        return each.sorted(by: >).prefix(max(1, concurrent)).reduce(0, +)
    }
}
