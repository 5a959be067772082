import ArgumentParser
import LinearAlgebra
import Llama

/// Options that choose how the model runs.
struct EngineOptions: ParsableArguments {
    @Option(help: "Weight storage in memory: f32, f16 or bf16 (computation is always Float32).")
    var weights: WeightPrecision = .float32

    @Option(help: ArgumentHelp("KV cache storage: f32 or f16 (attention computes in Float32). Default: f16 with --weights f16 or bf16, f32 with f32 weights.",
                               valueName: "precision"))
    var kvCache: KVCachePrecision?

    /// The cache precision that runs: `--kv-cache`, or the one that follows `--weights`.
    var keyValuePrecision: KVCachePrecision { kvCache ?? KVCachePrecision(following: weights) }

    @Option(help: "Worker threads for attention heads and matrix blocks (default: all cores).")
    var threads: Int?

    @Option(help: ArgumentHelp("Run each low-rank factor at this fraction of its stored rank, rounded up (0 < F ≤ 1; 1 = as stored).",
                               valueName: "F"))
    var activeRank: Double = 1

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        guard activeRank > 0 && activeRank <= 1 else {
            throw ValidationError("--active-rank must be in (0, 1]: the fraction of each low-rank factor's stored rank to run")
        }
    }

    /// The runnable model, built by moving the loaded weights into it (`LlamaModel(moving:)`:
    /// aligned storage of its own, one layer at a time, so both never exist whole).
    func makeModel(_ loaded: inout LoadedModel) throws -> LlamaModel {
        if activeRank < 1 && loaded.weights.isDense {
            throw CLIError("--active-rank \(activeRank): \(loaded.source.path) has no low-rank factors (a dense model always runs at full rank); "
                + "pass a checkpoint made by lowrank compress, or drop the option")
        }
        if activeRank < 1 && loaded.weights.hasSkippedFactors {
            throw CLIError("--active-rank \(activeRank): \(loaded.source.path) has block-skipped factors (skip, skipcat), whose leading ranks are "
                + "not a truncation of the factorisation; run it at full rank, or use a svd-llm, cat or basis-sharing checkpoint")
        }
        if let threads { Parallel.workers = threads }
        var model = LlamaModel(configuration: loaded.configuration, moving: &loaded.weights, precision: weights)
        if activeRank < 1 { model.setActiveRank(fraction: activeRank) }
        model.keyValuePrecision = keyValuePrecision
        return model
    }
}

extension WeightPrecision: ExpressibleByArgument {}
extension KVCachePrecision: ExpressibleByArgument {}
