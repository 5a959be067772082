import Foundation
import LinearAlgebra
import Llama
import ModelFormats
import Tokenization

/// A tiny seeded Llama (2 layers, hidden 64, 4 query / 2 KV heads so GQA is always exercised, a
/// byte-level vocabulary of 264 tokens) that tests write as GGUF or as a Hugging Face directory.
public struct TinyLlama: Sendable {
    public var configuration: LlamaConfiguration
    public var weights: LlamaWeights
    public var tokens: [String]
    public var merges: [(String, String)]
    public var specialTokenIDs: [Int]
    public static let defaultSystemPrompt = "You are a tiny test model."

    /// The defaults are the tiny model; larger sizes make a small model whose compression takes
    /// long enough to be interrupted (the kill test).
    public init(seed: UInt64 = 7, tiedEmbeddings: Bool = true, hiddenSize: Int = 64, intermediateSize: Int = 96, layerCount: Int = 2) {
        // Vocabulary: the 256 byte characters, a few merges, then three special tokens.
        var tokens = (0..<256).map { String(ByteLevel.characterOf[$0]) }
        let merges: [(String, String)] = [("h", "e"), ("Ġ", "t"), ("Ġt", "he"), ("l", "l"), ("e", "ll"), ("o", "w")]
        for (a, b) in merges { tokens.append(a + b) }
        let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        let specialTokenIDs = specials.indices.map { tokens.count + $0 }
        tokens += specials
        self.tokens = tokens
        self.merges = merges
        self.specialTokenIDs = specialTokenIDs

        let c = LlamaConfiguration(
            hiddenSize: hiddenSize, intermediateSize: intermediateSize, layerCount: layerCount, attentionHeads: 4, keyValueHeads: 2,
            vocabularySize: tokens.count, rmsNormEpsilon: 1e-5, ropeTheta: 10_000, contextLength: 128,
            tiedEmbeddings: tiedEmbeddings)
        configuration = c
        var rng = SeededGenerator(seed: seed)
        func matrix(_ rows: Int, _ columns: Int) -> Matrix<Float> {
            Matrix(rows: rows, columns: columns, storage: rng.floats(rows * columns, scale: 1 / Float(columns).squareRoot()))
        }
        func norm() -> [Float] { (0..<c.hiddenSize).map { _ in 1 + rng.uniform(0.1) } }
        var layers: [LlamaLayerWeights] = []
        for _ in 0..<c.layerCount {
            layers.append(LlamaLayerWeights(
                attentionNorm: norm(),
                query: matrix(c.queryWidth, c.hiddenSize), key: matrix(c.keyValueWidth, c.hiddenSize),
                value: matrix(c.keyValueWidth, c.hiddenSize), output: matrix(c.hiddenSize, c.queryWidth),
                mlpNorm: norm(),
                gate: matrix(c.intermediateSize, c.hiddenSize), up: matrix(c.intermediateSize, c.hiddenSize),
                down: matrix(c.hiddenSize, c.intermediateSize)))
        }
        weights = LlamaWeights(
            tokenEmbedding: matrix(c.vocabularySize, c.hiddenSize), layers: layers, finalNorm: norm(),
            outputHead: tiedEmbeddings ? nil : matrix(c.vocabularySize, c.hiddenSize))
    }

    public var chatTemplate: ChatTemplate { ChatTemplate(defaultSystemPrompt: Self.defaultSystemPrompt) }

    // MARK: - GGUF

    /// A GGUF writer holding this model as llama.cpp's converter would write it (Q/K rows permuted).
    public func ggufWriter() -> GGUFWriter {
        let c = configuration
        var w = GGUFWriter()
        w.set("general.architecture", .string("llama"))
        w.set("general.name", .string("tiny test llama"))
        w.set("llama.block_count", .uint32(UInt32(c.layerCount)))
        w.set("llama.context_length", .uint32(UInt32(c.contextLength)))
        w.set("llama.embedding_length", .uint32(UInt32(c.hiddenSize)))
        w.set("llama.feed_forward_length", .uint32(UInt32(c.intermediateSize)))
        w.set("llama.attention.head_count", .uint32(UInt32(c.attentionHeads)))
        w.set("llama.attention.head_count_kv", .uint32(UInt32(c.keyValueHeads)))
        w.set("llama.rope.freq_base", .float32(c.ropeTheta))
        w.set("llama.attention.layer_norm_rms_epsilon", .float32(c.rmsNormEpsilon))
        w.set("llama.rope.dimension_count", .uint32(UInt32(c.headDimension)))
        w.set("llama.vocab_size", .uint32(UInt32(c.vocabularySize)))
        w.set("tokenizer.ggml.model", .string("gpt2"))
        w.set("tokenizer.ggml.pre", .string("smollm"))
        w.set("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0) }))
        w.set("tokenizer.ggml.token_type", .array(.int32, tokens.indices.map { .int32(specialTokenIDs.contains($0) ? 3 : 1) }))
        w.set("tokenizer.ggml.merges", .array(.string, merges.map { .string("\($0.0) \($0.1)") }))
        w.set("tokenizer.ggml.bos_token_id", .uint32(UInt32(specialTokenIDs[1])))
        w.set("tokenizer.ggml.eos_token_id", .uint32(UInt32(specialTokenIDs[2])))
        w.set("tokenizer.ggml.add_bos_token", .bool(false))
        w.set("tokenizer.chat_template", .string(chatTemplate.jinja))
        for role in TensorRole.all(for: c) {
            var values = weights.values(of: role)!
            if case .projection(let id) = role, id.kind == .query || id.kind == .key {
                let heads = id.kind == .query ? c.attentionHeads : c.keyValueHeads
                values = RoPEPermutation.permute(weights[id], heads: heads).storage
            }
            w.tensors.append(.init(name: role.ggufName, shape: role.shape(in: c), floats: values))
        }
        return w
    }

    public func writeGGUF(to path: String) throws {
        try ggufWriter().write(to: path)
    }

    // MARK: - Hugging Face directory

    public var configJSON: [String: Any] {
        let c = configuration
        return [
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "hidden_size": c.hiddenSize, "intermediate_size": c.intermediateSize,
            "num_hidden_layers": c.layerCount, "num_attention_heads": c.attentionHeads,
            "num_key_value_heads": c.keyValueHeads, "vocab_size": c.vocabularySize,
            "rms_norm_eps": Double(c.rmsNormEpsilon), "rope_theta": Double(c.ropeTheta),
            "max_position_embeddings": c.contextLength, "tie_word_embeddings": c.tiedEmbeddings,
            "hidden_act": "silu", "torch_dtype": "float32",
        ]
    }

    public func safetensorsTensors(as type: ElementType = .f32) -> [SafetensorsWriter.Tensor] {
        TensorRole.all(for: configuration).map { role in
            let values = weights.values(of: role)!
            switch type {
            case .f16:
                let bits = values.map { Float16($0).bitPattern }
                return .init(name: role.huggingFaceName, shape: role.shape(in: configuration), type: .f16,
                             bytes: bits.withUnsafeBytes { Array($0) })
            case .bf16:
                // Round to nearest even (the values are finite).
                let bits = values.map { v -> UInt16 in let b = v.bitPattern; return UInt16((b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16) }
                return .init(name: role.huggingFaceName, shape: role.shape(in: configuration), type: .bf16,
                             bytes: bits.withUnsafeBytes { Array($0) })
            default:
                return .init(name: role.huggingFaceName, shape: role.shape(in: configuration), floats: values)
            }
        }
    }

    /// Writes config.json, tokenizer files and the weights (`shards` > 1 writes an index and shards).
    public func writeHuggingFace(to directory: String, shards: Int = 1) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let config = try JSONSerialization.data(withJSONObject: configJSON, options: [.sortedKeys])
        try config.write(to: URL(fileURLWithPath: directory + "/config.json"))
        let tokenizer = try self.tokenizer()
        try tokenizer.huggingFaceTokenizerJSON().write(to: URL(fileURLWithPath: directory + "/tokenizer.json"))
        try tokenizer.huggingFaceTokenizerConfig(chatTemplate: chatTemplate)
            .write(to: URL(fileURLWithPath: directory + "/tokenizer_config.json"))
        let tensors = safetensorsTensors()
        if shards <= 1 {
            var writer = SafetensorsWriter()
            writer.tensors = tensors
            writer.metadata = ["format": "pt"]
            try writer.write(to: directory + "/model.safetensors")
            return
        }
        var weightMap: [String: String] = [:]
        let perShard = (tensors.count + shards - 1) / shards
        for shard in 0..<shards {
            let name = String(format: "model-%05d-of-%05d.safetensors", shard + 1, shards)
            var writer = SafetensorsWriter()
            writer.tensors = Array(tensors[min(shard * perShard, tensors.count)..<min((shard + 1) * perShard, tensors.count)])
            for t in writer.tensors { weightMap[t.name] = name }
            try writer.write(to: directory + "/" + name)
        }
        let index = try JSONSerialization.data(withJSONObject: ["metadata": [:], "weight_map": weightMap], options: [.sortedKeys])
        try index.write(to: URL(fileURLWithPath: directory + "/model.safetensors.index.json"))
    }

    public func tokenizer() throws -> BPETokenizer {
        try BPETokenizer(tokens: tokens, merges: merges, addedTokenIDs: Set(specialTokenIDs), preTokenizer: .gpt2,
                         bosTokenID: specialTokenIDs[1], eosTokenID: specialTokenIDs[2], source: "tiny test model")
    }

    /// This model with every projection low-rank at `rank` (random factors, seeded), except layer 1's
    /// down projection, kept dense: a compressed model with both forms for rank-schedule tests.
    public func lowRankModel(rank: Int = 10, seed: UInt64 = 4) -> LlamaModel {
        var model = LlamaModel(configuration: configuration, weights: weights)
        var rng = SeededGenerator(seed: seed)
        for layer in 0..<configuration.layerCount {
            for kind in ProjectionKind.allCases where !(layer == 1 && kind == .down) {
                let s = configuration.shape(of: kind)
                model[ProjectionID(layer: layer, kind: kind)] = .lowRank(LowRankLinear(
                    left: Matrix(rows: s.outputs, columns: rank, storage: rng.floats(s.outputs * rank, scale: 0.3)),
                    right: Matrix(rows: rank, columns: s.inputs, storage: rng.floats(rank * s.inputs, scale: 0.3))))
            }
        }
        return model
    }
}
