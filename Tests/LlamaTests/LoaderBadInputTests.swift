import Foundation
import Testing
import ModelFormats
import TestSupport
import Llama

/// A model that is incomplete or contradicts itself is refused with an error naming the file and
/// the tensor or key, never loaded halfway.
@Suite("Model loading rejects bad input")
struct LoaderBadInputTests {
    func expectFormatError(_ path: String, sourceLocation: SourceLocation = #_sourceLocation,
                           _ check: (ModelFormatError) -> Bool) {
        do {
            _ = try ModelLoader.load(path)
            Issue.record("loaded", sourceLocation: sourceLocation)
        } catch let error as ModelFormatError {
            #expect(check(error), "\(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func missingTensorIsNamed() throws {
        let dir = TemporaryDirectory()
        var writer = TinyLlama().ggufWriter()
        writer.tensors.removeAll { $0.name == "blk.1.ffn_up.weight" }
        try writer.write(to: dir.file("m.gguf"))
        expectFormatError(dir.file("m.gguf")) { $0 == .missingTensor(path: dir.file("m.gguf"), tensor: "blk.1.ffn_up.weight") }
    }

    @Test func shapeThatContradictsTheMetadataIsNamed() throws {
        let dir = TemporaryDirectory()
        var writer = TinyLlama().ggufWriter()
        let i = try #require(writer.tensors.firstIndex { $0.name == "blk.0.attn_v.weight" })
        writer.tensors[i] = .init(name: "blk.0.attn_v.weight", shape: [64, 64], floats: [Float](repeating: 0, count: 4096))
        try writer.write(to: dir.file("m.gguf"))
        expectFormatError(dir.file("m.gguf")) {
            $0 == .shapeMismatch(path: dir.file("m.gguf"), tensor: "blk.0.attn_v.weight", expected: [32, 64], found: [64, 64])
        }
    }

    @Test func unexpectedTensorsAreListed() throws {
        let dir = TemporaryDirectory()
        var writer = TinyLlama().ggufWriter()
        writer.tensors.append(.init(name: "blk.0.attn_q.bias", shape: [64], floats: [Float](repeating: 0, count: 64)))
        try writer.write(to: dir.file("m.gguf"))
        expectFormatError(dir.file("m.gguf")) { $0 == .unexpectedTensors(path: dir.file("m.gguf"), tensors: ["blk.0.attn_q.bias"]) }
    }

    @Test func missingHyperParameterIsNamed() throws {
        let dir = TemporaryDirectory()
        var writer = TinyLlama().ggufWriter()
        writer.metadata.removeAll { $0.0 == "llama.block_count" }
        try writer.write(to: dir.file("m.gguf"))
        expectFormatError(dir.file("m.gguf")) { $0 == .missingKey(path: dir.file("m.gguf"), key: "llama.block_count") }
    }

    @Test func unsupportedArchitectureIsNamed() throws {
        let dir = TemporaryDirectory()
        var writer = TinyLlama().ggufWriter()
        writer.set("general.architecture", .string("falcon"))
        try writer.write(to: dir.file("m.gguf"))
        expectFormatError(dir.file("m.gguf")) {
            if case .invalidValue(_, "general.architecture", let reason) = $0 { return reason.contains("falcon") }
            return false
        }
    }

    /// Found by the gguf fuzz target (fuzz/regressions/gguf): a declared layer count the tensor table
    /// cannot hold is refused before any work is sized by it.
    @Test func aLayerCountTheTensorTableCannotHoldIsRefusedByName() throws {
        let dir = TemporaryDirectory()
        var writer = TinyLlama().ggufWriter()
        writer.set("llama.block_count", .uint32(44_289))
        try writer.write(to: dir.file("m.gguf"))
        expectFormatError(dir.file("m.gguf")) {
            if case .invalidValue(dir.file("m.gguf"), "llama.block_count", let reason) = $0 { return reason.contains("44289 layers") }
            return false
        }
        let tiny = TinyLlama()
        try tiny.writeHuggingFace(to: dir.file("hf"))
        var config = tiny.configJSON
        config["num_hidden_layers"] = 1_000_000
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: dir.file("hf/config.json")))
        expectFormatError(dir.file("hf")) {
            if case .invalidValue(dir.file("hf/config.json"), "num_hidden_layers", let reason) = $0 { return reason.contains("1000000 layers") }
            return false
        }
    }

    @Test func headCountsThatDoNotDivideAreRejected() throws {
        let dir = TemporaryDirectory()
        var writer = TinyLlama().ggufWriter()
        writer.set("llama.attention.head_count_kv", .uint32(3))
        try writer.write(to: dir.file("m.gguf"))
        expectFormatError(dir.file("m.gguf")) { if case .invalidValue(_, "key/value heads", _) = $0 { true } else { false } }
    }

    @Test func truncatedModelFileIsReported() throws {
        let dir = TemporaryDirectory()
        let bytes = TinyLlama().ggufWriter().encoded()
        try Data(bytes[0..<(bytes.count / 2)]).write(to: URL(fileURLWithPath: dir.file("m.gguf")))
        expectFormatError(dir.file("m.gguf")) {
            if case .tensorOutOfBounds = $0 { return true }
            if case .truncated = $0 { return true }
            return false
        }
    }

    @Test func malformedConfigJSONIsReported() throws {
        let dir = TemporaryDirectory()
        try TinyLlama().writeHuggingFace(to: dir.file("hf"))
        try Data("{\"hidden_size\": 64,".utf8).write(to: URL(fileURLWithPath: dir.file("hf/config.json")))
        expectFormatError(dir.file("hf")) { $0 == .malformedJSON(path: dir.file("hf/config.json"), reason: "not a JSON object") }
    }

    @Test func wrongTypeInConfigJSONIsNamed() throws {
        let dir = TemporaryDirectory()
        let tiny = TinyLlama()
        try tiny.writeHuggingFace(to: dir.file("hf"))
        var config = tiny.configJSON
        config["num_hidden_layers"] = "two"
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: dir.file("hf/config.json")))
        expectFormatError(dir.file("hf")) {
            if case .wrongKeyType(_, "num_hidden_layers", "an integer", _) = $0 { true } else { false }
        }
    }

    @Test func missingTokenizerJSONIsReported() throws {
        let dir = TemporaryDirectory()
        try TinyLlama().writeHuggingFace(to: dir.file("hf"))
        try FileManager.default.removeItem(atPath: dir.file("hf/tokenizer.json"))
        expectFormatError(dir.file("hf")) { if case .cannotOpen(let path, _) = $0 { path.hasSuffix("tokenizer.json") } else { false } }
    }

    @Test func shardIndexNamingAMissingTensorIsReported() throws {
        let dir = TemporaryDirectory()
        try TinyLlama().writeHuggingFace(to: dir.file("hf"), shards: 2)
        let indexPath = dir.file("hf/model.safetensors.index.json")
        var index = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: indexPath))) as! [String: Any]
        var map = index["weight_map"] as! [String: String]
        map["model.layers.0.mlp.up_proj.weight"] = map["model.norm.weight"]  // wrong shard
        index["weight_map"] = map
        try JSONSerialization.data(withJSONObject: index).write(to: URL(fileURLWithPath: indexPath))
        expectFormatError(dir.file("hf")) { if case .missingTensor(_, "model.layers.0.mlp.up_proj.weight") = $0 { true } else { false } }
    }

    @Test func nonexistentPathIsReported() {
        expectFormatError("/nonexistent/model") { $0 == .cannotOpen(path: "/nonexistent/model", reason: "no such file or directory") }
    }
}
