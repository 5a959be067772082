import Foundation
import LinearAlgebra
import ModelFormats
import Tokenization

/// Reads Llama-family models from Hugging Face directories: `config.json`, `model.safetensors`
/// (or shards with `model.safetensors.index.json`), `tokenizer.json` and optionally
/// `tokenizer_config.json` (for BOS/EOS and the chat template).
public enum HuggingFaceLoader {
    public static let supportedModelTypes = ["llama", "mistral"]

    public static func configuration(directory: String) throws -> LlamaConfiguration {
        try configurationAndJSON(directory: directory).0
    }

    static func configurationAndJSON(directory: String) throws -> (LlamaConfiguration, [String: Any]) {
        let path = directory + "/config.json"
        let data: Data
        do { data = try FileBytes.read(path) } catch {
            throw ModelFormatError.cannotOpen(path: path, reason: "cannot read config.json (\(error))")
        }
        guard String(data: data, encoding: .utf8) != nil else { throw ModelFormatError.invalidUTF8(path: path, context: "config.json") }
        guard let object = try? JSONSerialization.jsonObject(with: data), let json = object as? [String: Any] else {
            throw ModelFormatError.malformedJSON(path: path, reason: "not a JSON object")
        }
        func int(_ key: String, default value: Int? = nil) throws -> Int {
            guard let raw = json[key], !(raw is NSNull) else {
                if let value { return value }
                throw ModelFormatError.missingKey(path: path, key: key)
            }
            guard let number = raw as? NSNumber, let int = Int(exactly: number.doubleValue) else {
                throw ModelFormatError.wrongKeyType(path: path, key: key, expected: "an integer", found: "\(raw)")
            }
            return int
        }
        func real(_ key: String, default value: Double) throws -> Double {
            guard let raw = json[key], !(raw is NSNull) else { return value }
            guard let number = raw as? NSNumber else {
                throw ModelFormatError.wrongKeyType(path: path, key: key, expected: "a number", found: "\(raw)")
            }
            return number.doubleValue
        }
        let modelType = json["model_type"] as? String ?? "llama"
        guard supportedModelTypes.contains(modelType) else {
            throw ModelFormatError.invalidValue(path: path, key: "model_type",
                                                reason: "'\(modelType)' is not supported (supported: \(supportedModelTypes.joined(separator: ", ")))")
        }
        if let scaling = json["rope_scaling"], !(scaling is NSNull) {
            throw ModelFormatError.invalidValue(path: path, key: "rope_scaling", reason: "RoPE scaling is not supported yet")
        }
        if let window = json["sliding_window"], !(window is NSNull) {
            throw ModelFormatError.invalidValue(path: path, key: "sliding_window",
                                                reason: "sliding-window attention is not supported; set it to null only if the model never attends past it")
        }
        let heads = try int("num_attention_heads")
        let hidden = try int("hidden_size")
        let configuration = LlamaConfiguration(
            hiddenSize: hidden,
            intermediateSize: try int("intermediate_size"),
            layerCount: try int("num_hidden_layers"),
            attentionHeads: heads,
            keyValueHeads: try int("num_key_value_heads", default: heads),
            headDimension: try int("head_dim", default: heads > 0 ? hidden / heads : 0),
            vocabularySize: try int("vocab_size"),
            rmsNormEpsilon: Float(try real("rms_norm_eps", default: 1e-6)),
            ropeTheta: Float(try real("rope_theta", default: 10_000)),
            contextLength: try int("max_position_embeddings", default: 2048),
            tiedEmbeddings: json["tie_word_embeddings"] as? Bool ?? false)
        try configuration.validate(source: path)
        return (configuration, json)
    }

    public static func load(directory: String, options: LoadOptions = LoadOptions()) throws -> LoadedModel {
        let (configuration, json) = try configurationAndJSON(directory: directory)
        // A compressed checkpoint names the form of each compressed module (see `Checkpoint`).
        let forms = try Checkpoint.moduleForms(config: json, configuration: configuration, path: directory + "/config.json")
        let tensors = try SafetensorsDirectory(directory: directory)
        try configuration.requireLayerCount(fitting: tensors.tensorNames.count, source: directory + "/config.json", key: "num_hidden_layers")
        let roles = TensorRole.all(for: configuration)
        let (added, replaced) = Checkpoint.tensorNames(of: forms)
        var known = Set(roles.map(\.huggingFaceName)).subtracting(replaced).union(added)
        // A tied model may still carry lm_head.weight (transformers ties it on load): it is ignored.
        if configuration.tiedEmbeddings { known.insert(TensorRole.outputHead.huggingFaceName) }
        // Older checkpoints store the RoPE inverse frequencies, which the configuration determines.
        let unexpected = tensors.tensorNames.filter { !known.contains($0) && !$0.hasSuffix(".rotary_emb.inv_freq") }
        guard unexpected.isEmpty else { throw ModelFormatError.unexpectedTensors(path: directory, tensors: unexpected) }

        var typeByRole: [String: Set<ElementType>] = [:]
        var tensorTypes: [ElementType: Int] = [:]
        for name in tensors.tensorNames {
            if let (_, info) = tensors.info(named: name) { tensorTypes[info.type, default: 0] += 1 }
        }
        let groups = try Checkpoint.loadGroups(forms, configuration: configuration, tensors: tensors, directory: directory) {
            typeByRole[$0, default: []].insert($1)
        }
        // Every projection of a compressed group (its dense members too) was read into the group
        // above, and gets no entry in the layer weights.
        let inGroups = Set(groups.keys.flatMap { g in g.site.projections.map { ProjectionID(layer: g.layer, kind: $0) } })
        var assembler = WeightAssembler(configuration: configuration, path: directory) { role in
            guard let (file, info) = tensors.info(named: role.huggingFaceName) else { return nil }
            typeByRole[role.group, default: []].insert(info.type)
            return (info.shape, file.floats(of: info))
        }
        // Used in place from the map (2-byte aligned): with `halfPrecision`, a matrix the file stores
        // in exactly that type; with `mapsStoredHalfPrecision`, one it stores in F16 or BF16, in that
        // type. Anything else loads in Float32 (and is then converted to `halfPrecision` if asked).
        assembler.halfPrecision = options.halfPrecision
        if options.halfPrecision != nil || options.mapsStoredHalfPrecision {
            assembler.mappedTensor = { role in
                guard let (file, info) = tensors.info(named: role.huggingFaceName), info.shape.count == 2,
                      let precision: WeightPrecision = info.type == .f16 ? .float16 : info.type == .bf16 ? .bfloat16 : nil,
                      options.mapsStoredHalfPrecision || precision == options.halfPrecision else { return nil }
                let bytes = file.rawBytes(of: info)
                guard let base = bytes.baseAddress, Int(bitPattern: base) % 2 == 0, bytes.count == 2 * info.elementCount else { return nil }
                typeByRole[role.group, default: []].insert(info.type)
                return WeightMatrix(mapped: base.assumingMemoryBound(to: UInt16.self), rows: info.shape[0], columns: info.shape[1],
                                    precision: precision, owner: file.mapping)
            }
        }
        var weights = try assembler.assemble(factored: inGroups)
        weights.compressedGroups = groups

        let tokenizerPath = directory + "/tokenizer.json"
        guard FileManager.default.fileExists(atPath: tokenizerPath) else {
            throw ModelFormatError.cannotOpen(path: tokenizerPath, reason: "the model directory has no tokenizer.json")
        }
        let tokenizer = try BPETokenizer(tokenizerJSON: tokenizerPath, preTokenizerOverride: options.preTokenizer)
        guard tokenizer.vocabularySize <= configuration.vocabularySize else {
            throw ModelFormatError.invalidValue(path: tokenizerPath, key: "vocabulary",
                                                reason: "\(tokenizer.vocabularySize) tokens but the embedding has \(configuration.vocabularySize) rows")
        }
        var template: ChatTemplate?
        let tokenizerConfig = directory + "/tokenizer_config.json"
        if let data = try? FileBytes.read(tokenizerConfig),
           let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           let jinja = object["chat_template"] as? String {
            template = try ChatTemplate(jinja: jinja, source: tokenizerConfig)
        }
        let source = ModelSource(path: directory, format: .huggingFace, tensorTypes: tensorTypes,
                                 typeByRole: typeByRole, details: [("shards", String(tensors.files.count))])
        return LoadedModel(configuration: configuration, weights: weights, tokenizer: tokenizer,
                           chatTemplate: template, source: source)
    }
}
