import ArgumentParser
import Foundation
import LinearAlgebra
import Llama
import LowRank
import ModelFormats

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure prefill and decode throughput, time to first token and peak memory (medians of repeated runs).",
        discussion: """
            Prefill: a --prompt-tokens prompt (token ids cycled from a fixed English text) in one batched pass.
            Decode: --decode-tokens new tokens at batch 1 after it, greedy. Each number is the median of --runs runs \
            after one warm-up. Also reports single-call sgemm GFLOP/s at the prefill shape, and the weight bytes \
            streamed per second while decoding (decode is bound by memory bandwidth).
            With --rank-schedule, the decode runs follow the schedule, and each step's fraction is also measured on \
            its own (the whole decode at that active rank): its decode tokens/s and weight bytes per token beside the \
            first step's, so the speed-up can be read against the byte ratio.
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var engine: EngineOptions
    @OptionGroup var scheduleOptions: RankScheduleOptions

    @Option(help: "Prompt length for the prefill measurement.")
    var promptTokens: Int = 512

    @Option(help: "New tokens for the decode measurement.")
    var decodeTokens: Int = 128

    @Option(help: "Also decode this many sequences together (each with its own KV cache, one pass over the weights per step, as lowrank serve does) and report the aggregate tokens/s.")
    var batch: Int = 1

    @Option(help: "Measured runs (the median is reported); at least 3.")
    var runs: Int = 3

    @Option(help: ArgumentHelp("""
        Also load this model (a .gguf file or model directory, e.g. the dense model a checkpoint came from) and decode it in \
        the same process, each of its runs next to one of the measured model's (the order alternating), at the same \
        --weights, --kv-cache and --threads and at full rank; report its speed, the weight-byte ratio and the decode \
        speed-up of each pair. On a shared host, runs a minute apart drift by ±10%; runs seconds apart drift together. \
        The peak RSS then counts both models.
        """, valueName: "model"))
    var baseline: String?

    @Flag(help: "Print JSON.")
    var json = false

    struct Report: Encodable {
        var prefill_tokens_per_second: Double
        var decode_tokens_per_second: Double
        var time_to_first_token_seconds: Double
        var peak_rss_bytes: Int
        var prompt_tokens: Int
        var decode_tokens: Int
        var runs: Int
        var prefill_runs: [Double]
        var decode_runs: [Double]
        var weights: String
        /// How the KV cache stored keys and values (`--kv-cache`): f32 or f16.
        var kv_cache: String
        /// Fraction of each low-rank factor's stored rank that ran (`--active-rank`).
        var active_rank: Double
        var weight_bytes_per_token: Int
        var decode_weight_gigabytes_per_second: Double
        /// Bytes of weights used in place from the memory-mapped file (half precision stored as run).
        var mapped_weight_bytes: Int
        /// Bytes of the KV cache (at `kv_cache` precision, prompt + decode positions).
        var kv_cache_bytes: Int
        /// Read bandwidth of this machine now: a 1 GiB buffer summed by every worker, median of 5.
        var memory_read_gigabytes_per_second: Double
        /// decode_weight_gigabytes_per_second / memory_read_gigabytes_per_second.
        var decode_bandwidth_fraction: Double
        var sgemm_gflops_one_call: Double
        var sgemm_shape: String
        var threads: Int
        var blas: String
        /// The tier of decode kernels in use: avx512, avx2 or portable (`DecodeKernels.summary`).
        var decode_kernels: String
        var model: String
        var model_sha256: String
        /// With --rank-schedule: the schedule, and each step's fraction measured on its own.
        var rank_schedule: RankScheduleOptions.Record?
        var rank_schedule_steps: [StepReport]?
        /// With --batch N > 1: N sequences decoded together; tokens/s summed over them.
        var batch: Int?
        var batch_decode_tokens_per_second: Double?
        var batch_decode_runs: [Double]?
        /// With --baseline: the other model, decoded in the same process, its runs paired with these.
        var baseline: BaselineReport?
    }

    /// The model given by --baseline, measured beside the model: run i of each forms pair i.
    struct BaselineReport: Encodable {
        var model: String
        var model_sha256: String
        var prefill_tokens_per_second: Double
        var decode_tokens_per_second: Double
        var prefill_runs: [Double]
        var decode_runs: [Double]
        var weight_bytes_per_token: Int
        /// The baseline's weight bytes per token over the model's.
        var byte_ratio: Double
        /// The model's decode tokens/s over the baseline's, pair by pair, and the median of those.
        var decode_speedup_runs: [Double]
        var decode_speedup: Double
    }

    /// One step of a schedule, its fraction held for a whole decode.
    struct StepReport: Encodable {
        var from_token: Int
        var fraction: Double
        var decode_tokens_per_second: Double
        var decode_runs: [Double]
        var weight_bytes_per_token: Int
        /// The first step's weight bytes per token over this step's, and its decode speed over the first step's.
        var byte_ratio: Double
        var speedup: Double
    }

    func validate() throws {
        guard runs >= 3 else { throw ValidationError("--runs must be at least 3 (the report is a median)") }
        if baseline != nil && scheduleOptions.rankSchedule != nil {
            throw ValidationError("--baseline compares two models at fixed ranks; measure a --rank-schedule on its own")
        }
        guard promptTokens >= 1, decodeTokens >= 2 else { throw ValidationError("--prompt-tokens ≥ 1 and --decode-tokens ≥ 2") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
    }

    /// Aggregate decode tokens/s of `batch` sequences stepped together by `forwardBatch` after the
    /// same prompt (prefilled once; each run rewinds the caches to it), greedy, logits included.
    func batchedDecodeRates(_ model: LlamaModel, prompt: [Int]) -> [Double] {
        let capacity = prompt.count + decodeTokens
        let caches = (0..<batch).map { _ in model.makeCache(capacity: capacity) }
        let prefill = Workspace(model: model, rows: min(512, prompt.count), contextCapacity: capacity)
        let workspace = Workspace(model: model, rows: batch, contextCapacity: capacity)
        for cache in caches { model.prefill(prompt, cache: cache, workspace: prefill) }
        let vocabulary = model.configuration.vocabularySize
        var logits = [Float](repeating: 0, count: batch * vocabulary)
        var rates: [Double] = []
        let clock = ContinuousClock()
        for run in 0...runs {
            for cache in caches { cache.truncate(to: prompt.count) }
            var tokens = Array(repeating: prompt.last!, count: batch)
            let started = clock.now
            for _ in 0..<(decodeTokens - 1) {
                model.forwardBatch(tokens, caches: caches, workspace: workspace)
                logits.withUnsafeMutableBufferPointer { model.logits(workspace: workspace, rows: 0..<batch, into: $0.baseAddress!) }
                tokens = (0..<batch).map { b in logits.withUnsafeBufferPointer { Sampler.argmax(UnsafeBufferPointer(rebasing: $0[(b * vocabulary)..<((b + 1) * vocabulary)])) } }
            }
            if run > 0 { rates.append(Double(batch * (decodeTokens - 1)) / (clock.now - started).seconds) }
        }
        return rates
    }

    func run() throws {
        var loaded = try loadModel(model, engine: engine)
        let schedule = try scheduleOptions.load(loaded, engine: engine)
        let runtime = try engine.makeModel(&loaded)
        let seed = loaded.tokenizer.encode(
            "The lighthouse keeper climbed the spiral stairs each evening, counting the steps as the sea grew dark. ")
        let prompt = (0..<promptTokens).map { seed[$0 % seed.count] }
        let generator = Generator(model: runtime, capacity: promptTokens + decodeTokens, prefillRows: promptTokens)
        let other = try baseline.map { try loadBaseline($0, vocabularySize: loaded.configuration.vocabularySize) }
        let otherGenerator = other.map { Generator(model: $0.model, capacity: promptTokens + decodeTokens, prefillRows: promptTokens) }
        var prefill: [Double] = [], decode: [Double] = [], firstToken: [Double] = []
        var otherPrefill: [Double] = [], otherDecode: [Double] = []
        let steps = schedule?.0.steps ?? []
        let progress = ProgressReporter("bench", unit: "runs")
        let totalRuns = (runs + 1) * (1 + steps.count)
        for run in 0...runs {
            // With a baseline, the two runs of a pair alternate which goes first, so neither always
            // follows the other (run 0 of each warms caches and pages).
            let baselineFirst = run % 2 == 1
            func runBaseline() {
                guard let otherGenerator else { return }
                let result = otherGenerator.generate(prompt: prompt, maxTokens: decodeTokens, sampling: .greedy, stopTokens: [], schedule: nil)
                if run > 0 {
                    otherPrefill.append(result.prefillTokensPerSecond)
                    otherDecode.append(result.decodeTokensPerSecond)
                }
            }
            if baselineFirst { runBaseline() }
            let result = generator.generate(prompt: prompt, maxTokens: decodeTokens, sampling: .greedy, stopTokens: [], schedule: schedule?.0)
            if run > 0 {  // run 0 warms caches and pages
                prefill.append(result.prefillTokensPerSecond)
                decode.append(result.decodeTokensPerSecond)
                firstToken.append(result.timeToFirstToken)
            }
            if !baselineFirst { runBaseline() }
            progress.update(run + 1, totalRuns)
        }
        var stepReports: [StepReport] = []
        for (i, step) in steps.enumerated() {
            var rates: [Double] = []
            for run in 0...runs {
                let result = generator.generate(prompt: prompt, maxTokens: decodeTokens, sampling: .greedy, stopTokens: [],
                                                schedule: try StepRankSchedule.constant(step.fraction))
                if run > 0 { rates.append(result.decodeTokensPerSecond) }
                progress.update((runs + 1) * (i + 1) + run + 1, totalRuns)
            }
            var at = runtime
            at.setActiveRank(fraction: step.fraction)
            let first = stepReports.first
            stepReports.append(StepReport(from_token: step.fromToken, fraction: step.fraction, decode_tokens_per_second: median(rates), decode_runs: rates,
                                          weight_bytes_per_token: at.weightBytes,
                                          byte_ratio: Double(first?.weight_bytes_per_token ?? at.weightBytes) / Double(at.weightBytes),
                                          speedup: median(rates) / (first?.decode_tokens_per_second ?? median(rates))))
        }
        let batchRates = batch > 1 ? batchedDecodeRates(runtime, prompt: prompt) : nil
        // Before the probes below, which allocate buffers of their own (and the digest maps the file again).
        let peak = ResidentMemory.peakBytes()
        let bandwidth = Self.readBandwidth()
        let kvBytes = KVCache.byteCount(configuration: loaded.configuration, capacity: promptTokens + decodeTokens,
                                       precision: runtime.keyValuePrecision)  // the generator's cache
        let gflops = Self.sgemmGFLOPs(m: promptTokens, n: loaded.configuration.intermediateSize, k: loaded.configuration.hiddenSize)
        let decodeRate = median(decode)
        let report = Report(
            prefill_tokens_per_second: median(prefill), decode_tokens_per_second: decodeRate,
            time_to_first_token_seconds: median(firstToken), peak_rss_bytes: peak,
            prompt_tokens: promptTokens, decode_tokens: decodeTokens, runs: runs, prefill_runs: prefill, decode_runs: decode,
            weights: engine.weights.rawValue, kv_cache: runtime.keyValuePrecision.rawValue, active_rank: engine.activeRank, weight_bytes_per_token: runtime.weightBytes,
            decode_weight_gigabytes_per_second: Double(runtime.weightBytes) * decodeRate / 1e9,
            mapped_weight_bytes: runtime.mappedWeightBytes, kv_cache_bytes: kvBytes, memory_read_gigabytes_per_second: bandwidth,
            decode_bandwidth_fraction: Double(runtime.weightBytes) * decodeRate / 1e9 / bandwidth,
            sgemm_gflops_one_call: gflops,
            sgemm_shape: "[\(promptTokens) × \(loaded.configuration.hiddenSize)] · [\(loaded.configuration.intermediateSize) × \(loaded.configuration.hiddenSize)]ᵀ",
            threads: Parallel.workers, blas: BLASRuntime.summary, decode_kernels: DecodeKernels.summary,
            model: loaded.source.path, model_sha256: try SHA256.hexDigest(ofFile: modelDigestPath(loaded)),
            rank_schedule: schedule?.1, rank_schedule_steps: schedule == nil ? nil : stepReports,
            batch: batch > 1 ? batch : nil, batch_decode_tokens_per_second: batchRates.map(median), batch_decode_runs: batchRates,
            baseline: try other.map { other in
                let speedups = zip(decode, otherDecode).map { $0 / $1 }
                return BaselineReport(
                    model: other.path, model_sha256: try SHA256.hexDigest(ofFile: other.digestPath),
                    prefill_tokens_per_second: median(otherPrefill), decode_tokens_per_second: median(otherDecode),
                    prefill_runs: otherPrefill, decode_runs: otherDecode, weight_bytes_per_token: other.model.weightBytes,
                    byte_ratio: Double(other.model.weightBytes) / Double(runtime.weightBytes),
                    decode_speedup_runs: speedups, decode_speedup: median(speedups))
            })
        if json {
            try Terminal.printJSON(report)
            return
        }
        print(Terminal.table([
            ("prefill", String(format: "%.1f tokens/s (%d-token prompt; runs %@)", report.prefill_tokens_per_second, promptTokens, prefill.map { String(format: "%.0f", $0) }.joined(separator: ", "))),
            ("decode", String(format: "%.1f tokens/s (%d tokens, batch 1; runs %@)", decodeRate, decodeTokens, decode.map { String(format: "%.1f", $0) }.joined(separator: ", "))),
            ("time to first token", String(format: "%.3f s", report.time_to_first_token_seconds)),
        ] + (batchRates.map { rates in [("decode, batch \(batch)", String(format: "%.1f tokens/s summed over %d sequences (%.2f× batch 1; runs %@)", median(rates), batch,
                                                                         median(rates) / decodeRate, rates.map { String(format: "%.1f", $0) }.joined(separator: ", ")))] } ?? []) + [

            ("peak RSS", String(format: "%.1f MiB (weights used in place from the file: %.1f MiB; KV cache %.1f MiB)", Double(report.peak_rss_bytes) / 1_048_576,
                                Double(report.mapped_weight_bytes) / 1_048_576, Double(kvBytes) / 1_048_576)
                                + " \(report.kv_cache)"),
            ("weights", "\(engine.weights.rawValue), \(String(format: "%.1f", Double(runtime.weightBytes) / 1e6)) MB read per token, \(String(format: "%.1f", report.decode_weight_gigabytes_per_second)) GB/s while decoding"),
            ("memory", String(format: "%.1f GB/s read bandwidth now (decode uses %.0f%% of it)", bandwidth, 100 * report.decode_bandwidth_fraction)),
            ("sgemm", String(format: "%.0f GFLOP/s for one call %@", gflops, report.sgemm_shape)),
            ("threads", "\(Parallel.workers) workers; \(report.blas); decode kernels \(report.decode_kernels)"),
        ] + (report.baseline.map { b in [
            ("baseline", String(format: "%@: decode %.1f tokens/s (runs %@), %.1f MB read per token", b.model, b.decode_tokens_per_second,
                                b.decode_runs.map { String(format: "%.1f", $0) }.joined(separator: ", "), Double(b.weight_bytes_per_token) / 1e6)),
            ("speed-up", String(format: "%.3f× the baseline's decode (median of pairs %@); weight-byte ratio %.3f", b.decode_speedup,
                                b.decode_speedup_runs.map { String(format: "%.3f", $0) }.joined(separator: ", "), b.byte_ratio)),
        ] } ?? []), indent: ""))
        if !stepReports.isEmpty {
            print("rank schedule \(schedule!.1.file) (\(schedule!.1.direction)); the decode above follows it; each step's fraction held for a whole decode:")
            print(Terminal.table(stepReports.map {
                (String(format: "t ≥ %d at %.3f", $0.from_token, $0.fraction),
                 String(format: "%.1f tokens/s, %.1f MB/token; byte ratio %.3f, speed-up %.3f", $0.decode_tokens_per_second,
                        Double($0.weight_bytes_per_token) / 1e6, $0.byte_ratio, $0.speedup))
            }))
        }
    }

    /// The --baseline model, built as the measured one is but at full rank.
    func loadBaseline(_ path: String, vocabularySize: Int) throws -> (model: LlamaModel, path: String, digestPath: String) {
        var options = model
        options.model = path
        var fullRank = engine
        fullRank.activeRank = 1
        var loaded = try loadModel(options, engine: fullRank)
        guard loaded.configuration.vocabularySize == vocabularySize else {
            throw CLIError("--baseline \(path): its vocabulary has \(loaded.configuration.vocabularySize) tokens and the model's "
                + "\(vocabularySize); both decode the same token ids, so pass a model with the same tokenizer (the one a checkpoint came from)")
        }
        let digestPath = modelDigestPath(loaded)
        return (try fullRank.makeModel(&loaded), loaded.source.path, digestPath)
    }

    /// Read bandwidth in GB/s: a 1 GiB Float32 buffer (far beyond the caches) summed in parallel by
    /// every worker, each over its own contiguous part; the median of 5 passes (as decode speeds are
    /// medians) after the pass that faults the pages in. The buffer is freed afterwards (it is
    /// measured after the peak RSS is taken).
    static func readBandwidth() -> Double {
        let count = 1 << 28
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 1, count: count)  // the first pass below reads it once more before timing
        let parts = Parallel.workers
        let clock = ContinuousClock()
        var times: [Double] = []
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: parts)
        defer { sums.deallocate() }
        let box = UncheckedSendableBox((UnsafePointer(buffer), sums))  // disjoint parts and sums per worker
        for pass in 0..<6 {
            let started = clock.now
            Parallel.forEach(parts) { p in
                let (buffer, sums) = box.value
                let part = Parallel.part(p, of: parts, count: count)
                sums[p] = DecodeKernels.readSum(buffer + part.lowerBound, count: part.count)
            }
            if pass > 0 { times.append((clock.now - started).seconds) }
        }
        precondition((0..<parts).reduce(Float(0)) { $0 + sums[$1] } > 0, "the probe read the buffer")
        return Double(count * MemoryLayout<Float>.size) / median(times) / 1e9
    }

    /// GFLOP/s of one sgemm call at the prefill shape (median of 5), on the calling thread.
    static func sgemmGFLOPs(m: Int, n: Int, k: Int) -> Double {
        let a = [Float](repeating: 0.5, count: m * k), b = [Float](repeating: 0.25, count: n * k)
        var c = [Float](repeating: 0, count: m * n)
        let clock = ContinuousClock()
        var times: [Double] = []
        for _ in 0..<6 {
            let t = clock.now
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    c.withUnsafeMutableBufferPointer {
                        BLAS.gemmNT(m: m, n: n, k: k, a: ap.baseAddress!, lda: k, b: bp.baseAddress!, ldb: k, c: $0.baseAddress!, ldc: n)
                    }
                }
            }
            times.append((clock.now - t).seconds)
        }
        return 2 * Double(m) * Double(n) * Double(k) / median(Array(times.dropFirst())) / 1e9
    }
}

func median(_ values: [Double]) -> Double {
    let s = values.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

