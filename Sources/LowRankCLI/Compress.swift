import ArgumentParser
import Evaluation
import Foundation
import LinearAlgebra
import Llama
import LowRank
import ModelFormats

struct Compress: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compress a model's projections by low-rank factorisation and write a checkpoint directory.",
        discussion: """
            With --allocation uniform (the default) every q/k/v/o/gate/up/down projection gets the rank \
            r = floor(m·n·(1 − ρ)/(m + n)) for --remove ρ (SVD-LLM's rule; ρ is the fraction of projection parameters \
            removed, embeddings and norms are untouched); the other allocations choose a rank per projection within the \
            same budget (fisher runs a backward pass over the calibration windows first). \
            Methods: svd (plain truncated SVD), asvd (activation-magnitude scaling, α = --alpha), svd-llm (Cholesky \
            whitening of the calibration Gram matrix); with SVD-LLM's whitening: cat (SkipCat: q/k/v and gate/up each \
            factorised as one stacked matrix sharing one right factor, r·(d_in + Σ d_out) parameters), skip (SkipCat: each \
            factorisation rewritten exactly without an r × r identity block, r·(m + n − r)), skipcat (both), and \
            basis-sharing (q/k/v/gate/up of --group-size consecutive layers share one right factor whitened by their \
            summed Gram matrices; o and down per layer). Allocations then choose one rank per unit (a group, or a \
            projection). Calibration: --samples windows of --length tokens from the \
            corpus (documents joined with blank lines, tokenised once), at seeded random offsets or --calibration-starts.
            Calibration runs layer by layer: only one layer's statistics are in memory at a time. --calibrate-on compressed \
            feeds each layer the outputs of the already-compressed layers before it (SVD-LLM's sequential variant); \
            --calibrate-on compensated does too, and fits each projection to the dense model's outputs at the same \
            tokens (it corrects the drift of the compressed prefix, not only follows it; a second stream, one paired pass per input site). \
            --whitening eigen uses SVD-LLM V2's eigen-decomposition square root instead of Cholesky.
            Every recipe whose ranks are fixed before factorising (all but the spectra allocators, asvd-search and asvd-knapsack without \
            --sensitivity-from, and basis-sharing) streams and can resume: each finished layer is saved in DIR.partial and leaves memory, the \
            checkpoint is assembled from the saved layers, and --resume continues an interrupted run. A safetensors source \
            stored in F16/BF16 stays memory-mapped and is widened one layer at a time (exactly). compression.json's memory \
            section records the peak RSS, the stage that reached it, the peak after each layer and each part's size.
            The output directory loads like any model: lowrank perplexity DIR, lowrank generate DIR ...
            """)

    @OptionGroup var model: ModelOptions

    @Option(help: "svd, asvd, svd-llm, cat, skip, skipcat or basis-sharing.")
    var method: CompressionMethod = .svdLLM

    @Option(help: "basis-sharing: consecutive layers sharing one basis (default 2).")
    var groupSize: Int?

    @Option(help: "skip, skipcat: the r input channels that pass through: pivoted (QR with column pivoting, default) or leading (the first r, the unstable baseline).")
    var skipSelection: BlockSkipping.Selection?

    @Option(help: "skip, skipcat with an allocation other than uniform: parameter-share (default: the allocator decides each unit's parameter share as for plain factors, which then buys the largest skipped rank) or exact-cost (the allocator sees the skipped cost r·(m+n−r) itself).")
    var skippedAllocation: SkippedAllocation?

    @Option(help: "Fraction of projection parameters to remove, in (0, 1).")
    var remove: Double

    @Option(name: [.short, .customLong("output")], help: "Checkpoint directory to write (replaced atomically).")
    var output: String

    @Option(help: "Calibration corpus: c4 (data/c4/train_sample.jsonl) or a path (.txt or .jsonl with \"text\").")
    var calibration: String = "c4"

    @Option(help: "Calibration windows.")
    var samples: Int = 64

    @Option(help: "Tokens per calibration window.")
    var length: Int = 512

    @Option(help: "Seed for the window offsets.")
    var seed: UInt64 = 3

    @Option(help: "Explicit comma-separated token offsets of the windows (overrides --samples and --seed).", transform: parseIntegers)
    var calibrationStarts: [Int]?

    @Option(help: "ASVD exponent α in s_j = mean|x_j|^α.")
    var alpha: Double = 0.5

    @Option(help: "SVD-LLM whitening: cholesky (SVD-LLM) or eigen (SVD-LLM V2; tiny eigenvalues clamped and counted).")
    var whitening: WhiteningKind = .cholesky

    @Option(help: "How each SVD is computed: gesdd (LAPACK on the matrix), gram (eigen-decomposition of the smaller Gram matrix: less work at 8B shapes, loses singular values below about 1e-8 of the largest) or auto (default: gram when the smaller side is at least 2048, so SmolLM2-size results are gesdd's).")
    var svdSolver: SVDSolver = .auto

    @Option(help: "Calibration activations: dense (the original model's, as the references), compressed (through the already-compressed layers), or compensated (as compressed, and each projection fitted to the dense model's outputs from the compressed prefix's inputs; svd-llm, cat, skip, skipcat).")
    var calibrateOn: CalibrationSource = .dense

    @Option(help: "--calibrate-on compensated: ridge α ≥ 0, adding α·trace(Ĝ)/n to the diagonal of the compressed prefix's Gram matrix Ĝ before the fit to the dense outputs (default 1e-2).")
    var compensationRidge: Double?

    @Option(help: "Rank allocation: uniform (SVD-LLM: the same kept fraction of every matrix), effective-rank (D-Rank: ranks ∝ √(effective rank) per projection type, then Q/K → V), svd-llm-v2 (SVD-LLM V2: less compression where the truncation loss is larger, per type), asvd-search (ASVD: calibration loss of each projection at kept fractions 0.4–0.9, then a binary search; slow), asvd-knapsack (the same probes, then the least summed loss increase within the budget: a knapsack that weighs each probe's loss against the parameters it frees), fisher (FLRC: ranks ∝ Σ(G⊙W)² from a backward pass on the calibration windows), fisher-weight or fisher-gradient (FLRC's ablations: Σ W², Σ G²).")
    var allocation: AllocationMethod = .uniform

    @Option(help: "fisher allocations: a rank reaching break-even ⌊mn/(m+n)⌋ keeps the matrix dense (break-even, default), or ranks are capped at min(m, n) and stored as factors even past break-even (full-rank, an ablation).")
    var fisherCap: FisherCap?

    @Option(help: "effective-rank: fraction of the q and k ranks' parameters moved to v, in [0, 1) (default 0.3).")
    var beta: Double?

    @Flag(help: "effective-rank: as D-Rank's released code, o/up/down keep uniform ranks unless the dynamic ones lower the summed squared truncation error, and gate always does.")
    var uniformFallback = false

    @Option(help: "asvd-search, asvd-knapsack: calibration windows (the first ones) each sensitivity probe is scored on (default 4; ASVD used 32 of 2048 tokens).")
    var searchSamples: Int?

    @Option(help: ArgumentHelp("asvd-search, asvd-knapsack: reuse the sensitivity probes of an earlier asvd-search or asvd-knapsack checkpoint made from the same model and calibration with the same options except --remove, --calibrate-on and which of the two reads them (the probes do not depend on the budget; only the search re-runs). The ranks are then fixed before the first layer, so the run may use --calibrate-on compressed or compensated, and streams and resumes.", valueName: "checkpoint"))
    var sensitivityFrom: String?

    @Option(help: "Folder holding c4/ (default: $LOWRANK_DATA, ./data, or the repository's data/).")
    var dataDirectory: String?

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Flag(help: "Continue the unfinished run kept in OUTPUT.partial (each finished layer is saved there as the run goes; same recipe, source and calibration file required). The result equals an uninterrupted run's bit for bit.")
    var resume = false

    func validate() throws {
        guard remove > 0 && remove < 1 else { throw ValidationError("--remove must be strictly between 0 and 1 (e.g. 0.2 removes 20% of projection parameters)") }
        guard samples >= 1, length >= 2 else { throw ValidationError("--samples must be ≥ 1 and --length ≥ 2") }
        guard alpha > 0 else { throw ValidationError("--alpha must be positive") }
        if let groupSize {
            guard method.sharesAcrossLayers else { throw ValidationError("--group-size applies to --method basis-sharing only (this run uses \(method.rawValue))") }
            guard groupSize >= 1 else { throw ValidationError("--group-size must be ≥ 1 (the consecutive layers sharing one basis)") }
        }
        if skippedAllocation != nil && !method.skips {
            throw ValidationError("--skipped-allocation applies to --method skip and skipcat only (this run uses \(method.rawValue))")
        }
        if skipSelection != nil && !method.skips {
            throw ValidationError("--skip-selection applies to --method skip and skipcat only (this run uses \(method.rawValue))")
        }
        if method.sharesAcrossLayers && calibrateOn.followsCompressedPrefix {
            throw ValidationError(CompressionError.sharedBasisNeedsDenseCalibration.description)
        }
        if calibrateOn == .compensated && !method.needsGram {
            throw ValidationError(CompressionError.compensationNeedsWhitening(method).description)
        }
        if let compensationRidge {
            guard calibrateOn == .compensated else { throw ValidationError("--compensation-ridge applies to --calibrate-on compensated only (this run uses \(calibrateOn.rawValue))") }
            guard compensationRidge >= 0 && compensationRidge.isFinite else { throw ValidationError("--compensation-ridge must be a finite number ≥ 0 (e.g. 1e-2)") }
        }
        if allocation != .effectiveRank && (beta != nil || uniformFallback) {
            throw ValidationError("--beta and --uniform-fallback apply to --allocation effective-rank only (this run uses \(allocation.rawValue))")
        }
        if !allocation.readsSensitivity && sensitivityFrom != nil {
            throw ValidationError("--sensitivity-from applies to --allocation asvd-search and asvd-knapsack only (this run uses \(allocation.rawValue))")
        }
        if !allocation.readsSensitivity && searchSamples != nil {
            throw ValidationError("--search-samples applies to --allocation asvd-search and asvd-knapsack only (this run uses \(allocation.rawValue))")
        }
        if let searchSamples, searchSamples < 1 || searchSamples > (calibrationStarts?.count ?? samples) {
            throw ValidationError("--search-samples must be between 1 and the number of calibration windows (\(calibrationStarts?.count ?? samples))")
        }
        if !allocation.isFisher && fisherCap != nil {
            throw ValidationError("--fisher-cap applies to --allocation fisher, fisher-weight and fisher-gradient only (this run uses \(allocation.rawValue))")
        }
        guard (0..<1).contains(beta ?? 0.3) else { throw ValidationError("--beta must be in [0, 1) (the fraction of q and k parameters moved to v)") }
        if allocation.allocator(beta: beta ?? 0.3).input.needsFullRankFactors && calibrateOn.followsCompressedPrefix && sensitivityFrom == nil {
            throw ValidationError(AllocationError.needsDenseCalibration(allocation).description)
        }
    }

    func run() throws {
        let clock = ContinuousClock()
        let started = clock.now
        // Projections a Hugging Face source stores in F16/BF16 stay in its memory map and are widened
        // one layer at a time, unless the allocator runs the whole model (fisher's backward pass,
        // asvd-search's probes), which needs every weight in Float32.
        let mapped = !allocation.allocator(beta: beta ?? 0.3).input.runsWholeModel || sensitivityFrom != nil  // reused probes: nothing runs the whole model
        let loaded = try loadModel(model, mapsStoredHalfPrecision: mapped)
        guard loaded.weights.isDense else {
            throw CLIError("\(loaded.source.path) is already compressed (it has factored projections); compress the original model")
        }
        let dense = LlamaModel(configuration: loaded.configuration, weights: loaded.weights, halfAsStored: true)
        // Reused probes: their window count is the record's unless --search-samples says otherwise.
        var saved: (record: CompressionRecord, sha256: String)?
        if let sensitivityFrom {
            do { saved = try CompressionRecord.read(directory: sensitivityFrom) } catch { throw CLIError(error.description) }
            guard saved != nil else {
                throw CLIError("--sensitivity-from: \(sensitivityFrom) has no \(CompressionRecord.fileName); pass the directory of a checkpoint written by lowrank compress --allocation asvd-search or asvd-knapsack")
            }
        }
        var recipe = CompressionRecipe(method: method, removedFraction: remove, asvdAlpha: alpha, calibrationCorpus: calibration,
                                       calibrationSamples: calibrationStarts?.count ?? samples, calibrationLength: length,
                                       seed: seed, calibrationStarts: calibrationStarts, whitening: whitening, calibrateOn: calibrateOn,
                                       allocation: allocation, beta: beta ?? 0.3, uniformFallback: uniformFallback,
                                       fisherCap: fisherCap ?? .breakEven, searchSamples: searchSamples ?? saved?.record.recipe.searchSamples ?? min(4, calibrationStarts?.count ?? samples),
                                       groupSize: groupSize, skipSelection: skipSelection ?? .pivoted,
                                       skippedAllocation: skippedAllocation ?? .parameterShare, svdSolver: svdSolver,
                                       compensationRidge: compensationRidge)
        var calibrationSet: CalibrationSet?
        var calibrationFile: String?
        var calibrationTokens: Int?
        if method.needsCalibration || allocation.allocator(beta: 0.3).input.needsCalibration {
            let corpus = Corpus(argument: calibration)
            let directory = dataDirectory ?? defaultDataDirectory()
            let text: String
            do { text = try corpus.text(dataDirectory: directory) } catch let error as CorpusError { throw CLIError(error.description) }
            let tokens = loaded.tokenizer.encode(text)
            do {
                calibrationSet = try calibrationStarts.map { try CalibrationSet(tokens: tokens, starts: $0, length: length) }
                    ?? CalibrationSet(tokens: tokens, count: samples, length: length, seed: seed)
            } catch let error as CalibrationError { throw CLIError(error.description) }
            calibrationFile = corpus.path(dataDirectory: directory)
            calibrationTokens = tokens.count
        }
        let sourceSHA256 = try SHA256.hexDigest(ofFile: modelDigestPath(loaded))
        let calibrationSHA256 = try calibrationFile.map { try SHA256.hexDigest(ofFile: $0) }
        var savedSensitivity: SavedSensitivity?
        if let saved, let sensitivityFrom {
            let path = sensitivityFrom + "/" + CompressionRecord.fileName
            do {
                savedSensitivity = try SavedSensitivity(record: saved.record, path: path, sha256: saved.sha256, configuration: loaded.configuration,
                                                        matching: recipe, sourceSHA256: sourceSHA256, calibrationSHA256: calibrationSHA256)
            } catch { throw CLIError(error.description) }
            recipe.sensitivitySource = savedSensitivity?.source
        }
        // Resumable runs keep each finished layer in OUTPUT.partial.
        let partial = PartialCompression(output: output)
        let obstacle = Compressor.resumeObstacle(recipe)
        var finished: Compressor.FinishedLayers?
        if resume {
            if let obstacle { throw CLIError("--resume: \(obstacle); run it without --resume") }
            let state: PartialCompression.State?
            do { state = try partial.readState() } catch let error as ModelFormatError { throw CLIError(error.description) }
            guard let state else { throw CLIError("--resume: \(partial.directory) holds no unfinished run; start the run without --resume") }
            if let reason = PartialCompression.mismatch(state, version: lowrankVersion, recipe: recipe, sourceSHA256: sourceSHA256, calibrationSHA256: calibrationSHA256) {
                throw CLIError("--resume: the unfinished run in \(partial.directory) cannot continue: \(reason). Give the options it was started with, or delete it to start over")
            }
            do { finished = try partial.finishedLayers(state, configuration: loaded.configuration) } catch let error as ModelFormatError {
                throw CLIError("--resume: \(error.description)")
            }
            FileHandle.standardError.write(Data("resuming \(partial.directory): \(state.layers_finished) of \(loaded.configuration.layerCount) layers finished\n".utf8))
        } else if partial.exists {
            throw CLIError("\(partial.directory) holds an unfinished run of this output: continue it with --resume, or delete it to start over")
        } else {
            try partial.remove()  // layer files of a run killed before its first state
        }
        // For tests: stop as if killed once this layer is saved.
        let stopAfter = ProcessInfo.processInfo.environment["LOWRANK_STOP_AFTER_LAYER"].flatMap(Int.init)
        let configuration = loaded.configuration
        let checkpoint = obstacle != nil ? nil : Compressor.LayerCheckpoint(resumeFrom: finished, restore: { try partial.groups(layer: $0, configuration: configuration) }) { [recipe] layer, groups, done in
            try partial.save(layer: layer, groups: groups, done: done, version: lowrankVersion, recipe: recipe, sourceSHA256: sourceSHA256, calibrationSHA256: calibrationSHA256)
            if layer == stopAfter {
                FileHandle.standardError.write(Data("stopping after layer \(layer) (LOWRANK_STOP_AFTER_LAYER)\n".utf8))
                Foundation.exit(75)
            }
        }
        let unit = method.needsCalibration ? "steps (window passes and factorisations)" : "factorisations"
        // Each stage's reporter starts its clock when the stage starts (its ETA covers that stage only).
        var progress: ProgressReporter?
        var importanceProgress: ProgressReporter?
        var searchProgress: ProgressReporter?
        let (compressed, report): (LlamaModel, CompressionReport)
        do {
            (compressed, report) = try Compressor.compress(dense, weights: loaded.weights, recipe: recipe, calibration: calibrationSet,
                                                           savedSensitivity: savedSensitivity, checkpoint: checkpoint) {
                switch $0.stage {
                case .importance:
                    if importanceProgress == nil { importanceProgress = ProgressReporter("fisher importance (backward pass)", unit: "windows") }
                    importanceProgress!.update($0.done, $0.total)
                case .search:
                    if searchProgress == nil { searchProgress = ProgressReporter("\(allocation.rawValue) sensitivity", unit: "probes") }
                    searchProgress!.update($0.done, $0.total, detail: "layer \($0.layer + 1)/\(loaded.configuration.layerCount)")
                case .layers:
                    if progress == nil { progress = ProgressReporter("compression", unit: unit) }
                    progress!.update($0.done, $0.total, detail: "layer \($0.layer + 1)/\(loaded.configuration.layerCount)")
                }
            }
        } catch let error as CompressionError { throw CLIError(error.description) } catch let error as AllocationError { throw CLIError(error.description) }
        let calibrationSeconds = report.calibrationSeconds
        var summary = CompressionRecord(
            lowrank_version: lowrankVersion, source_model: loaded.source.path,
            source_sha256: sourceSHA256, recipe: recipe,
            calibration_file: calibrationFile, calibration_sha256: calibrationSHA256,
            calibration_tokens: calibrationTokens, report: report, total_seconds: (clock.now - started).seconds,
            peak_rss_bytes: ResidentMemory.peakBytes(), blas: BLASRuntime.summary)
        summary.resumed_after_layers = finished?.count
        // A streaming run's compressed layers are in the partial directory; the checkpoint is assembled from them.
        let savedLayers = checkpoint != nil ? try partial.savedLayers() : [:]
        try Checkpoint.write(compressed, savedLayers: savedLayers, tokenizer: loaded.tokenizer, chatTemplate: loaded.chatTemplate, to: output) {
            summary.memory?.sampleAfterWriting()
            summary.peak_rss_bytes = ResidentMemory.peakBytes()
            summary.total_seconds = (clock.now - started).seconds
            return [CompressionRecord.fileName: try summary.encoded()]
        }
        try partial.remove()
        if json {
            try Terminal.printJSON(summary)
            return
        }
        var rows: [(String, String)] = []
        // One row per kind of unit: a projection type, a Cat group ("q_proj+k_proj+v_proj") or a
        // basis shared across layers.
        func label(_ p: ProjectionReport) -> String {
            (p.members?.joined(separator: "+") ?? p.projection) + (p.layers.map { $0 > 1 ? " (basis of \($0) layers)" : "" } ?? "")
        }
        var labels: [String] = []
        for p in report.projections where !labels.contains(label(p)) { labels.append(label(p)) }
        let order = ProjectionKind.allCases.map(\.shortName)
        labels.sort { a, b in
            let ia = order.firstIndex { a.hasPrefix($0) } ?? order.count, ib = order.firstIndex { b.hasPrefix($0) } ?? order.count
            return ia != ib ? ia < ib : a < b
        }
        for name in labels {
            let entries = report.projections.filter { label($0) == name }
            let sorted = entries.compactMap(\.rank).sorted()
            let distinct = Set(sorted).sorted()
            // Allocators other than uniform give a rank per layer: a range and the median then.
            let ranks = distinct.count <= 4 ? distinct.map(String.init).joined(separator: "/")
                : "\(distinct.first!)–\(distinct.last!) (median \(sorted[sorted.count / 2]))"
            let errors = entries.compactMap(\.relativeTruncationError)
            let dense = entries.filter { $0.rank == nil }.count
            rows.append((name, "rank \(ranks.isEmpty ? "-" : ranks)" + (dense > 0 ? ", \(dense) kept dense" : "")
                + (errors.isEmpty ? "" : String(format: ", relative error %.3f–%.3f", errors.min()!, errors.max()!))))
        }
        let shifted = report.projections.filter { ($0.whiteningShift ?? 0) > 0 }.count
        let skippedUnits = report.projections.filter { $0.skipped == true }
        if let pivoted = skippedUnits.compactMap(\.maxAbsRemainderPivoted).max(), let leading = skippedUnits.compactMap(\.maxAbsRemainderLeading).max() {
            let used = recipe.skipSelection == .pivoted ? pivoted : leading
            rows.append(("skipped", String(format: "%d factorisations (%@ channels); max |A′| %.3g with pivoted QR, %.3g with the first r%@",
                                           skippedUnits.count, recipe.skipSelection.rawValue, pivoted, leading,
                                           used > 65504 ? "; above 65504 F16 weights overflow" : "")))
        }
        print("\(method.rawValue), --remove \(remove), --allocation \(allocation.rawValue): wrote \(output)")
        print(Terminal.table(rows))
        print(String(format: "projection parameters %@ → %@ (%.1f%% removed); whole model %@ → %@ (%.1f%% removed, embeddings and norms kept)",
                     Terminal.grouped(report.projectionParametersBefore), Terminal.grouped(report.projectionParametersAfter),
                     100 * report.removedProjectionFraction, Terminal.grouped(report.modelParametersBefore),
                     Terminal.grouped(report.modelParametersAfter), 100 * report.removedModelFraction))
        let clamped = report.projections.filter { ($0.clampedEigenvalues ?? 0) > 0 }.count
        if clamped > 0 { print("whitening: \(clamped) projections had tiny Gram eigenvalues raised to the floor (see compression.json)") }
        if shifted > 0 { print("whitening: \(shifted) Gram matrices were not positive definite and were shifted (see compression.json)") }
        if let source = recipe.sensitivitySource { print("\(allocation.rawValue): sensitivity probes reused from \(source.path) (sha256 \(source.sha256.prefix(12))…)") }
        print(String(format: "%@calibration %.1f s, factorisation %.1f s, total %.1f s, peak RSS %.0f MiB (calibration statistics at most %.0f MiB)",
                     report.allocationSeconds.map { String(format: "allocation (%@) %.1f s, ", allocation.readsSensitivity ? "sensitivity probes" : "backward pass", $0) } ?? "",
                     calibrationSeconds, report.factorisationSeconds, summary.total_seconds, Double(summary.peak_rss_bytes) / 1_048_576,
                     Double(report.peakCalibrationBytes) / 1_048_576))
    }
}

extension CompressionMethod: ExpressibleByArgument {}
extension WhiteningKind: ExpressibleByArgument {}
extension CalibrationSource: ExpressibleByArgument {}
extension AllocationMethod: ExpressibleByArgument {}
extension FisherCap: ExpressibleByArgument {}
extension BlockSkipping.Selection: ExpressibleByArgument {}
extension SkippedAllocation: ExpressibleByArgument {}
extension SVDSolver: ExpressibleByArgument {}
