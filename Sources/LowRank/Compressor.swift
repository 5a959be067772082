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

    /// What a resumable run has finished: layers `0..<count` (their compressed groups stay where
    /// `LayerCheckpoint.finished` saved them), their reports and the time spent.
    public struct FinishedLayers: Sendable {
        public var count: Int
        public var reports: [ProjectionReport]
        public var calibrationSeconds: Double
        public var factorisationSeconds: Double

        public init(count: Int, reports: [ProjectionReport], calibrationSeconds: Double, factorisationSeconds: Double) {
            self.count = count
            self.reports = reports
            self.calibrationSeconds = calibrationSeconds
            self.factorisationSeconds = factorisationSeconds
        }
    }

    /// Where a streaming, resumable run keeps its finished layers. `finished(_:)` is called after
    /// each layer with everything done so far (that layer's groups only: earlier ones were given
    /// before), and must have saved it when it returns; the run then drops the layer from memory,
    /// so memory does not grow with the layer count. The model `compress` returns then has the
    /// source's dense groups in every layer: the checkpoint is assembled from the saved layers
    /// (`Checkpoint.write(_:savedLayers:…)`). `restore(l)` reads a saved layer's groups back (only
    /// when calibrating on the compressed prefix, to pass the windows through a layer finished by
    /// an earlier run).
    public struct LayerCheckpoint {
        /// Layers finished by an earlier run of the same recipe on the same source (nil: none).
        public var resumeFrom: FinishedLayers?
        public var finished: (_ layer: Int, _ groups: [GroupID: ProjectionGroup], _ done: FinishedLayers) throws -> Void
        public var restore: (_ layer: Int) throws -> [GroupID: ProjectionGroup]

        public init(resumeFrom: FinishedLayers?, restore: @escaping (Int) throws -> [GroupID: ProjectionGroup],
                    finished: @escaping (Int, [GroupID: ProjectionGroup], FinishedLayers) throws -> Void) {
            self.resumeFrom = resumeFrom
            self.restore = restore
            self.finished = finished
        }
    }

    /// Why a recipe cannot be resumed layer by layer (nil when it can): its ranks must be fixed
    /// before the first factorisation, and no factor may span layers.
    public static func resumeObstacle(_ recipe: CompressionRecipe) -> String? {
        let allocator = recipe.allocation.allocator(beta: recipe.beta, uniformFallback: recipe.uniformFallback, fisherCap: recipe.fisherCap)
        if !ranksKnownBeforeFactorising(allocator, recipe: recipe) {
            return recipe.allocation.readsSensitivity
                ? "--allocation \(recipe.allocation.rawValue) truncates only after every layer's probes are measured, so no layer is final before the end (reuse a dense run's probes with --sensitivity-from DIR to fix the ranks first)"
                : "--allocation \(recipe.allocation.rawValue) truncates only after every layer's spectrum is known, so no layer is final before the end"
        }
        if recipe.method.sharesAcrossLayers { return "basis-sharing finishes a group of layers at once (its Gram sums span layers)" }
        return nil
    }

    /// Whether `allocator` fixes every rank before the first layer is factorised: it reads shapes
    /// or Fisher importances, or it reads sensitivity probes reused from an earlier run (`recipe`
    /// names their source), whose search needs nothing else. Only then can a layer be final at
    /// once, so only then can the run stream, resume, or calibrate on the compressed prefix.
    public static func ranksKnownBeforeFactorising(_ allocator: any RankAllocator, recipe: CompressionRecipe) -> Bool {
        switch allocator.input {
        case .shapes, .fisherImportance: true
        case .sensitivity: recipe.sensitivitySource != nil
        case .spectra: false
        }
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

    /// Profile, allocate, factorise. Factorises every unit of `model` (a projection, or for cat,
    /// skipcat and basis-sharing several as one: `FactorizationUnit`) at the rank
    /// `recipe.allocation` chooses, scaling by the method's statistic. Layer by layer: run the layer
    /// on every calibration window (its statistics only), decompose its seven projections, drop the
    /// statistics, move on; with `recipe.calibrateOn == .compressed` the windows then pass through
    /// the compressed layer. An allocator that reads shapes only (uniform) fixes the ranks first and
    /// each layer is truncated at once; one that reads spectra gets every projection's singular
    /// values after the last layer, and the full-rank factors (Float32) wait for its plan.
    /// A projection whose rank would not save parameters stays dense and the report says so.
    /// asvd-search with `savedSensitivity` (whose source the recipe names) takes its probes from an
    /// earlier run instead of measuring them, so its ranks are fixed first, as uniform's are (and
    /// it may calibrate on the compressed prefix, stream and resume).
    /// With `checkpoint` (recipes that `resumeObstacle` allows) each finished layer is handed to
    /// it and dropped from memory (streaming), and a run that names layers finished earlier skips
    /// them: it only passes the calibration windows through them again (the same operations, so
    /// the same streams), and the result equals an uninterrupted run's bit for bit.
    /// Weights the loader kept in half precision (`LoadOptions.mapsStoredHalfPrecision`, with
    /// `model` built `halfAsStored`) are widened to Float32 one layer at a time, while that layer
    /// is calibrated and factorised, and their mapped pages are released after it: the same values
    /// as a Float32 load, so the same result.
    public static func compress(_ model: LlamaModel, weights: LlamaWeights, recipe: CompressionRecipe,
                                calibration: CalibrationSet?, savedSensitivity: SavedSensitivity? = nil, checkpoint: LayerCheckpoint? = nil,
                                progress: (Progress) -> Void = { _ in }) throws
        -> (LlamaModel, CompressionReport) {
        try compress(model, weights: weights, recipe: recipe,
                     allocator: recipe.allocation.allocator(beta: recipe.beta, uniformFallback: recipe.uniformFallback, fisherCap: recipe.fisherCap),
                     calibration: calibration, savedSensitivity: savedSensitivity, checkpoint: checkpoint, progress: progress)
    }

    /// The same with any allocator (the recipe's `allocation` is then only a label).
    public static func compress(_ model: LlamaModel, weights: LlamaWeights, recipe: CompressionRecipe, allocator: any RankAllocator,
                                calibration: CalibrationSet?, savedSensitivity: SavedSensitivity? = nil, checkpoint: LayerCheckpoint? = nil,
                                progress: (Progress) -> Void = { _ in }) throws
        -> (LlamaModel, CompressionReport) {
        if checkpoint != nil, let obstacle = resumeObstacle(recipe) { throw CompressionError.notResumable(obstacle) }
        guard recipe.removedFraction > 0 && recipe.removedFraction < 1 else {
            throw CompressionError.invalidBudget(recipe.removedFraction)
        }
        precondition(recipe.sensitivitySource == savedSensitivity?.source, "the recipe must name the record the reused probes came from")
        let c = model.configuration
        guard recipe.groupSize >= 1 && recipe.groupSize <= c.layerCount else { throw CompressionError.invalidGroupSize(recipe.groupSize, layers: c.layerCount) }
        if recipe.method.sharesAcrossLayers && recipe.calibrateOn.followsCompressedPrefix { throw CompressionError.sharedBasisNeedsDenseCalibration }
        if recipe.calibrateOn == .compensated && !recipe.method.needsGram { throw CompressionError.compensationNeedsWhitening(recipe.method) }
        let clock = ContinuousClock()
        let units = FactorizationUnit.units(method: recipe.method, configuration: c, groupSize: recipe.groupSize)
        var shapes = units.map { $0.profile(c) }
        let plan: RankPlan?
        var allocationSeconds: Double?
        var sensitivityBaseline: Double?
        switch allocator.input {
        case .shapes:
            plan = try allocate(allocator, shapes, recipe: recipe)
        case .sensitivity:
            if let savedSensitivity {
                // Reused probes: the search needs only them and the shapes, so the ranks are fixed
                // now (the probes were measured on factors from dense calibration, as every
                // asvd-search measures them; a sequential run then calibrates at these ranks).
                // The dense loss on the probe windows: the record's, or measured now (records made
                // before it was kept) by plain scoring, one forward pass per window: a
                // SensitivityProbe would also keep every layer's input stream, which a streaming
                // run at 8B shapes cannot spare (1 GB for four windows).
                let baseline: Double
                if let recorded = savedSensitivity.baseline {
                    baseline = recorded
                } else {
                    guard let calibration else { throw CompressionError.missingAllocationCalibration(recipe.allocation) }
                    let windows = calibration.windows.prefix(recipe.searchSamples)
                    baseline = windows.map { model.score($0).meanNLL }.reduce(0, +) / Double(windows.count)
                }
                for i in shapes.indices {
                    guard let points = savedSensitivity.points[shapes[i].id] else { throw AllocationError.missingSensitivity(shapes[i].id) }
                    shapes[i].sensitivity = points
                    shapes[i].sensitivityBaseline = baseline
                }
                sensitivityBaseline = baseline
                plan = try allocate(allocator, shapes, recipe: recipe)
            } else {
                plan = nil  // the probes need every projection's full-rank factors first
            }
        case .spectra:
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
            for (i, unit) in units.enumerated() { shapes[i].fisher = .summed(unit.members.compactMap { importance.entries[$0] }) }
            plan = try allocate(allocator, shapes, recipe: recipe)
            allocationSeconds = (clock.now - started).seconds
        }
        if plan == nil && recipe.calibrateOn.followsCompressedPrefix { throw AllocationError.needsDenseCalibration(recipe.allocation) }
        var pending: [ProjectionID: PendingFactorization] = [:]  // spectra allocators: full-rank factors awaiting the plan
        var calibrationTime = Duration.zero, factorisationTime = Duration.zero
        var compressed = model
        var reports: [ProjectionReport] = []
        let layerwise: LayerwiseCalibration?
        // Compensated calibration: the dense model's streams beside the compressed prefix's.
        var reference: LayerwiseCalibration?
        if recipe.method.needsCalibration {
            guard let calibration else { throw CompressionError.missingCalibration(recipe.method) }
            let started = clock.now
            layerwise = LayerwiseCalibration(model: model, calibration: calibration)
            if recipe.calibrateOn == .compensated { reference = LayerwiseCalibration(model: model, calibration: calibration) }
            calibrationTime += clock.now - started
        } else {
            layerwise = nil
        }
        let passes = layerwise == nil ? 0 : recipe.calibrateOn.windowPassesPerLayer
        let windowSteps = passes * (layerwise?.windows.count ?? 0)
        let totalSteps = c.layerCount * windowSteps + units.count
        var done = 0
        var peakBytes = 0
        // Basis Sharing: the Gram matrices of the shared sites summed over the group's layers so far.
        var groupGrams: [InputSite: Matrix<Double>] = [:]
        progress(Progress(stage: .layers, done: 0, total: totalSteps, layer: 0))
        let restored = checkpoint?.resumeFrom
        if let restored {
            precondition(restored.count <= c.layerCount, "more finished layers than the model has")
            reports = restored.reports
            calibrationTime = .seconds(restored.calibrationSeconds)
            factorisationTime = .seconds(restored.factorisationSeconds)
        }
        // The dense model the windows run through: `model`, with the layer at hand in Float32.
        var working = model
        var memory = CompressionMemory(model: model, streaming: checkpoint != nil, layerCount: c.layerCount)
        for layer in 0..<c.layerCount {
            // Weights kept in half precision are widened for this layer only (nil: all Float32 already).
            let widened = float32Layer(layer, of: model, weights: weights)
            if let widened {
                working.layers[layer] = widened.layer
                compressed.layers[layer] = widened.layer
                memory.layerWeightsBytes = max(memory.layerWeightsBytes, widened.bytes)
            }
            defer {
                // Back to the weights as stored; a streaming run keeps finished layers only in its checkpoint.
                working.layers[layer] = model.layers[layer]
                if checkpoint != nil { compressed.layers[layer] = model.layers[layer] }
                weights.releaseMappedPages(layer: layer)
            }
            if let restored, layer < restored.count {
                // Finished earlier: the windows pass through the layer as they did then (the dense
                // layer, or the compressed one when calibrating on the compressed prefix).
                if let layerwise {
                    if recipe.calibrateOn.followsCompressedPrefix, let checkpoint {
                        for (id, group) in try checkpoint.restore(layer) { compressed[id] = group }
                    }
                    let before = done
                    reference?.run(working, observer: nil, advance: true)
                    layerwise.run(recipe.calibrateOn.followsCompressedPrefix ? compressed : working, observer: nil, advance: true) {
                        progress(Progress(stage: .layers, done: before + $0, total: totalSteps, layer: layer))
                    }
                }
                done += passes * (layerwise?.windows.count ?? 0) + units.filter { $0.lastLayer == layer }.count
                progress(Progress(stage: .layers, done: done, total: totalSteps, layer: layer))
                memory.afterLayer(layer, stage: "calibration")
                continue
            }
            // Compensated: one stage per input site, in the order the layer reads them, so each site's
            // compressed-stream inputs come through the units already compressed before it (o's
            // input through the compressed q/k/v, and so on), as they will at inference. Fitting o
            // to the dense outputs from inputs made by the dense q/k/v would correct their drift a
            // second time, after q/k/v had already corrected it. Every other source: one stage.
            let stages: [[InputSite]] = reference != nil ? InputSite.allCases.map { [$0] } : [InputSite.allCases]
            let readyInLayer = units.filter { $0.lastLayer == layer }
            for (stageIndex, stage) in stages.enumerated() {
                var statistics: ActivationStatistics?
                var compensation: CompensationStatistics?
                if let layerwise {
                    let started = clock.now
                    let before = done
                    let collectedBytes: Int
                    if let reference {
                        // Compensated: each window through the layer twice, the dense stream (which advances
                        // after the last stage) and the compressed prefix's, paired token by token.
                        let collector = CompensationStatistics(layer: layer, sites: Set(stage))
                        layerwise.runPaired(compressed, reference: reference, referenceModel: working, observer: collector,
                                            advanceReference: stageIndex == stages.count - 1) {
                            progress(Progress(stage: .layers, done: before + 2 * $0, total: totalSteps, layer: layer))
                        }
                        done += 2 * layerwise.windows.count
                        collectedBytes = collector.byteCount
                        compensation = collector
                    } else {
                        let collector = ActivationStatistics(gram: recipe.method.needsGram, absoluteMean: recipe.method.needsAbsoluteMean)
                        // Dense: the original layer's outputs feed the next layer in the same pass.
                        // Compressed: this pass only observes; the stream advances through the factors below.
                        let source = recipe.calibrateOn == .compressed ? compressed : working
                        layerwise.run(source, observer: collector, advance: recipe.calibrateOn == .dense) {
                            progress(Progress(stage: .layers, done: before + $0, total: totalSteps, layer: layer))
                        }
                        done += layerwise.windows.count
                        collectedBytes = collector.byteCount
                        statistics = collector
                    }
                    let sharedGrams = groupGrams.values.reduce(0) { $0 + $1.storage.count * 8 }
                    let streamBytes = layerwise.streamBytes + (reference?.streamBytes ?? 0)
                    peakBytes = max(peakBytes, collectedBytes + streamBytes + sharedGrams)
                    memory.calibrationStreamBytes = streamBytes
                    memory.statisticsBytes = max(memory.statisticsBytes, collectedBytes + sharedGrams)
                    calibrationTime += clock.now - started
                    memory.sample(layer, stage: "calibration")
                }
                let started = clock.now
                let ready = readyInLayer.filter { stage.contains($0.site) }
                let scalings = try SiteScaling.forStage(stage, layer: layer, recipe: recipe, ready: ready, statistics: statistics,
                                                        compensation: compensation, groupGrams: &groupGrams)
                statistics = nil  // the Gram matrices go now; only the scalings are needed
                compensation = nil
                let profiles = ready.map { unit in shapes.first { $0.id == unit.id }! }
                memory.factorisationBytes = max(memory.factorisationBytes, CompressionMemory.factorisationEstimate(
                    profiles, ranks: ready.map { unit in plan.map { $0[unit.id] ?? 0 } }, solver: recipe.svdSolver, concurrent: Parallel.workers))
                memory.whiteningBytes = max(memory.whiteningBytes, scalings.values.reduce(0) { $0 + $1.scaling.byteCount })
                let layerWeights = widened?.matrices
                let before = done
                let results = factorizeInParallel(ready, profiles: profiles, scalings: scalings, plan: plan, recipe: recipe,
                                                  weight: { layerWeights?[$0] ?? weights.float32($0) }) { finished in
                    progress(Progress(stage: .layers, done: before + finished, total: totalSteps, layer: layer))
                }
                for (i, unit) in ready.enumerated() {
                    let (outcome, report) = try results[i].get()
                    switch outcome {
                    case .final(let factors):
                        if let factors { install(unit, factors, into: &compressed) }
                        var report = report
                        report.importance = profiles[i].fisher.map { allocator.importance(of: $0) } ?? nil
                        report.sensitivity = profiles[i].sensitivity
                        reports.append(report)
                    case .pending(var factors):
                        factors.report = report  // with the eigenvalue count added above
                        pending[unit.id] = factors
                    }
                    done += 1
                }
                factorisationTime += clock.now - started
                memory.sample(layer, stage: "factorisation")
            }
            if let layerwise, recipe.calibrateOn.followsCompressedPrefix {
                let started = clock.now
                let before = done
                layerwise.run(compressed, observer: nil, advance: true) {
                    progress(Progress(stage: .layers, done: before + $0, total: totalSteps, layer: layer))
                }
                done += layerwise.windows.count
                calibrationTime += clock.now - started
            }
            if let checkpoint {
                var groups: [GroupID: ProjectionGroup] = [:]
                for site in InputSite.allCases {
                    let id = GroupID(layer: layer, site: site)
                    if compressed[id].members.contains(where: { $0.lowRank != nil }) { groups[id] = compressed[id] }
                }
                memory.layerFactorsBytes = max(memory.layerFactorsBytes, groups.values.reduce(0) { $0 + $1.byteCount })
                try checkpoint.finished(layer, groups, FinishedLayers(count: layer + 1, reports: reports,
                                                                      calibrationSeconds: calibrationTime.seconds,
                                                                      factorisationSeconds: factorisationTime.seconds))
            }
            memory.afterLayer(layer, stage: checkpoint != nil ? "saving" : "factorisation")
        }
        if plan == nil {
            var profiles = try shapes.map { p -> ProjectionProfile in
                guard let factors = pending[p.id] else { throw AllocationError.missingSpectrum(p.id) }
                var profile = p
                profile.singularValues = factors.singularValues
                return profile
            }
            if allocator.input == .sensitivity {
                guard let calibration else { throw CompressionError.missingAllocationCalibration(recipe.allocation) }
                let started = clock.now
                let probe = SensitivityProbe(model: model, windows: Array(calibration.windows.prefix(recipe.searchSamples)))
                let unitByID = Dictionary(uniqueKeysWithValues: units.map { ($0.id, $0) })
                try probe.measure(&profiles, candidates: SensitivitySearchAllocator.candidates, truncated: { id, rank in
                    let unit = unitByID[id]!
                    let factors = try pending[id]!.truncated(to: rank, selection: recipe.skipSelection).0
                    return { model in factors.map { install(unit, $0, into: &model) } }
                }, progress: progress)
                let baseline = probe.denseLoss()
                for i in profiles.indices { profiles[i].sensitivityBaseline = baseline }
                sensitivityBaseline = baseline
                allocationSeconds = (clock.now - started).seconds
            }
            let chosen = try allocate(allocator, profiles, recipe: recipe)
            for (unit, p) in zip(units, profiles) {
                let (factors, report0) = try pending.removeValue(forKey: p.id)!.truncated(to: chosen[p.id] ?? 0, selection: recipe.skipSelection)
                var report = report0
                report.sensitivity = p.sensitivity
                if let factors { install(unit, factors, into: &compressed) }
                reports.append(report)
            }
        }
        let before = reports.reduce(0) { $0 + $1.parametersBefore }
        let after = reports.reduce(0) { $0 + $1.parametersAfter }
        let counts = ParameterCount(configuration: c)
        var report = CompressionReport(projections: reports, projectionParametersBefore: before, projectionParametersAfter: after,
                                       modelParametersBefore: counts.total, modelParametersAfter: counts.total - before + after,
                                       factorisationSeconds: factorisationTime.seconds, calibrationSeconds: calibrationTime.seconds,
                                       allocationSeconds: allocationSeconds,
                                       calibrationTokens: layerwise?.tokenCount ?? 0, sensitivityBaseline: sensitivityBaseline,
                                       peakCalibrationBytes: peakBytes)
        if checkpoint == nil { memory.heldFactorsBytes = compressed.layers.reduce(0) { $0 + $1.groups.reduce(0) { $0 + ($1.members.contains { $0.lowRank != nil } ? $1.byteCount : 0) } } }
        report.memory = memory
        return (compressed, report)
    }

    /// The allocator's plan for `profiles`. With `recipe.skippedAllocation == .parameterShare` (the
    /// default) the allocator sees skipped units as plain ones (cost r·(m+n)), so its rule decides
    /// each unit's share of the parameters as it does without skipping; each share then becomes the
    /// largest skipped rank it pays for. `.exactCost` gives allocators the concave skipped cost
    /// itself (their greedy repairs then run ranks up to the cheap end near min(m, n)).
    public static func allocate(_ allocator: any RankAllocator, _ profiles: [ProjectionProfile], recipe: CompressionRecipe) throws -> RankPlan {
        // Uniform keeps the same fraction of every unit, which its skipped cost meets directly (through
        // a plain rank it would be rounded down twice).
        guard recipe.skippedAllocation == .parameterShare, !(allocator is UniformAllocator), profiles.contains(where: \.skipped) else {
            return try allocator.allocate(profiles, keptFraction: recipe.keptFraction)
        }
        let plain = profiles.map { p -> ProjectionProfile in
            var q = p
            q.skipped = false
            return q
        }
        var plan = try allocator.allocate(plain, keptFraction: recipe.keptFraction)
        for (p, q) in zip(profiles, plain) where p.skipped {
            guard let r = plan[p.id], r >= 1 else { continue }
            if r > q.largestSavingRank && !plan.factorsPastBreakEven {
                plan.ranks[p.id] = min(p.outputs, p.inputs)  // the allocator keeps it dense
            } else {
                let share = Double(min(r, q.largestSavingRank) * q.perRank) / Double(q.denseParameters)
                plan.ranks[p.id] = max(1, p.uniformRank(keptFraction: share))
            }
        }
        plan.factorsPastBreakEven = false
        return plan
    }

    /// Factorises `ready` (whose shapes are `profiles`) in parallel, at the plan's ranks or (no plan
    /// yet) at full rank, each scaled by its site's scaling; results in `ready`'s order.
    /// `unitFinished(n)` reports n units done, one call at a time. Parallel because LAPACK is
    /// single-threaded per call.
    static func factorizeInParallel(_ ready: [FactorizationUnit], profiles: [ProjectionProfile], scalings: [InputSite: SiteScaling],
                                    plan: RankPlan?, recipe: CompressionRecipe, weight: (ProjectionID) -> Matrix<Float>,
                                    unitFinished: (Int) -> Void) -> [Result<(Outcome, ProjectionReport), any Error>] {
        let box = UncheckedSendableBox(UnsafeMutableBufferPointer<Result<(Outcome, ProjectionReport), any Error>?>.allocate(capacity: ready.count))
        box.value.initialize(repeating: nil)
        defer {
            _ = box.value.deinitialize()
            box.value.deallocate()
        }
        // Largest first: workers claim units in this order, so the last unit to finish is a
        // small one rather than an MLP projection running while the other workers wait
        // (Llama-3-8B shapes: 2.0 instead of 2.3 big-unit times per layer on two workers).
        let order = ready.indices.sorted { (profiles[$0].outputs * profiles[$0].inputs, $1) > (profiles[$1].outputs * profiles[$1].inputs, $0) }
        // Progress as each unit finishes (an 8B MLP projection takes minutes), one report at a time.
        let reporting = NSLock()
        var finishedUnits = 0
        Parallel.forEach(ready.count) { j in
            defer {
                reporting.lock()
                finishedUnits += 1
                unitFinished(finishedUnits)
                reporting.unlock()
            }
            let i = order[j]
            let site = scalings[ready[i].site]!
            box.value[i] = Result {
                // Without a plan yet: full rank, truncated once the allocator has seen every spectrum.
                var (outcome, report) = try factorizeUnit(ready[i], profile: profiles[i], weight: weight,
                                                          rank: plan.map { $0[ready[i].id] ?? 0 },
                                                          factorsPastBreakEven: plan?.factorsPastBreakEven ?? false,
                                                          scaling: site.scaling, shift: site.shift, selection: recipe.skipSelection,
                                                          solver: recipe.svdSolver)
                if let clamped = site.clampedEigenvalues { report.clampedEigenvalues = clamped }
                return (outcome, report)
            }
        }
        return box.value.map { $0! }
    }

    /// What factorising one unit gives: its factors (nil: kept dense), or (no plan yet) full-rank
    /// factors that wait for the allocator.
    enum Outcome {
        case final(UnitFactors?)
        case pending(PendingFactorization)
    }

    /// The members' weights stacked along outputs, `[Σ m_i × n]` (Float64 for the factorisation).
    static func stacked(_ unit: FactorizationUnit, weight: (ProjectionID) -> Matrix<Float>) -> Matrix<Double> {
        let parts = unit.members.map(weight)
        return Matrix(rows: parts.reduce(0) { $0 + $1.rows }, columns: parts[0].columns, storage: parts.flatMap { $0.storage.map(Double.init) })
    }

    /// Layer `l` with every projection the loader kept in half precision widened to Float32 (the
    /// layer, its matrices by projection and their bytes), or nil when all of them are Float32
    /// already (then `model`'s layer is used as it is).
    static func float32Layer(_ l: Int, of model: LlamaModel, weights: LlamaWeights)
        -> (layer: DecoderLayer, matrices: [ProjectionID: Matrix<Float>], bytes: Int)? {
        let ids = ProjectionKind.allCases.map { ProjectionID(layer: l, kind: $0) }
        guard ids.contains(where: { weights.halfPrecision[.projection($0)] != nil }) else { return nil }
        var matrices: [ProjectionID: Matrix<Float>] = [:]
        for id in ids { matrices[id] = weights.float32(id) }
        let layer = DecoderLayer(attentionNorm: model.layers[l].attentionNorm, mlpNorm: model.layers[l].mlpNorm) { kind in
            .dense(DenseLinear(matrices[ProjectionID(layer: l, kind: kind)]!))
        }
        return (layer, matrices, matrices.values.reduce(0) { $0 + $1.count * 4 })
    }

    /// Factorises `unit` at `rank`; with no rank yet (nil: the allocator needs every spectrum first)
    /// at full rank min(m, n), kept pending. A rank that would not save parameters keeps it dense.
    static func factorizeUnit(_ unit: FactorizationUnit, profile: ProjectionProfile, weight: (ProjectionID) -> Matrix<Float>, rank planned: Int?,
                              factorsPastBreakEven: Bool = false, scaling: InputScaling, shift: Double,
                              selection: BlockSkipping.Selection, solver: SVDSolver = .gesdd) throws -> (Outcome, ProjectionReport) {
        let m = profile.outputs, n = profile.inputs
        var report = ProjectionReport(layer: unit.id.layer, projection: unit.id.kind.shortName,
                                      members: unit.isCat ? unit.members.map(\.kind.shortName) : nil,
                                      layers: unit.basis.map { $0.layers.count }, outputs: m, inputs: n, rank: nil,
                                      parametersBefore: m * n, parametersAfter: m * n, relativeTruncationError: nil,
                                      whiteningShift: shift, note: nil)
        if let planned, let note = profile.keptDenseNote(rank: planned, factorsPastBreakEven: factorsPastBreakEven) {
            report.note = note
            return (.final(nil), report)
        }
        let rank = planned ?? min(m, n)
        let f = try ScaledSVD.factorize(stacked(unit, weight: weight), rank: rank, scaling: scaling, solver: solver)
        let left = Matrix(rows: m, columns: rank, storage: f.left.storage.map(Float.init))
        let right = Matrix(rows: rank, columns: n, storage: f.right.storage.map(Float.init))
        let nonFinite = left.storage.filter { !$0.isFinite }.count + right.storage.filter { !$0.isFinite }.count
        guard nonFinite == 0 else { throw CompressionError.nonFiniteFactors(unit.id, count: nonFinite) }
        report.effectiveRank = EffectiveRank.energy(f.singularValues)
        guard planned != nil else {
            return (.pending(PendingFactorization(unit: unit, left: left, right: right, singularValues: f.singularValues, report: report)), report)
        }
        report.rank = rank
        report.relativeTruncationError = f.relativeTruncationError
        let factors = try UnitFactors.make(unit, left: left, right: right, selection: selection, report: &report)
        return (.final(factors), report)
    }

    /// Puts a unit's factors into `model`: one low-rank projection, a Cat group sharing its right
    /// factor, or a Basis Sharing group's layers on one right factor (the same storage).
    static func install(_ unit: FactorizationUnit, _ factors: UnitFactors, into model: inout LlamaModel) {
        let c = model.configuration
        var row = 0
        let lefts = unit.members.map { id -> LeftFactor in
            let m = c.shape(of: id.kind).outputs
            defer { row += m }
            return LeftFactor(Matrix(rows: m, columns: factors.left.columns,
                                     storage: Array(factors.left.storage[(row * factors.left.columns)..<((row + m) * factors.left.columns)])))
        }
        if unit.isCat {
            model[GroupID(layer: unit.id.layer, site: unit.site)] = ProjectionGroup(site: unit.site,
                                                                                    layout: .sharedRight(SharedRightGroup(right: factors.right, lefts: lefts)))
        } else {
            for (id, left) in zip(unit.members, lefts) { model[id] = .lowRank(LowRankLinear(left: left, right: factors.right, basis: unit.basis)) }
        }
    }
}

/// A unit's final factors: `left` `[Σ m_i × r]` (B, or B′ = B·A₁ when skipped), split by member
/// rows when installed, and the shared right factor.
struct UnitFactors {
    var left: Matrix<Float>
    var right: RightFactor

    /// Truncated factors `left [m × r]`, `right [r × n]` in their final form: block-skipped when the
    /// unit is (and r < n), with max |A′| for the chosen selection and for the first r channels in
    /// the report; rank and parameters filled in.
    static func make(_ unit: FactorizationUnit, left: Matrix<Float>, right: Matrix<Float>, selection: BlockSkipping.Selection,
                     report: inout ProjectionReport) throws -> UnitFactors {
        let r = right.rows, n = right.columns
        report.rank = r
        guard unit.skipped && r < n else {
            report.parametersAfter = left.count + right.count
            return UnitFactors(left: left, right: .plain(WeightMatrix(right)))
        }
        let skipped = try BlockSkipping.skip(left: left, right: right, selection: selection)
        report.skipped = true
        // The other selection only for the report; a singular leading block is reported as ∞.
        let other: BlockSkipping.Selection = selection == .pivoted ? .leading : .pivoted
        let otherMax = (try? BlockSkipping.maxAbsRemainder(right: right, selection: other)) ?? .infinity
        report.maxAbsRemainderPivoted = selection == .pivoted ? skipped.maxAbsRemainder : otherMax
        report.maxAbsRemainderLeading = selection == .leading ? skipped.maxAbsRemainder : otherMax
        report.parametersAfter = skipped.left.count + skipped.right.remainder.count
        return UnitFactors(left: skipped.left, right: .skipped(skipped.right))
    }
}

/// Full-rank factors of one unit, √Σ folded into both, waiting for the plan: every rank prefix is
/// the truncated factorisation (the scaling is undone row by row on the right factor, so
/// truncating after undoing it equals undoing it after truncating).
struct PendingFactorization {
    var unit: FactorizationUnit
    var left: Matrix<Float>  // [m × k], k = min(m, n)
    var right: Matrix<Float>  // [k × n]
    var singularValues: [Double]
    var report: ProjectionReport  // what factorising said; rank, parameters and error come with the plan

    /// The factors at `rank` (nil: the unit stays dense) and the report.
    func truncated(to rank: Int, selection: BlockSkipping.Selection) throws -> (UnitFactors?, ProjectionReport) {
        var report = report
        let m = left.rows, n = right.columns
        let profile = ProjectionProfile(id: unit.id, outputs: m, inputs: n, members: unit.members, skipped: unit.skipped)
        if let note = profile.keptDenseNote(rank: rank) {
            report.note = note
            return (nil, report)
        }
        var l = Matrix<Float>.zeros(rows: m, columns: rank)  // [m × rank]: the first rank columns
        for i in 0..<m { for k in 0..<rank { l[i, k] = left[i, k] } }
        let r = Matrix(rows: rank, columns: n, storage: Array(right.storage.prefix(rank * n)))  // [rank × n]
        report.relativeTruncationError = Factorization.relativeTruncationError(singularValues, rank: rank)
        let factors = try UnitFactors.make(unit, left: l, right: r, selection: selection, report: &report)
        return (factors, report)
    }
}
