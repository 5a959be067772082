import Foundation
import Testing
import LinearAlgebra
import ModelFormats
import TestSupport
import Llama

@Suite("GGUF and Hugging Face files load to the same model")
struct FormatEquivalenceTests {
    @Test(arguments: [true, false])
    func tinyLlamaWrittenInBothFormatsLoadsToIdenticalWeights(tied: Bool) throws {
        let tiny = TinyLlama(seed: 11, tiedEmbeddings: tied)
        let dir = TemporaryDirectory()
        try tiny.writeGGUF(to: dir.file("tiny.gguf"))
        try tiny.writeHuggingFace(to: dir.file("hf"))
        let gguf = try ModelLoader.load(dir.file("tiny.gguf"))
        let hf = try ModelLoader.load(dir.file("hf"))
        #expect(gguf.configuration == tiny.configuration)
        #expect(hf.configuration == tiny.configuration)
        // The GGUF stores Q/K permuted as llama.cpp's converter does; loading must undo it exactly.
        #expect(gguf.weights == tiny.weights)
        #expect(hf.weights == tiny.weights)
        #expect(gguf.tokenizer.tokens == hf.tokenizer.tokens)
        #expect(gguf.tokenizer.encode("hello the world") == hf.tokenizer.encode("hello the world"))
        #expect(gguf.chatTemplate == tiny.chatTemplate)
        #expect(hf.chatTemplate == tiny.chatTemplate)
        #expect(gguf.source.format == .gguf)
        #expect(hf.source.format == .huggingFace)
    }

    @Test func shardedSafetensorsLoadLikeASingleFile() throws {
        let tiny = TinyLlama(seed: 3)
        let dir = TemporaryDirectory()
        try tiny.writeHuggingFace(to: dir.file("sharded"), shards: 3)
        let loaded = try ModelLoader.load(dir.file("sharded"))
        #expect(loaded.weights == tiny.weights)
        #expect(loaded.source.details.first { $0.0 == "shards" }?.1 == "3")
    }

    @Test func halfPrecisionSafetensorsAreWidenedToFloat32() throws {
        let tiny = TinyLlama(seed: 5)
        let dir = TemporaryDirectory()
        try tiny.writeHuggingFace(to: dir.file("hf"))
        var writer = SafetensorsWriter()
        writer.tensors = tiny.safetensorsTensors(as: .f16)
        try writer.write(to: dir.file("hf/model.safetensors"))
        let loaded = try ModelLoader.load(dir.file("hf"))
        let q = loaded.weights.layers[1].query
        let expected = tiny.weights.layers[1].query.storage.map { Float(Float16($0)) }
        #expect(q.storage == expected)
        #expect(loaded.source.tensorTypes == [.f16: TensorRole.all(for: tiny.configuration).count])
    }

    @Test func ropePermutationAndItsInverseCancel() {
        var rng = SeededGenerator(seed: 1)
        let m = Matrix(rows: 24, columns: 5, storage: rng.floats(120, scale: 1))
        #expect(RoPEPermutation.unpermute(RoPEPermutation.permute(m, heads: 3), heads: 3) == m)
        // Head size 8: HF row j·4 + i comes from GGUF row 2i + j, so GGUF row 1 (i 0, j 1) is HF row 4.
        let p = RoPEPermutation.permute(m, heads: 3)
        #expect(p.row(1) == m.row(4))
        #expect(p.row(2) == m.row(1))
        #expect(p.row(8 + 3) == m.row(8 + 5))
    }

    @Test func parameterCountsAddUpByKind() {
        let c = TinyLlama().configuration
        let counts = ParameterCount(configuration: c)
        #expect(counts.embedding == 265 * 64)
        #expect(counts.projections[.key] == 2 * 32 * 64)
        #expect(counts.projections[.down] == 2 * 64 * 96)
        #expect(counts.norms == 5 * 64)
        #expect(counts.total == counts.embedding + counts.norms + counts.projectionTotal)
    }
}
