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

    /// The runnable model. The loaded Float32 layer weights are released afterwards (the runtime
    /// model holds what it needs), so half-precision storage does not keep both copies alive.
    func makeModel(_ loaded: inout LoadedModel) -> LlamaModel {
        if let threads { Parallel.workers = threads }
        let model = LlamaModel(configuration: loaded.configuration, weights: loaded.weights, precision: weights)
        loaded.weights.layers.removeAll()
        loaded.weights.outputHead = nil
        return model
    }
}

extension WeightPrecision: ExpressibleByArgument {}
