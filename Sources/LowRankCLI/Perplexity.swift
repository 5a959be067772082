import ArgumentParser
import Evaluation
import Foundation
import LinearAlgebra
import Llama
import LowRank
import ModelFormats

struct Perplexity: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Perplexity on WikiText-2, C4 or a text file, with the SVD-LLM protocol.",
        discussion: """
            The corpus is tokenised once (no BOS), cut into consecutive non-overlapping windows of --window tokens \
            (remainder dropped), and every position after the first of each window is scored; perplexity is \
            exp(mean NLL). Windows with non-finite logits are counted and kept, never skipped.
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var engine: EngineOptions

    @Option(help: "wikitext2, c4, or a path (.txt used as is; .jsonl: the \"text\" fields joined with blank lines).")
    var dataset: String = "wikitext2"

    @Option(help: "Tokens per window.")
    var window: Int = 2048

    @Option(help: "Score only the first N windows.")
    var limit: Int?

    @Option(help: "Folder holding wikitext2/ and c4/ (default: $LOWRANK_DATA, ./data, or the repository's data/).")
    var dataDirectory: String?

    @Flag(help: "Print JSON.")
    var json = false

    struct Report: Encodable {
        var perplexity: Double
        var mean_nll: Double
        var tokens: Int
        var windows: Int
        var `protocol`: String
        var window_length: Int
        var available_windows: Int
        var corpus_tokens: Int
        var non_finite_positions: Int
        var seconds: Double
        var recipe: Recipe
    }

    /// What produced the numbers, so they can be reproduced.
    struct Recipe: Encodable {
        var model: String
        var model_sha256: String
        var weights: String
        /// How the KV cache stored keys and values (`--kv-cache`).
        var kv_cache: String
        /// Fraction of each low-rank factor's stored rank that ran (`--active-rank`).
        var active_rank: Double
        var dataset: String
        var dataset_file: String
        var dataset_sha256: String
        var joining: String
        var limit: Int?
        /// For a compressed checkpoint: its method, budget, calibration set and seed.
        var compression: CompressionRecord.Provenance?
        var blas: String
        var lowrank_version: String
    }

    func validate() throws {
        guard window >= 2 else { throw ValidationError("--window must be at least 2") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() throws {
        var loaded = try loadModel(model, engine: engine)
        let provenance = try CompressionRecord.Provenance.read(loaded)
        let runtime = try engine.makeModel(&loaded)
        let corpus = Corpus(argument: dataset)
        let dataDirectory = dataDirectory ?? defaultDataDirectory()
        let text: String
        do { text = try corpus.text(dataDirectory: dataDirectory) } catch let error as CorpusError { throw CLIError(error.description) }
        let encoding = loaded.tokenizer.encodeCounting(text)
        if encoding.skippedBytes > 0 {
            Terminal.error("note: \(encoding.skippedBytes) byte(s) of the corpus have no token in this vocabulary and were skipped (as Hugging Face does)")
        }
        let evaluation = PerplexityEvaluation(windowLength: window, limit: limit)
        let progress = ProgressReporter("perplexity \(corpus.name)", unit: "windows")
        let result: PerplexityEvaluation.Result
        do {
            result = try evaluation.run(LlamaLanguageModel(runtime), tokens: encoding.ids, progress: progress.update)
        } catch let error as EvaluationError { throw CLIError(error.description) }
        if result.nonFinitePositions > 0 {
            Terminal.error("warning: \(result.nonFinitePositions) position(s) had non-finite logits; they are included, so the mean is not finite")
        }
        let file = corpus.path(dataDirectory: dataDirectory)
        let recipe = Recipe(model: loaded.source.path, model_sha256: try SHA256.hexDigest(ofFile: modelDigestPath(loaded)),
                            weights: engine.weights.rawValue, kv_cache: engine.keyValuePrecision.rawValue, active_rank: engine.activeRank, dataset: corpus.name, dataset_file: file,
                            dataset_sha256: try SHA256.hexDigest(ofFile: file), joining: corpus.joining, limit: limit,
                            compression: provenance, blas: BLASRuntime.summary, lowrank_version: lowrankVersion)
        let report = Report(perplexity: result.perplexity, mean_nll: result.meanNLL, tokens: result.tokens, windows: result.windows,
                            protocol: result.protocol, window_length: result.windowLength, available_windows: result.availableWindows,
                            corpus_tokens: result.corpusTokens, non_finite_positions: result.nonFinitePositions,
                            seconds: result.seconds, recipe: recipe)
        if json {
            try Terminal.printJSON(report)
        } else {
            print(String(format: "perplexity %.4f (mean NLL %.6f) on %@: %d windows of %d (%d predicted tokens; %d windows available), %.1f s",
                         result.perplexity, result.meanNLL, corpus.name, result.windows, result.windowLength, result.tokens,
                         result.availableWindows, result.seconds))
        }
    }
}

/// The file whose digest identifies a model: the GGUF itself, or a directory's config.json.
func modelDigestPath(_ loaded: LoadedModel) -> String {
    loaded.source.format == .gguf ? loaded.source.path : loaded.source.path + "/config.json"
}

let lowrankVersion = "0.1.0"
