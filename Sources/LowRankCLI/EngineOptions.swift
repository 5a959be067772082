import ArgumentParser
import LinearAlgebra
import Llama

/// Options that choose how the model runs.
struct EngineOptions: ParsableArguments {
    @Option(help: "Weight storage in memory: f32, f16 or bf16 (computation is always Float32).")
    var weights: WeightPrecision = .float32

    @Option(help: "Worker threads for attention heads and matrix blocks (default: all cores).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func makeModel(_ loaded: LoadedModel) -> LlamaModel {
        if let threads { Parallel.workers = threads }
        return LlamaModel(configuration: loaded.configuration, weights: loaded.weights, precision: weights)
    }
}

extension WeightPrecision: ExpressibleByArgument {}
