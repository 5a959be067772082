import ArgumentParser
import Foundation
import Llama

struct Synthesize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a seeded random model with a published model's shapes (for scale runs of compress, bench ...).",
        discussion: """
            Weights are F16 (or BF16 with --dtype bf16), uniform with standard deviation 0.02 (norms 1), generated tensor by tensor while the \
            safetensors file streams, so memory stays at one tensor. The tokenizer (and chat template) comes from \
            MODEL; its ids must fit the preset's vocabulary. Example, the issue's 8B scale run:
              lowrank synthesize models/SmolLM2-135M-Instruct.Q4_1.gguf --preset llama3-8b --layers 4 -o /tmp/llama3-8b-4l
            """)

    @OptionGroup var model: ModelOptions

    @Option(help: "Shapes: \(SyntheticCheckpoint.Preset.allCases.map(\.rawValue).joined(separator: ", ")).")
    var preset: SyntheticCheckpoint.Preset = .llama3_8b

    @Option(help: "Decoder layers to write (the preset's real model has 32).")
    var layers: Int = 4

    @Option(help: "Seed of the weights.")
    var seed: UInt64 = 1

    @Option(help: "Element type of the weights: f16 or bf16 (the same values rounded to each).")
    var dtype: WeightPrecision = .float16

    @Option(name: [.short, .customLong("output")], help: "Directory to write.")
    var output: String

    func validate() throws {
        guard layers >= 1 else { throw ValidationError("--layers must be at least 1") }
        guard dtype != .float32 else { throw ValidationError("--dtype must be f16 or bf16 (a synthetic model is written in 16 bits)") }
    }

    func run() throws {
        let loaded = try loadModel(model)
        let c = preset.configuration(layers: layers)
        guard loaded.tokenizer.vocabularySize <= c.vocabularySize else {
            throw CLIError("\(model.model)'s tokenizer has \(loaded.tokenizer.vocabularySize) tokens, more than \(preset.rawValue)'s vocabulary of \(c.vocabularySize)")
        }
        let counts = ParameterCount(configuration: c)
        FileHandle.standardError.write(Data("writing \(preset.rawValue) with \(layers) layers: \(Terminal.grouped(counts.total)) parameters, \(Terminal.grouped(2 * counts.total)) bytes of \(dtype == .float16 ? "F16" : "BF16")\n".utf8))
        try SyntheticCheckpoint.write(c, seed: seed, precision: dtype, tokenizer: loaded.tokenizer, chatTemplate: loaded.chatTemplate, to: output)
        print("wrote \(output): \(preset.rawValue) shapes, \(layers) layers, seed \(seed)")
    }
}

extension SyntheticCheckpoint.Preset: ExpressibleByArgument {}
