import Foundation
import LinearAlgebra
import ModelFormats
import Tokenization

/// The compressed-checkpoint format: a Hugging Face-style directory.
///
/// - `config.json`: the model's Llama configuration plus a `low_rank` section
///   (`{"format_version": 1, "projections": {"model.layers.0.self_attn.q_proj": {"rank": 230}, ...}}`).
/// - `model.safetensors`: Float32 tensors; a dense projection as `<module>.weight` `[out × in]`, a
///   factored one as `<module>.left` `[out × r]` and `<module>.right` `[r × in]`
///   (y = left · (right · x); names chosen not to collide with LoRA's `lora_A`/`lora_B`).
/// - `tokenizer.json`, `tokenizer_config.json`: written from the source tokenizer (GGUF metadata or
///   the original files).
/// - `compression.json`: the recipe and report, written by the caller (`extraFiles`).
public enum Checkpoint {
    public static let formatVersion = 1

    /// Writes `model` to `directory` atomically: everything goes to a temporary sibling directory,
    /// which then replaces `directory`.
    public static func write(_ model: LlamaModel, tokenizer: BPETokenizer, chatTemplate: ChatTemplate?,
                             to directory: String, extraFiles: [String: Data] = [:]) throws {
        let fm = FileManager.default
        let target = URL(fileURLWithPath: directory).standardizedFileURL
        let temporary = target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).tmp-\(UUID().uuidString)")
        try fm.createDirectory(at: temporary, withIntermediateDirectories: true)
        do {
            try writeContents(model, tokenizer: tokenizer, chatTemplate: chatTemplate, to: temporary.path, extraFiles: extraFiles)
            if fm.fileExists(atPath: target.path) {
                let old = target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).old-\(UUID().uuidString)")
                try fm.moveItem(at: target, to: old)
                try fm.moveItem(at: temporary, to: target)
                try? fm.removeItem(at: old)
            } else {
                try fm.moveItem(at: temporary, to: target)
            }
        } catch {
            try? fm.removeItem(at: temporary)
            throw error
        }
    }

    static func writeContents(_ model: LlamaModel, tokenizer: BPETokenizer, chatTemplate: ChatTemplate?,
                              to directory: String, extraFiles: [String: Data]) throws {
        let c = model.configuration
        var writer = SafetensorsWriter()
        writer.metadata = ["format": "pt", "producer": "lowrank"]
        var factored: [String: Any] = [:]
        func add(_ name: String, _ m: Matrix<Float>) { writer.tensors.append(.init(name: name, shape: [m.rows, m.columns], floats: m.storage)) }
        func addVector(_ name: String, _ v: [Float]) { writer.tensors.append(.init(name: name, shape: [v.count], floats: v)) }
        add(TensorRole.tokenEmbedding.huggingFaceName, model.tokenEmbedding)
        for (l, layer) in model.layers.enumerated() {
            addVector(TensorRole.attentionNorm(layer: l).huggingFaceName, layer.attentionNorm)
            addVector(TensorRole.mlpNorm(layer: l).huggingFaceName, layer.mlpNorm)
            for kind in ProjectionKind.allCases {
                let id = ProjectionID(layer: l, kind: kind)
                switch layer[kind] {
                case .dense(let d):
                    add(id.huggingFaceModule + ".weight", d.matrix)
                case .lowRank(let f):
                    add(id.huggingFaceModule + ".left", f.left)
                    add(id.huggingFaceModule + ".right", f.right)
                    factored[id.huggingFaceModule] = ["rank": f.rank]
                }
            }
        }
        addVector(TensorRole.finalNorm.huggingFaceName, model.finalNorm)
        if !c.tiedEmbeddings, case .dense(let head) = model.outputHead { add(TensorRole.outputHead.huggingFaceName, head.matrix) }
        try writer.write(to: directory + "/model.safetensors")

        try configJSON(c, tokenizer: tokenizer, dtype: "float32", lowRank: ["format_version": formatVersion, "projections": factored])
            .write(to: URL(fileURLWithPath: directory + "/config.json"))
        try tokenizer.huggingFaceTokenizerJSON().write(to: URL(fileURLWithPath: directory + "/tokenizer.json"))
        try tokenizer.huggingFaceTokenizerConfig(chatTemplate: chatTemplate).write(to: URL(fileURLWithPath: directory + "/tokenizer_config.json"))
        for (name, data) in extraFiles { try data.write(to: URL(fileURLWithPath: directory + "/" + name)) }
    }

    /// A Hugging Face Llama `config.json` for `c`, with an optional `low_rank` section.
    public static func configJSON(_ c: LlamaConfiguration, tokenizer: BPETokenizer, dtype: String, lowRank: [String: Any]?) throws -> Data {
        var config: [String: Any] = [
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": dtype, "hidden_act": "silu",
            "hidden_size": c.hiddenSize, "intermediate_size": c.intermediateSize, "num_hidden_layers": c.layerCount,
            "num_attention_heads": c.attentionHeads, "num_key_value_heads": c.keyValueHeads, "head_dim": c.headDimension,
            "vocab_size": c.vocabularySize, "rms_norm_eps": Double(c.rmsNormEpsilon), "rope_theta": Double(c.ropeTheta),
            "max_position_embeddings": c.contextLength, "tie_word_embeddings": c.tiedEmbeddings,
            "bos_token_id": tokenizer.bosTokenID as Any, "eos_token_id": tokenizer.eosTokenID as Any,
        ]
        if let lowRank { config["low_rank"] = lowRank }
        return try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
    }

    /// Ranks of the factored projections named in a `config.json`'s `low_rank` section.
    static func factoredRanks(config json: [String: Any], configuration c: LlamaConfiguration, path: String) throws -> [ProjectionID: Int] {
        guard let section = json["low_rank"] else { return [:] }
        guard let lowRank = section as? [String: Any], let version = lowRank["format_version"] as? Int else {
            throw ModelFormatError.invalidValue(path: path, key: "low_rank", reason: "needs a format_version and a projections object")
        }
        guard version == formatVersion else {
            throw ModelFormatError.invalidValue(path: path, key: "low_rank.format_version",
                                                reason: "version \(version) is not supported (this lowrank reads \(formatVersion))")
        }
        let projections = lowRank["projections"] as? [String: Any] ?? [:]
        var byModule: [String: ProjectionID] = [:]
        for l in 0..<c.layerCount { for kind in ProjectionKind.allCases { byModule[ProjectionID(layer: l, kind: kind).huggingFaceModule] = ProjectionID(layer: l, kind: kind) } }
        var ranks: [ProjectionID: Int] = [:]
        for (module, value) in projections {
            guard let id = byModule[module] else {
                throw ModelFormatError.invalidValue(path: path, key: "low_rank.projections", reason: "'\(module)' is not a projection of this model")
            }
            guard let rank = (value as? [String: Any])?["rank"] as? Int, rank >= 1 else {
                throw ModelFormatError.invalidValue(path: path, key: "low_rank.projections.\(module)", reason: "needs a positive integer rank")
            }
            let s = c.shape(of: id.kind)
            guard rank <= min(s.outputs, s.inputs) else {
                throw ModelFormatError.invalidValue(path: path, key: "low_rank.projections.\(module)",
                                                    reason: "rank \(rank) exceeds min(\(s.outputs), \(s.inputs))")
            }
            ranks[id] = rank
        }
        return ranks
    }
}
