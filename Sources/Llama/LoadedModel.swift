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

    /// Inference in half precision (f16 or bf16; `LlamaWeights.halfPrecision`): dense projections
    /// and the head go straight to it, never to a Float32 copy of the whole model. A Hugging Face
    /// file that stores a matrix in exactly that type is used in place from the memory map (the
    /// token embedding too); other matrices are read and converted one at a time. Not for
    /// compression or gradients (they need the Float32 weights).
    public var halfPrecision: WeightPrecision?

    /// Compression from a memory map: matrices a Hugging Face file stores in F16 or BF16 are used
    /// in place in their own precision (`LlamaWeights.halfPrecision`; `LlamaWeights.float32(_:)`
    /// widens one when it is needed, exactly), and everything else loads in Float32 as usual. So
    /// the Float32 model never exists whole and no value is rounded. Excludes `halfPrecision`.
    public var mapsStoredHalfPrecision: Bool

    public init(preTokenizer: PreTokenizer? = nil, halfPrecision: WeightPrecision? = nil, mapsStoredHalfPrecision: Bool = false) {
        precondition(halfPrecision != .float32, "Float32 is what loading gives without this option")
        precondition(halfPrecision == nil || !mapsStoredHalfPrecision, "a model is converted to one half precision or kept as stored, not both")
        self.preTokenizer = preTokenizer
        self.halfPrecision = halfPrecision
        self.mapsStoredHalfPrecision = mapsStoredHalfPrecision
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
    /// With a half precision (`LoadOptions.halfPrecision`): projections and the head go straight
    /// to it, in place from the file where `mappedTensor` gives them, else read and converted one
    /// at a time, so the Float32 model never exists whole.
    var halfPrecision: WeightPrecision?
    /// A role's tensor used in place from the file (stored in `halfPrecision`), or nil.
    var mappedTensor: (TensorRole) throws -> WeightMatrix? = { _ in nil }

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
        var half: [TensorRole: WeightMatrix] = [:]
        /// The matrix of `role` in place from the file, if the file stores it in `halfPrecision`.
        func inPlace(_ role: TensorRole) throws -> Bool {
            guard let m = try mappedTensor(role) else { return false }
            let expected = role.shape(in: configuration)
            guard [m.rows, m.columns] == expected else {
                throw ModelFormatError.shapeMismatch(path: path, tensor: name(role), expected: expected, found: [m.rows, m.columns])
            }
            half[role] = m
            return true
        }
        /// The Float32 matrix of `role` (Q/K in Hugging Face layout), or nil when it went to `half`.
        func read(_ role: TensorRole) throws -> Matrix<Float>? {
            if try inPlace(role) { return nil }
            var m = try matrix(role)
            if case .projection(let id) = role, id.kind == .query { m = transformQK(m, c.attentionHeads) }
            if case .projection(let id) = role, id.kind == .key { m = transformQK(m, c.keyValueHeads) }
            guard let halfPrecision else { return m }
            half[role] = WeightMatrix(m, precision: halfPrecision)
            return nil
        }
        for layer in 0..<c.layerCount {
            layers.append(try LlamaLayerWeights(attentionNorm: try vector(.attentionNorm(layer: layer)),
                                                mlpNorm: try vector(.mlpNorm(layer: layer))) { kind in
                let id = ProjectionID(layer: layer, kind: kind)
                if factored.contains(id) { return nil }
                return try read(.projection(id))
            })
        }
        // The embedding is used in place or kept in Float32 (its rows are only looked up).
        let embedding = try inPlace(.tokenEmbedding) ? Matrix<Float>(rows: 0, columns: 0, storage: []) : try matrix(.tokenEmbedding)
        let head = c.tiedEmbeddings ? nil : try read(.outputHead)
        var weights = LlamaWeights(tokenEmbedding: embedding, layers: layers, finalNorm: try vector(.finalNorm), outputHead: head)
        weights.halfPrecision = half
        return weights
    }
}
