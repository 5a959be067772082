import ArgumentParser
import Evaluation
import Foundation
import LinearAlgebra
import Llama
import LowRank
import ModelFormats

struct Summarize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Summarisation ROUGE-1/2/L (F1) on DialogSum test, CNN/DailyMail validation or a JSON-lines file.",
        discussion: """
            Each document goes into the model's chat template as the user message, after the dataset's instruction \
            (the model's default system prompt stays); the reply is decoded greedily up to --max-tokens (stopping at \
            the end of the turn), trimmed, and scored as Google's rouge-score does with use_stemmer=True (lowercase, \
            non-alphanumerics as separators, Porter stemming of words longer than 3 characters; ROUGE-L is the \
            sentence-level LCS). DialogSum test has three references per dialogue: each metric takes the best of \
            the three. The CNN/DailyMail file is the validation split (no test copy is available), so its numbers \
            are not comparable to published test numbers. Data: data/dialogsum/test.jsonl, data/cnndm/validation.jsonl.
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var engine: EngineOptions
    @OptionGroup var scheduleOptions: RankScheduleOptions

    @Option(help: "dialogsum (test), cnndm (validation), dialogsum-train (calibration only), or a .jsonl path.")
    var dataset: String = "dialogsum"

    @Option(help: "Summarise only the first N items.")
    var limit: Int?

    @Option(help: "Maximum new tokens per summary.")
    var maxTokens: Int = 128

    @Option(help: "Folder holding dialogsum/ and cnndm/ (default: $LOWRANK_DATA, ./data, or the repository's data/).")
    var dataDirectory: String?

    @Flag(help: "Print JSON (every item with its prediction, references and scores; the means; the prompt; the recipe).")
    var json = false

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be at least 1") }
    }

    struct Item: Encodable {
        var id: String
        var prediction: String
        var references: [String]
        var rouge1: Double
        var rouge2: Double
        var rougeL: Double
        var prompt_tokens: Int
        var generated_tokens: Int
        var stop_reason: String
    }

    struct Recipe: Encodable {
        var model: String
        var model_sha256: String
        var weights: String
        /// How the KV cache stored keys and values (`--kv-cache`).
        var kv_cache: String
        var active_rank: Double
        var dataset: String
        var split: String
        var dataset_file: String
        var dataset_sha256: String
        var limit: Int?
        var available_items: Int
        var max_tokens: Int
        var decoding: String
        /// For a compressed checkpoint: its method, budget, calibration set and seed.
        var compression: CompressionRecord.Provenance?
        /// Progressive decoding: the schedule that set the active ranks (nil: stored ranks throughout).
        var rank_schedule: RankScheduleOptions.Record?
        var blas: String
        var lowrank_version: String
    }

    struct Report: Encodable {
        var rouge1: Double
        var rouge2: Double
        var rougeL: Double
        var items: [Item]
        /// The chat-rendered prompt, `{document}` standing for each item's text.
        var prompt: String
        var scoring: String
        var generated_tokens: Int
        /// FLRC's compression rate: the mean fraction of the dense projection parameters not used per
        /// processed row (prompt and decode rows), and over the decode rows alone.
        var compression_rate: Double
        /// nil when no decode row ran (every reply ended at its first token).
        var decode_compression_rate: Double?
        var seconds: Double
        var recipe: Recipe
    }

    func run() throws {
        let clock = ContinuousClock()
        let started = clock.now
        var loaded = try loadModel(model, engine: engine)
        let provenance = try CompressionRecord.Provenance.read(loaded)
        let data = SummarizationDataset(argument: dataset)
        let directory = dataDirectory ?? defaultDataDirectory()
        let all: [SummarizationItem]
        do { all = try data.load(dataDirectory: directory) } catch { throw CLIError(error.description) }
        guard let template = loaded.chatTemplate else {
            throw CLIError("summarize prompts through the chat template, and \(loaded.source.path) has none")
        }
        let items = Array(all.prefix(limit ?? all.count))
        let schedule = try scheduleOptions.load(loaded, engine: engine)
        let session = GenerationSession(model: try engine.makeModel(&loaded), loaded: loaded)
        let progress = ProgressReporter("summarize \(data.name)", unit: "items")
        let results: [SummaryResult]
        do {
            results = try SummarizationEvaluation.run(items, dataset: data, session: session, maxTokens: maxTokens,
                                                     schedule: schedule?.0, progress: progress.update)
        } catch { throw CLIError(error.description) }
        let means = SummarizationEvaluation.meanF1(results)
        let file = data.path(dataDirectory: directory)
        let recipe = Recipe(model: loaded.source.path, model_sha256: try SHA256.hexDigest(ofFile: modelDigestPath(loaded)),
                            weights: engine.weights.rawValue, kv_cache: engine.keyValuePrecision.rawValue, active_rank: engine.activeRank, dataset: data.name, split: data.split,
                            dataset_file: file, dataset_sha256: try SHA256.hexDigest(ofFile: file), limit: limit, available_items: all.count,
                            max_tokens: maxTokens, decoding: "greedy", compression: provenance, rank_schedule: schedule?.1, blas: BLASRuntime.summary,
                            lowrank_version: lowrankVersion)
        let report = Report(
            rouge1: means.rouge1, rouge2: means.rouge2, rougeL: means.rougeL,
            items: results.map {
                Item(id: $0.id, prediction: $0.prediction, references: $0.references, rouge1: $0.scores.rouge1.f1, rouge2: $0.scores.rouge2.f1,
                     rougeL: $0.scores.rougeL.f1, prompt_tokens: $0.generation.promptTokens, generated_tokens: $0.generation.tokens.count,
                     stop_reason: $0.generation.stopReason.rawValue)
            },
            prompt: template.render([.init(.user, data.userMessage("{document}"))]),
            scoring: "rouge-score RougeScorer(['rouge1','rouge2','rougeL'], use_stemmer=True) F1, mean over items; several references: best F1 per metric (score_multi)",
            generated_tokens: results.reduce(0) { $0 + $1.generation.tokens.count },
            compression_rate: SummarizationEvaluation.compressionRate(results, denseProjectionParameters: session.denseProjectionParameters),
            decode_compression_rate: Optional(SummarizationEvaluation.compressionRate(results, denseProjectionParameters: session.denseProjectionParameters,
                                                                                      decodeOnly: true)).flatMap { $0.isNaN ? nil : $0 },
            seconds: (clock.now - started).seconds, recipe: recipe)
        if json {
            try Terminal.printJSON(report)
            return
        }
        print(String(format: "%@ (%@), %d items: ROUGE-1 %.4f  ROUGE-2 %.4f  ROUGE-L %.4f  (F1; %d tokens generated, %.0f s)",
                     data.name, data.split, results.count, means.rouge1, means.rouge2, means.rougeL, report.generated_tokens, report.seconds))
        print(String(format: "compression rate %.1f%% of projection parameters unused per row (prompt and generated rows)%@", 100 * report.compression_rate,
                     report.decode_compression_rate.map { String(format: "; %.1f%% over decode rows", 100 * $0) } ?? "; no decode rows"))
    }
}
