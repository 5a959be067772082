import Foundation
import LinearAlgebra
import ModelFormats
import Tokenization

/// Seeded random Llama checkpoints at real model shapes, for scale runs without downloading a model
/// (a compression run's time and memory depend on the shapes, not on the weight values).
public enum SyntheticCheckpoint {
    /// Shapes of published models.
    public enum Preset: String, CaseIterable, Sendable {
        /// Meta-Llama-3-8B: hidden 4096, 32 query / 8 KV heads of 128, MLP 14336, vocabulary 128256,
        /// RoPE θ 500000, untied head.
        case llama3_8b = "llama3-8b"
        /// Llama-2-7B: hidden 4096, 32/32 heads, MLP 11008, vocabulary 32000.
        case llama2_7b = "llama2-7b"

        public func configuration(layers: Int) -> LlamaConfiguration {
            switch self {
            case .llama3_8b:
                LlamaConfiguration(hiddenSize: 4096, intermediateSize: 14336, layerCount: layers, attentionHeads: 32, keyValueHeads: 8,
                                   vocabularySize: 128_256, rmsNormEpsilon: 1e-5, ropeTheta: 500_000, contextLength: 8192, tiedEmbeddings: false)
            case .llama2_7b:
                LlamaConfiguration(hiddenSize: 4096, intermediateSize: 11008, layerCount: layers, attentionHeads: 32, keyValueHeads: 32,
                                   vocabularySize: 32000, rmsNormEpsilon: 1e-5, ropeTheta: 10000, contextLength: 4096, tiedEmbeddings: false)
            }
        }
    }

    /// Writes `config.json`, `model.safetensors` (F16 or BF16: weights uniform in ±0.02·√3, standard
    /// deviation 0.02 as Hugging Face initialises Llama; norms 1) and the tokenizer files to
    /// `directory`. Tensors are generated one at a time while the file streams, so memory stays at
    /// one tensor. The same seed gives the same values, rounded to `precision`.
    public static func write(_ c: LlamaConfiguration, seed: UInt64, precision: WeightPrecision = .float16, tokenizer: BPETokenizer,
                             chatTemplate: ChatTemplate?, to directory: String) throws {
        precondition(precision != .float32, "synthetic checkpoints are written in 16 bits")
        let bf16 = precision == .bfloat16
        precondition(tokenizer.vocabularySize <= c.vocabularySize, "the tokenizer's ids must fit the synthetic vocabulary")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var writer = SafetensorsWriter()
        writer.metadata = ["format": "pt", "producer": "lowrank synthesize", "seed": String(seed)]
        for (index, role) in TensorRole.all(for: c).enumerated() {
            let shape = role.shape(in: c)
            let count = shape.reduce(1, *)
            let isNorm: Bool
            switch role {
            case .finalNorm, .attentionNorm, .mlpNorm: isNorm = true
            default: isNorm = false
            }
            let tensorSeed = seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15
            writer.tensors.append(.init(name: role.huggingFaceName, shape: shape, type: bf16 ? .bf16 : .f16, byteCount: 2 * count, payload: .produced { buffer in
                let out = buffer.bindMemory(to: UInt16.self)
                if isNorm {
                    out.initialize(repeating: bf16 ? HalfPrecision.bfloat16Bits(1) : Float16(1).bitPattern)
                    return
                }
                // Parts seeded independently, so the bytes do not depend on the worker count.
                let parts = max(1, min(64, count / 65536))
                let box = UncheckedSendableBox(out)
                Parallel.forEach(parts) { p in
                    var random = SplitMix64(seed: tensorSeed &+ UInt64(p))
                    let bound = Float(0.02 * 3.0.squareRoot())
                    for i in Parallel.part(p, of: parts, count: count) {
                        let unit = Float(random.next() >> 40) * 0x1p-24  // [0, 1)
                        let value = (2 * unit - 1) * bound
                        box.value[i] = bf16 ? HalfPrecision.bfloat16Bits(value) : Float16(value).bitPattern
                    }
                }
            }))
        }
        try writer.write(to: directory + "/model.safetensors")
        try Checkpoint.configJSON(c, tokenizer: tokenizer, dtype: bf16 ? "bfloat16" : "float16", lowRank: nil).write(to: URL(fileURLWithPath: directory + "/config.json"))
        try tokenizer.huggingFaceTokenizerJSON().write(to: URL(fileURLWithPath: directory + "/tokenizer.json"))
        try tokenizer.huggingFaceTokenizerConfig(chatTemplate: chatTemplate).write(to: URL(fileURLWithPath: directory + "/tokenizer_config.json"))
    }
}
