import LinearAlgebra
import ModelFormats
import Tokenization

/// Reads Llama-family models from GGUF files.
public enum GGUFLoader {
    public static let supportedArchitectures = ["llama"]

    public static func configuration(of gguf: GGUFFile) throws -> LlamaConfiguration {
        let path = gguf.path
        let arch = try gguf.requiredString("general.architecture")
        guard supportedArchitectures.contains(arch) else {
            throw ModelFormatError.invalidValue(path: path, key: "general.architecture",
                                                reason: "'\(arch)' is not supported (supported: \(supportedArchitectures.joined(separator: ", ")))")
        }
        func int(_ key: String) throws -> Int { try gguf.requiredInteger("\(arch).\(key)") }
        func real(_ key: String, default value: Double) throws -> Double {
            guard let v = gguf.value("\(arch).\(key)") else { return value }
            guard let r = v.real else {
                throw ModelFormatError.wrongKeyType(path: path, key: "\(arch).\(key)", expected: "a number", found: v.type.name)
            }
            return r
        }
        if let scaling = gguf.value("\(arch).rope.scaling.type")?.string, scaling != "none" {
            throw ModelFormatError.invalidValue(path: path, key: "\(arch).rope.scaling.type",
                                                reason: "RoPE scaling '\(scaling)' is not supported yet")
        }
        let hidden = try int("embedding_length")
        let heads = try int("attention.head_count")
        let headDimension = gguf.value("\(arch).attention.key_length")?.integer ?? (heads > 0 ? hidden / heads : 0)
        if let ropeDims = gguf.value("\(arch).rope.dimension_count")?.integer, ropeDims != headDimension {
            throw ModelFormatError.invalidValue(path: path, key: "\(arch).rope.dimension_count",
                                                reason: "partial rotary embeddings (\(ropeDims) of \(headDimension) dimensions) are not supported")
        }
        let embedding = gguf.tensorInfo(named: TensorRole.tokenEmbedding.ggufName)
        let vocabulary = try gguf.value("\(arch).vocab_size")?.integer
            ?? gguf.stringArray("tokenizer.ggml.tokens")?.count
            ?? embedding?.shape.first ?? 0
        let configuration = LlamaConfiguration(
            hiddenSize: hidden,
            intermediateSize: try int("feed_forward_length"),
            layerCount: try int("block_count"),
            attentionHeads: heads,
            keyValueHeads: gguf.value("\(arch).attention.head_count_kv")?.integer ?? heads,
            headDimension: headDimension,
            vocabularySize: vocabulary,
            rmsNormEpsilon: Float(try real("attention.layer_norm_rms_epsilon", default: 1e-5)),
            ropeTheta: Float(try real("rope.freq_base", default: 10_000)),
            contextLength: gguf.value("\(arch).context_length")?.integer ?? 2048,
            tiedEmbeddings: gguf.tensorInfo(named: TensorRole.outputHead.ggufName) == nil)
        try configuration.validate(source: path)
        return configuration
    }

    public static func load(path: String, options: LoadOptions = LoadOptions()) throws -> LoadedModel {
        let gguf = try GGUFFile(path: path)
        let configuration = try configuration(of: gguf)
        try configuration.requireLayerCount(fitting: gguf.tensors.count, source: path,
                                            key: "\(gguf.value("general.architecture")?.string ?? "llama").block_count")
        let roles = TensorRole.all(for: configuration)
        let expected = Set(roles.map(\.ggufName))
        let unexpected = gguf.tensors.map(\.name).filter { !expected.contains($0) }
        guard unexpected.isEmpty else { throw ModelFormatError.unexpectedTensors(path: path, tensors: unexpected) }

        var typeByRole: [String: Set<ElementType>] = [:]
        var assembler = WeightAssembler(configuration: configuration, path: path) { role in
            guard let info = gguf.tensorInfo(named: role.ggufName) else { return nil }
            typeByRole[role.group, default: []].insert(info.type)
            return (info.shape, gguf.floats(of: info))
        }
        assembler.name = { $0.ggufName }
        assembler.transformQK = { RoPEPermutation.unpermute($0, heads: $1) }
        assembler.halfPrecision = options.halfPrecision  // converted one tensor at a time (GGUF Q/K need un-permuting: no mapping)
        let weights = try assembler.assemble()

        let tokenizer = try BPETokenizer(gguf: gguf, preTokenizerOverride: options.preTokenizer)
        guard tokenizer.vocabularySize == configuration.vocabularySize else {
            throw ModelFormatError.invalidValue(path: path, key: "tokenizer.ggml.tokens",
                                                reason: "\(tokenizer.vocabularySize) tokens but the embedding has \(configuration.vocabularySize) rows")
        }
        let template = try gguf.value("tokenizer.chat_template")?.string.map {
            try ChatTemplate(jinja: $0, source: path)
        }
        var tensorTypes: [ElementType: Int] = [:]
        for info in gguf.tensors { tensorTypes[info.type, default: 0] += 1 }
        var details: [(String, String)] = [("GGUF version", String(gguf.version))]
        if let name = gguf.value("general.name")?.string { details.insert(("name", name), at: 0) }
        let source = ModelSource(path: path, format: .gguf, tensorTypes: tensorTypes, typeByRole: typeByRole, details: details)
        return LoadedModel(configuration: configuration, weights: weights, tokenizer: tokenizer,
                           chatTemplate: template, source: source)
    }
}
