import Foundation
import Testing
import ModelFormats
import TestSupport
import Llama

/// Real model. Reference values were computed with gguf-py 0.19 (`gguf.quants.dequantize`) and
/// transformers' Q/K `reverse_permute` from the same GGUF: an independent implementation of both
/// the dequantisation and the un-permutation.
@Suite("SmolLM2 loads with the reference hyper-parameters and weights", .serialized)
struct SmolLM2LoadingTests {
    static let model: Result<LoadedModel, any Error> = Result { try ModelLoader.load(Fixtures.requireSmolLM2()) }

    @Test func hyperParametersMatchTheModelCard() throws {
        let c = try Self.model.get().configuration
        #expect(c.layerCount == 30)
        #expect(c.hiddenSize == 576)
        #expect(c.attentionHeads == 9)
        #expect(c.keyValueHeads == 3)
        #expect(c.headDimension == 64)
        #expect(c.intermediateSize == 1536)
        #expect(c.vocabularySize == 49152)
        #expect(c.tiedEmbeddings)
        #expect(c.ropeTheta == 100_000)
        #expect(c.rmsNormEpsilon == 9.999999747378752e-06)
    }

    @Test func parameterCountIsExactly134515008() throws {
        let counts = ParameterCount(configuration: try Self.model.get().configuration)
        #expect(counts.total == 134_515_008)
        #expect(counts.projectionTotal == 106_168_320)
        #expect(counts.embedding == 28_311_552)
        #expect(counts.norms == 35_136)
    }

    @Test func tensorTypesAreReported() throws {
        let source = try Self.model.get().source
        #expect(source.tensorTypes == [.q4_1: 210, .q8_0: 1, .f32: 61])
    }

    @Test func dequantisedWeightsMatchGGUFPy() throws {
        let w = try Self.model.get().weights
        let embedding = w.tokenEmbedding
        #expect(embedding.row(0).prefix(6).elementsEqual([-0.10654449462890625, 0.032978057861328125, 0.048198699951171875,
                                                         -0.022830963134765625, -0.06849288940429688, -0.04566192626953125]))
        #expect(embedding.row(49151).suffix(4).elementsEqual([0.07819175720214844, 0.12858200073242188, -0.11989402770996094, -0.0417022705078125]))
        #expect(embedding.storage.reduce(0.0) { $0 + Double(abs($1)) }.isApproximately(2_802_153.5, relative: 1e-6))
        // Q/K in Hugging Face (rotate-half) row order.
        let q = w.layers[0].query
        #expect(q.row(1).prefix(4).elementsEqual([-0.1591796875, 0.39794921875, -0.0198974609375, -1.2734375]))
        #expect(q.row(33).prefix(4).elementsEqual([-0.06280517578125, 0.1446533203125, 0.00634765625, -0.4085693359375]))
        #expect(q.row(575).suffix(3).elementsEqual([-0.096832275390625, -0.14984130859375, -0.255859375]))
        let k = w.layers[0].key
        #expect(k.row(1).prefix(4).elementsEqual([0.203369140625, 0.09136962890625, 0.203369140625, -0.13262939453125]))
        #expect(k.row(100).prefix(4).elementsEqual([0.2972412109375, -0.07501220703125, 0.54541015625, 0.54541015625]))
        let down = w.layers[29].down
        #expect(down.row(0).prefix(4).elementsEqual([-0.2733154296875, 0.186279296875, 0.186279296875, 0.04840087890625]))
        #expect(down.storage.reduce(0.0) { $0 + Double(abs($1)) }.isApproximately(126_250.9140625, relative: 1e-6))
        #expect(w.finalNorm.prefix(4).elementsEqual([1.7578125, 1.8203125, 1.78125, 1.6015625]))
    }
}

extension Double {
    func isApproximately(_ other: Double, relative: Double) -> Bool { abs(self - other) <= relative * abs(other) }
}
