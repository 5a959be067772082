import ArgumentParser
import Foundation
import LinearAlgebra
import Llama
import ModelFormats

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a model's architecture, hyper-parameters, parameter counts, tensor types and tokenizer.")

    @OptionGroup var model: ModelOptions

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    struct Report: Encodable {
        struct Parameters: Encodable {
            var total: Int
            var embedding: Int
            var outputHead: Int
            var norms: Int
            var projections: [String: Int]
            var projectionTotal: Int
        }
        struct Tokenizer: Encodable {
            var vocabularySize: Int
            var merges: Int
            var preTokenizer: String
            var bosTokenID: Int?
            var eosTokenID: Int?
            var addBOS: Bool
            var specialTokens: Int
            var chatTemplate: String?
        }
        var path: String
        var format: String
        var architecture: String
        var configuration: LlamaConfiguration
        var parameters: Parameters
        var tensorTypes: [String: Int]
        var tokenizer: Tokenizer
        var lowRankProjections: Int
        var blas: String
        /// The tier of decode kernels in use: avx512, avx2 or portable (`DecodeKernels.summary`).
        var decode_kernels: String
    }

    func run() throws {
        let loaded = try loadModel(model)
        let c = loaded.configuration
        let counts = ParameterCount(configuration: c, compressedGroups: loaded.weights.compressedGroups)
        let t = loaded.tokenizer
        let report = Report(
            path: loaded.source.path, format: loaded.source.format.rawValue, architecture: "llama",
            configuration: c,
            parameters: .init(total: counts.total, embedding: counts.embedding, outputHead: counts.outputHead,
                              norms: counts.norms,
                              projections: Dictionary(uniqueKeysWithValues: counts.projections.map { ($0.key.shortName, $0.value) }),
                              projectionTotal: counts.projectionTotal),
            tensorTypes: Dictionary(uniqueKeysWithValues: loaded.source.tensorTypes.map { ($0.key.rawValue, $0.value) }),
            tokenizer: .init(vocabularySize: t.vocabularySize, merges: t.mergeCount, preTokenizer: t.preTokenizer.rawValue,
                             bosTokenID: t.bosTokenID, eosTokenID: t.eosTokenID, addBOS: t.addBOS,
                             specialTokens: t.addedTokenIDs.count,
                             chatTemplate: loaded.chatTemplate.map { _ in "ChatML" }),
            lowRankProjections: loaded.weights.factored.count,
            blas: BLASRuntime.summary, decode_kernels: DecodeKernels.summary)
        if json {
            try Terminal.printJSON(report)
            return
        }
        func types(_ group: String) -> String {
            (loaded.source.typeByRole[group] ?? []).map(\.rawValue).sorted().joined(separator: "/")
        }
        var lines: [String] = []
        lines.append("\(loaded.source.path)  (\(loaded.source.format.rawValue))")
        lines.append(Terminal.table(loaded.source.details))
        lines.append("architecture: llama")
        lines.append(Terminal.table([
            ("layers", String(c.layerCount)),
            ("hidden size", String(c.hiddenSize)),
            ("attention heads", "\(c.attentionHeads) query / \(c.keyValueHeads) key-value (head dimension \(c.headDimension))"),
            ("MLP size", "\(c.intermediateSize) (SwiGLU)"),
            ("vocabulary", String(c.vocabularySize)),
            ("context length", String(c.contextLength)),
            ("RoPE theta", String(c.ropeTheta)),
            ("RMSNorm epsilon", String(c.rmsNormEpsilon)),
            ("embeddings", c.tiedEmbeddings ? "tied (output head = token embedding)" : "separate output head"),
        ]))
        var parameterRows: [(String, String)] = [("token embedding", "\(Terminal.grouped(counts.embedding))  \(types("token embedding"))")]
        if counts.outputHead > 0 { parameterRows.append(("output head", "\(Terminal.grouped(counts.outputHead))  \(types("output head"))")) }
        for kind in ProjectionKind.allCases {
            let s = c.shape(of: kind)
            let factored = loaded.weights.factored.filter { $0.key.kind == kind }
            let ranks = Set(factored.values.map(\.rank)).sorted().map(String.init).joined(separator: "/")
            let form = factored.isEmpty ? "" : "  low-rank in \(factored.count) of \(c.layerCount) layers (rank \(ranks))"
            parameterRows.append((kind.shortName, "\(Terminal.grouped(counts.projections[kind]!))  [\(s.outputs) × \(s.inputs)] × \(c.layerCount)  \(types(kind.shortName))\(form)"))
        }
        parameterRows.append(("norms", "\(Terminal.grouped(counts.norms))  \(types("norms"))"))
        parameterRows.append(("projections", Terminal.grouped(counts.projectionTotal)))
        parameterRows.append(("total", "\(Terminal.grouped(counts.total))  (\(String(format: "%.1f", Double(counts.total) / 1e6))M)"))
        lines.append("parameters:")
        lines.append(Terminal.table(parameterRows))
        lines.append("tensor types: " + loaded.source.tensorTypes.sorted { $0.key.rawValue < $1.key.rawValue }
            .map { "\($0.value) × \($0.key.rawValue)" }.joined(separator: ", "))
        lines.append("tokenizer: byte-level BPE, \(t.vocabularySize) tokens, \(t.mergeCount) merges, pre-tokenizer \(t.preTokenizer.rawValue), "
            + "\(t.addedTokenIDs.count) special tokens, BOS \(t.bosTokenID.map(String.init) ?? "none") (added: \(t.addBOS ? "yes" : "no")), "
            + "EOS \(t.eosTokenID.map(String.init) ?? "none")")
        if let template = loaded.chatTemplate {
            lines.append("chat template: ChatML; default system prompt: \(template.defaultSystemPrompt.map { "\"\($0)\"" } ?? "none")")
        } else {
            lines.append("chat template: none")
        }
        lines.append("BLAS: \(report.blas)")
        lines.append("decode kernels: \(report.decode_kernels)")
        print(lines.joined(separator: "\n"))
    }
}
