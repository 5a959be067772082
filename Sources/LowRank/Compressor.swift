import Foundation
import Gradients
import LinearAlgebra
import Llama

public enum Compressor {
    /// What one compression step was (for progress): a calibration window through a layer, or a
    /// projection factorised.
    public struct Progress: Sendable {
        public var stage: Stage
        public var done: Int
        public var total: Int
        /// The layer being calibrated or factorised (0 during the importance stage).
        public var layer: Int
    }

    /// The stages a run reports, in order (importance only for allocators that read it).
    public enum Stage: String, Sendable {
        /// The backward pass over the calibration windows (`done`/`total` count windows).
        case importance
        /// Layer-by-layer calibration and factorisation (`done`/`total` count steps).
        case layers
        /// ASVD's sensitivity probes after the last layer (`done`/`total` count probes).
        case search
    }

    /// Profile, allocate, factorise. Factorises every projection of `model` at the rank
    /// `recipe.allocation` chooses, scaling by the method's statistic. Layer by layer: run the layer
    /// on every calibration window (its statistics only), decompose its seven projections, drop the
    /// statistics, move on; with `recipe.calibrateOn == .compressed` the windows then pass through
    /// the compressed layer. An allocator that reads shapes only (uniform) fixes the ranks first and
    /// each layer is truncated at once; one that reads spectra gets every projection's singular
    /// values after the last layer, and the full-rank factors (Float32) wait for its plan.
    /// A projection whose rank would not save parameters stays dense and the report says so.
    /// asvd-search with `savedSensitivity` (whose source the recipe names) takes its probes from an
    /// earlier run instead of measuring them.
    public static func compress(_ model: LlamaModel, weights: LlamaWeights, recipe: CompressionRecipe,
                                calibration: CalibrationSet?, savedSensitivity: SavedSensitivity? = nil,
                                progress: (Progress) -> Void = { _ in }) throws
        -> (LlamaModel, CompressionReport) {
        try compress(model, weights: weights, recipe: recipe,
                     allocator: recipe.allocation.allocator(beta: recipe.beta, uniformFallback: recipe.uniformFallback, fisherCap: recipe.fisherCap),
                     calibration: calibration, savedSensitivity: savedSensitivity, progress: progress)
    }

    /// The same with any allocator (the recipe's `allocation` is then only a label).
    public static func compress(_ model: LlamaModel, weights: LlamaWeights, recipe: CompressionRecipe, allocator: any RankAllocator,
                                calibration: CalibrationSet?, savedSensitivity: SavedSensitivity? = nil,
                                progress: (Progress) -> Void = { _ in }) throws
        -> (LlamaModel, CompressionReport) {
        guard recipe.removedFraction > 0 && recipe.removedFraction < 1 else {
            throw CompressionError.invalidBudget(recipe.removedFraction)
        }
        precondition(recipe.sensitivitySource == savedSensitivity?.source, "the recipe must name the record the reused probes came from")
        let c = model.configuration
        let clock = ContinuousClock()
        var shapes = ProjectionProfile.shapes(of: c)
        let plan: RankPlan?
        var allocationSeconds: Double?
        switch allocator.input {
        case .shapes:
            plan = try allocator.allocate(shapes, keptFraction: recipe.keptFraction)
        case .spectra, .sensitivity:
            plan = nil
        case .fisherImportance:
            // Gradients of the dense model on the calibration windows, before anything is factorised.
            guard let calibration else { throw CompressionError.missingAllocationCalibration(recipe.allocation) }
            let started = clock.now
            progress(Progress(stage: .importance, done: 0, total: calibration.windows.count, layer: 0))
            let importance = FisherImportance.measure(GradientPass(configuration: c, weights: weights), windows: calibration.windows,
                                                      weights: weights) {
                progress(Progress(stage: .importance, done: $0.window, total: $0.windows, layer: 0))
            }
            for i in shapes.indices { shapes[i].fisher = importance.entries[shapes[i].id] }
            plan = try allocator.allocate(shapes, keptFraction: recipe.keptFraction)
            allocationSeconds = (clock.now - started).seconds
        }
        if plan == nil && recipe.calibrateOn == .compressed { throw AllocationError.needsDenseCalibration(recipe.allocation) }
        var pending: [ProjectionID: PendingFactorization] = [:]  // spectra allocators: full-rank factors awaiting the plan
        var calibrationTime = Duration.zero, factorisationTime = Duration.zero
        var compressed = model
        var reports: [ProjectionReport] = []
        let kinds = ProjectionKind.allCases
        let layerwise: LayerwiseCalibration?
        if recipe.method.needsCalibration {
            guard let calibration else { throw CompressionError.missingCalibration(recipe.method) }
            let started = clock.now
            layerwise = LayerwiseCalibration(model: model, calibration: calibration)
            calibrationTime += clock.now - started
        } else {
            layerwise = nil
        }
        let passes = layerwise == nil ? 0 : (recipe.calibrateOn == .compressed ? 2 : 1)
        let stepsPerLayer = passes * (layerwise?.windows.count ?? 0) + kinds.count
        var peakBytes = 0
        progress(Progress(stage: .layers, done: 0, total: c.layerCount * stepsPerLayer, layer: 0))
        for layer in 0..<c.layerCount {
            let base = layer * stepsPerLayer
            var statistics: ActivationStatistics?
            if let layerwise {
                let started = clock.now
                let collector = ActivationStatistics(gram: recipe.method.needsGram, absoluteMean: recipe.method.needsAbsoluteMean)
                // Dense: the original layer's outputs feed the next layer in the same pass.
                // Compressed: this pass only observes; the stream advances through the factors below.
                let source = recipe.calibrateOn == .compressed ? compressed : model
                layerwise.run(source, observer: collector, advance: recipe.calibrateOn == .dense) {
                    progress(Progress(stage: .layers, done: base + $0, total: c.layerCount * stepsPerLayer, layer: layer))
                }
                peakBytes = max(peakBytes, collector.byteCount + layerwise.streamBytes)
                statistics = collector
                calibrationTime += clock.now - started
            }
            let started = clock.now
            // One scaling per input site, shared by the projections that read it.
            var scalings: [InputSite: (InputScaling, Double, Int)] = [:]
            for site in InputSite.allCases {
                let key = ActivationStatistics.Key(layer: layer, site: site)
                switch recipe.method {
                case .svd:
                    scalings[site] = (.identity, 0, 0)
                case .asvd:
                    guard let mean = statistics?.meanAbsolute(key) else { throw CompressionError.missingStatistics(layer: layer, site: site) }
                    scalings[site] = (.diagonal(activationScale(meanAbsolute: mean, alpha: recipe.asvdAlpha)), 0, 0)
                case .svdLLM:
                    guard let gram = statistics?.symmetricGram(key) else { throw CompressionError.missingStatistics(layer: layer, site: site) }
                    switch recipe.whitening {
                    case .cholesky:
                        let whitening = try Whitening.cholesky(gram: gram)
                        scalings[site] = (.cholesky(whitening.s), whitening.shift, 0)
                    case .eigen:
                        let whitening = try Whitening.eigen(gram: gram)
                        scalings[site] = (.eigen(vectors: whitening.vectors, roots: whitening.roots), 0, whitening.clamped)
                    }
                }
            }
            statistics = nil  // the Gram matrices go now; only the scalings are needed
            // The seven projections of a layer in parallel (LAPACK is single-threaded per call).
            let box = UncheckedSendableBox(UnsafeMutableBufferPointer<Result<(Outcome, ProjectionReport), any Error>?>.allocate(capacity: kinds.count))
            box.value.initialize(repeating: nil)
            defer {
                _ = box.value.deinitialize()
                box.value.deallocate()
            }
            Parallel.forEach(kinds.count) { i in
                let id = ProjectionID(layer: layer, kind: kinds[i])
                let (scaling, shift, clamped) = scalings[id.kind.inputSite]!
                box.value[i] = Result {
                    // Without a plan yet: full rank, truncated once the allocator has seen every spectrum.
                    var (outcome, report) = try factorizeProjection(weights[id], id: id, rank: plan.map { $0[id] ?? 0 },
                                                                    factorsPastBreakEven: plan?.factorsPastBreakEven ?? false,
                                                                    scaling: scaling, shift: shift)
                    if case .eigen = scaling { report.clampedEigenvalues = clamped }
                    return (outcome, report)
                }
            }
            let stepsBefore = base + (passes == 0 ? 0 : layerwise?.windows.count ?? 0)
            for (i, kind) in kinds.enumerated() {
                let id = ProjectionID(layer: layer, kind: kind)
                let (outcome, report) = try box.value[i]!.get()
                switch outcome {
                case .final(let linear):
                    compressed[id] = linear
                    var report = report
                    report.importance = shapes.first { $0.id == id }?.fisher.map { allocator.importance(of: $0) } ?? nil
                    reports.append(report)
                case .pending(var factors):
                    factors.report = report  // with the eigenvalue count added above
                    pending[id] = factors
                }
                progress(Progress(stage: .layers, done: stepsBefore + i + 1, total: c.layerCount * stepsPerLayer, layer: layer))
            }
            factorisationTime += clock.now - started
            if let layerwise, recipe.calibrateOn == .compressed {
                let started = clock.now
                layerwise.run(compressed, observer: nil, advance: true) {
                    progress(Progress(stage: .layers, done: stepsBefore + kinds.count + $0, total: c.layerCount * stepsPerLayer, layer: layer))
                }
                calibrationTime += clock.now - started
            }
        }
        if plan == nil {
            var profiles = try shapes.map { p -> ProjectionProfile in
                guard let factors = pending[p.id] else { throw AllocationError.missingSpectrum(p.id) }
                var profile = p
                profile.singularValues = factors.singularValues
                return profile
            }
            if allocator.input == .sensitivity, let savedSensitivity {
                for i in profiles.indices {
                    guard let points = savedSensitivity.points[profiles[i].id] else { throw AllocationError.missingSensitivity(profiles[i].id) }
                    profiles[i].sensitivity = points
                }
            } else if allocator.input == .sensitivity {
                guard let calibration else { throw CompressionError.missingAllocationCalibration(recipe.allocation) }
                let started = clock.now
                let probe = SensitivityProbe(model: model, windows: Array(calibration.windows.prefix(recipe.searchSamples)))
                probe.measure(&profiles, candidates: SensitivitySearchAllocator.candidates,
                              truncated: { id, rank in pending[id]!.truncated(to: rank).0 }, progress: progress)
                allocationSeconds = (clock.now - started).seconds
            }
            let chosen = try allocator.allocate(profiles, keptFraction: recipe.keptFraction)
            for p in profiles {
                var (linear, report) = pending.removeValue(forKey: p.id)!.truncated(to: chosen[p.id] ?? 0)
                report.sensitivity = p.sensitivity
                compressed[p.id] = linear
                reports.append(report)
            }
        }
        let before = reports.reduce(0) { $0 + $1.parametersBefore }
        let after = reports.reduce(0) { $0 + $1.parametersAfter }
        let counts = ParameterCount(configuration: c)
        let report = CompressionReport(projections: reports, projectionParametersBefore: before, projectionParametersAfter: after,
                                       modelParametersBefore: counts.total, modelParametersAfter: counts.total - before + after,
                                       factorisationSeconds: factorisationTime.seconds, calibrationSeconds: calibrationTime.seconds,
                                       allocationSeconds: allocationSeconds,
                                       calibrationTokens: layerwise?.tokenCount ?? 0, peakCalibrationBytes: peakBytes)
        return (compressed, report)
    }

    /// What factorising one projection gives: its final form, or (no plan yet) full-rank factors
    /// that wait for the allocator.
    enum Outcome {
        case final(Linear)
        case pending(PendingFactorization)
    }

    /// Factorises `w` at `rank`; with no rank yet (nil: the allocator needs every spectrum first)
    /// at full rank min(m, n), kept pending. A rank that would not save parameters keeps `w` dense.
    static func factorizeProjection(_ w: Matrix<Float>, id: ProjectionID, rank planned: Int?, factorsPastBreakEven: Bool = false,
                                    scaling: InputScaling, shift: Double) throws -> (Outcome, ProjectionReport) {
        let m = w.rows, n = w.columns
        var report = ProjectionReport(layer: id.layer, projection: id.kind.shortName, outputs: m, inputs: n, rank: nil,
                                      parametersBefore: m * n, parametersAfter: m * n, relativeTruncationError: nil,
                                      whiteningShift: shift, note: nil)
        if let planned, let note = keptDenseNote(rank: planned, outputs: m, inputs: n, factorsPastBreakEven: factorsPastBreakEven) {
            report.note = note
            return (.final(.dense(DenseLinear(w))), report)
        }
        let rank = planned ?? min(m, n)
        let f = try ScaledSVD.factorize(Matrix(rows: m, columns: n, storage: w.storage.map(Double.init)), rank: rank, scaling: scaling)
        let left = Matrix(rows: m, columns: rank, storage: f.left.storage.map(Float.init))
        let right = Matrix(rows: rank, columns: n, storage: f.right.storage.map(Float.init))
        let nonFinite = left.storage.filter { !$0.isFinite }.count + right.storage.filter { !$0.isFinite }.count
        guard nonFinite == 0 else { throw CompressionError.nonFiniteFactors(id, count: nonFinite) }
        report.effectiveRank = EffectiveRank.energy(f.singularValues)
        guard planned != nil else {
            return (.pending(PendingFactorization(left: left, right: right, singularValues: f.singularValues, dense: w, report: report)), report)
        }
        report.rank = rank
        report.parametersAfter = rank * (m + n)
        report.relativeTruncationError = f.relativeTruncationError
        return (.final(.lowRank(LowRankLinear(left: left, right: right))), report)
    }

    /// Why a projection stays dense at `rank` (0, or no saving: r·(m+n) ≥ m·n, unless the plan
    /// factors past break-even), or nil.
    static func keptDenseNote(rank: Int, outputs m: Int, inputs n: Int, factorsPastBreakEven: Bool = false) -> String? {
        if rank < 1 { return "rank would be 0: kept dense" }
        return rank * (m + n) < m * n || factorsPastBreakEven ? nil : "rank \(rank) would not save parameters: kept dense"
    }
}

/// Full-rank factors of one projection, √Σ folded into both, waiting for the plan: every rank
/// prefix is the truncated factorisation (the scaling is undone row by row on the right factor,
/// so truncating after undoing it equals undoing it after truncating).
struct PendingFactorization {
    var left: Matrix<Float>  // [m × k], k = min(m, n)
    var right: Matrix<Float>  // [k × n]
    var singularValues: [Double]
    var dense: Matrix<Float>  // [m × n], kept for a rank that saves nothing
    var report: ProjectionReport  // what factorising said; rank, parameters and error come with the plan

    func truncated(to rank: Int) -> (Linear, ProjectionReport) {
        var report = report
        let m = left.rows, n = right.columns
        if let note = Compressor.keptDenseNote(rank: rank, outputs: m, inputs: n) {
            report.note = note
            return (.dense(DenseLinear(dense)), report)
        }
        var l = Matrix<Float>.zeros(rows: m, columns: rank)  // [m × rank]: the first rank columns
        for i in 0..<m { for k in 0..<rank { l[i, k] = left[i, k] } }
        let r = Matrix(rows: rank, columns: n, storage: Array(right.storage.prefix(rank * n)))  // [rank × n]
        report.rank = rank
        report.parametersAfter = rank * (m + n)
        report.relativeTruncationError = Factorization.relativeTruncationError(singularValues, rank: rank)
        return (.lowRank(LowRankLinear(left: l, right: r)), report)
    }
}
