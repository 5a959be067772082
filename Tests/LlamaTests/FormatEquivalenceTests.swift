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

    /// Half-precision inference maps the file: every matrix stored in the precision asked for is
    /// used in place (no Float32 copy), and the model computes exactly what the Float32-loaded model
    /// converted to that precision computes. A file of another type is read and converted as before.
    @Test(arguments: [(ElementType.f16, WeightPrecision.float16), (.bf16, .bfloat16)])
    func halfPrecisionInferenceUsesTheMappedFileInPlace(type: ElementType, precision: WeightPrecision) throws {
        for tied in [true, false] {
            let tiny = TinyLlama(seed: 6, tiedEmbeddings: tied)
            let dir = TemporaryDirectory()
            try tiny.writeHuggingFace(to: dir.file("hf"))
            var writer = SafetensorsWriter()
            writer.tensors = tiny.safetensorsTensors(as: type)
            try writer.write(to: dir.file("hf/model.safetensors"))
            let mapped = try ModelLoader.load(dir.file("hf"), options: LoadOptions(halfPrecision: precision))
            let copied = try ModelLoader.load(dir.file("hf"))
            let c = tiny.configuration
            #expect(mapped.weights.halfPrecision.count == 7 * c.layerCount + (tied ? 1 : 2), "every matrix is used in place")
            #expect(mapped.weights.layers[0].dense(.query) == nil && mapped.weights.tokenEmbedding.count == 0)
            let a = LlamaModel(configuration: c, weights: mapped.weights, precision: precision)
            let b = LlamaModel(configuration: c, weights: copied.weights, precision: precision)
            #expect(a.tokenEmbedding.isMapped && !b.tokenEmbedding.isMapped)
            #expect(a.mappedWeightBytes == a.weightBytes + (tied ? 0 : c.vocabularySize * c.hiddenSize * 2), "the head and the embedding once each")
            let tokens = [3, 17, 90, 4, 200, 61]
            let positions = Set(tokens.indices)
            let x = a.score(tokens, keepLogitsAt: positions), y = b.score(tokens, keepLogitsAt: positions)
            for p in tokens.indices { #expect(x.logits[p]! == y.logits[p]!, "position \(p), tied \(tied)") }
            let greedy = Generator(model: a, capacity: 32, prefillRows: 4).generate(prompt: tokens, maxTokens: 6, sampling: .greedy, stopTokens: [])
            let expected = Generator(model: b, capacity: 32, prefillRows: 4).generate(prompt: tokens, maxTokens: 6, sampling: .greedy, stopTokens: [])
            #expect(greedy.tokens == expected.tokens)
        }
        // A Float32 file (and a GGUF, whose Q/K are un-permuted): nothing is mapped; the matrices are
        // converted one at a time, the embedding stays Float32, and the model is the one converted whole.
        let tiny = TinyLlama(seed: 6)
        let dir = TemporaryDirectory()
        try tiny.writeHuggingFace(to: dir.file("hf"))
        try tiny.writeGGUF(to: dir.file("tiny.gguf"))
        for path in [dir.file("hf"), dir.file("tiny.gguf")] {
            let converted = try ModelLoader.load(path, options: LoadOptions(halfPrecision: precision))
            #expect(converted.weights.halfPrecision.count == 7 * tiny.configuration.layerCount && converted.weights.halfPrecision.values.allSatisfy { !$0.isMapped })
            #expect(converted.weights.tokenEmbedding == tiny.weights.tokenEmbedding)
            let a = LlamaModel(configuration: tiny.configuration, weights: converted.weights, precision: precision)
            let b = LlamaModel(configuration: tiny.configuration, weights: tiny.weights, precision: precision)
            #expect(a.layers == b.layers && a.outputHead == b.outputHead && a.tokenEmbedding == b.tokenEmbedding, "\(path)")
        }
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
