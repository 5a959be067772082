import Foundation
import LinearAlgebra
import ModelFormats
import Tokenization

/// A model read from disk: configuration, weights in Hugging Face layout, tokenizer and chat template.
public struct LoadedModel: Sendable {
    public var configuration: LlamaConfiguration
    public var weights: LlamaWeights
    public var tokenizer: BPETokenizer
    /// nil when the model has no (ChatML) template.
    public var chatTemplate: ChatTemplate?
    public var source: ModelSource
}

/// Options that change how a model is read.
public struct LoadOptions: Sendable {
    /// Replace the pre-tokenizer the model file names (see `BPETokenizer.init(gguf:)`).
    public var preTokenizer: PreTokenizer?

    public init(preTokenizer: PreTokenizer? = nil) {
        self.preTokenizer = preTokenizer
    }
}

public enum ModelLoader {
    /// Loads a `.gguf` file or a Hugging Face directory (`config.json`, safetensors, `tokenizer.json`).
    public static func load(_ path: String, options: LoadOptions = LoadOptions()) throws -> LoadedModel {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ModelFormatError.cannotOpen(path: path, reason: "no such file or directory")
        }
        if isDirectory.boolValue {
            return try HuggingFaceLoader.load(directory: path, options: options)
        }
        return try GGUFLoader.load(path: path, options: options)
    }
}

/// Shared by both loaders: turn flat tensors into `LlamaWeights`, checking every shape.
struct WeightAssembler {
    let configuration: LlamaConfiguration
    let path: String
    /// Returns the row-major values of a role's tensor, or nil if the file lacks it.
    let fetch: (TensorRole) throws -> (shape: [Int], values: [Float])?
    /// Applied to Q/K after reading (GGUF un-permutation).
    var transformQK: (Matrix<Float>, Int) -> Matrix<Float> = { m, _ in m }

    func matrix(_ role: TensorRole) throws -> Matrix<Float> {
        let expected = role.shape(in: configuration)
        guard let (shape, values) = try fetch(role) else {
            throw ModelFormatError.missingTensor(path: path, tensor: name(role))
        }
        guard shape == expected else {
            throw ModelFormatError.shapeMismatch(path: path, tensor: name(role), expected: expected, found: shape)
        }
        return Matrix(rows: expected[0], columns: expected.count > 1 ? expected[1] : 1, storage: values)
    }

    func vector(_ role: TensorRole) throws -> [Float] { try matrix(role).storage }

    var name: (TensorRole) -> String = { $0.huggingFaceName }

    /// - Parameter factored: projections stored as factors: they get no dense weight.
    func assemble(factored: Set<ProjectionID> = []) throws -> LlamaWeights {
        let c = configuration
        var layers: [LlamaLayerWeights] = []
        for layer in 0..<c.layerCount {
            layers.append(try LlamaLayerWeights(attentionNorm: try vector(.attentionNorm(layer: layer)),
                                                mlpNorm: try vector(.mlpNorm(layer: layer))) { kind in
                let id = ProjectionID(layer: layer, kind: kind)
                if factored.contains(id) { return nil }
                let m = try matrix(.projection(id))
                switch kind {
                case .query: return transformQK(m, c.attentionHeads)
                case .key: return transformQK(m, c.keyValueHeads)
                default: return m
                }
            })
        }
        return LlamaWeights(
            tokenEmbedding: try matrix(.tokenEmbedding),
            layers: layers,
            finalNorm: try vector(.finalNorm),
            outputHead: c.tiedEmbeddings ? nil : try matrix(.outputHead))
    }
}
