import ArgumentParser
import Evaluation
import Foundation
import LinearAlgebra
import Llama
import LowRank
import ModelFormats

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Zero-shot multiple-choice accuracy on the lm-evaluation-harness tasks (acc and acc_norm).",
        discussion: """
            Tasks: \(ZeroShotTask.allCases.map(\.rawValue).joined(separator: ", ")) (data/zeroshot/<task>.jsonl).
            Prompts, continuations, tokenisation (_encode_pair) and metrics follow lm-evaluation-harness: acc is the \
            argmax of the summed continuation log-probability, acc_norm of that sum divided by the choice's character \
            count; WinoGrande scores one continuation under two contexts and reports acc only. Each item's shared \
            context runs once and its choices branch from it; several items are packed into one forward pass of up to \
            --rows-per-pass tokens (the results do not depend on it). The average is given both as the mean acc and \
            with the metric compression papers usually quote per task (acc_norm for ARC-c, HellaSwag, OpenBookQA).
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var engine: EngineOptions

    @Option(help: "Comma-separated tasks (default: all seven).", transform: parseTasks)
    var tasks: [ZeroShotTask] = ZeroShotTask.allCases

    @Option(help: "Score only the first N items of each task.")
    var limit: Int?

    @Option(help: "Folder holding zeroshot/ (default: $LOWRANK_DATA, ./data, or the repository's data/).")
    var dataDirectory: String?

    @Option(help: "Tokens packed into one forward pass (more: fewer weight reads, more memory).")
    var rowsPerPass = 1024

    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if rowsPerPass < 1 { throw ValidationError("--rows-per-pass must be at least 1") }
    }

    struct TaskReport: Encodable {
        var items: Int
        var available_items: Int
        var acc: Double
        var acc_stderr: Double
        var acc_norm: Double?
        var acc_norm_stderr: Double?
        var paper_metric: String
        var non_finite_items: Int
        var seconds: Double
        var data_file: String
        var data_sha256: String
    }

    struct Report: Encodable {
        var tasks: [String: TaskReport]
        var average_acc: Double
        /// acc for ARC-e, PIQA, WinoGrande, MathQA; acc_norm for ARC-c, HellaSwag, OpenBookQA.
        var average_paper_metric: Double
        var `protocol`: String
        var limit: Int?
        var model: String
        var model_sha256: String
        /// For a compressed checkpoint: its method, budget, calibration set and seed.
        var compression: CompressionRecord.Provenance?
        var weights: String
        /// How the KV cache stored keys and values (`--kv-cache`).
        var kv_cache: String
        /// Fraction of each low-rank factor's stored rank that ran (`--active-rank`).
        var active_rank: Double
        var blas: String
        var seconds: Double
        var lowrank_version: String
    }

    func run() throws {
        let clock = ContinuousClock()
        let started = clock.now
        var loaded = try loadModel(model, engine: engine)
        let provenance = try CompressionRecord.Provenance.read(loaded)
        let runtime = LlamaLanguageModel(try engine.makeModel(&loaded), rowsPerPass: rowsPerPass)
        let directory = dataDirectory ?? defaultDataDirectory()
        let tokenizer = loaded.tokenizer
        let evaluation = MultipleChoiceEvaluation(encode: { tokenizer.encode($0) })
        var reports: [String: TaskReport] = [:]
        var rows: [(String, String)] = []
        for task in tasks {
            let all: [MultipleChoiceItem]
            do { all = try task.load(dataDirectory: directory) } catch { throw CLIError(error.description) }
            let items = Array(all.prefix(limit ?? all.count))
            let progress = ProgressReporter(task.rawValue, unit: "items")
            // Items per call: enough to fill several passes, few enough for a steady progress line.
            let result = evaluation.run(task, items: items, model: runtime, batch: 64, progress: progress.update)
            if result.nonFiniteItems > 0 {
                Terminal.error("warning: \(task.rawValue): \(result.nonFiniteItems) item(s) had non-finite log-likelihoods (kept; they count as scored)")
            }
            let file = task.filePath(dataDirectory: directory)
            reports[task.rawValue] = TaskReport(
                items: result.items, available_items: all.count, acc: result.acc.value, acc_stderr: result.acc.standardError,
                acc_norm: result.accNorm?.value, acc_norm_stderr: result.accNorm?.standardError,
                paper_metric: task.paperMetricIsNormalised ? "acc_norm" : "acc", non_finite_items: result.nonFiniteItems,
                seconds: result.seconds, data_file: file, data_sha256: try SHA256.hexDigest(ofFile: file))
            rows.append((task.rawValue, String(format: "acc %.4f", result.acc.value)
                + (result.accNorm.map { String(format: "  acc_norm %.4f", $0.value) } ?? "")
                + String(format: "  (%d items, %.0f s)", result.items, result.seconds)))
        }
        let accs = tasks.map { reports[$0.rawValue]!.acc }
        let paper = tasks.map { t in t.paperMetricIsNormalised ? reports[t.rawValue]!.acc_norm! : reports[t.rawValue]!.acc }
        let report = Report(
            tasks: reports, average_acc: accs.reduce(0, +) / Double(accs.count), average_paper_metric: paper.reduce(0, +) / Double(paper.count),
            protocol: "lm-evaluation-harness zero-shot multiple_choice: context/continuation via _encode_pair, no BOS added by this tokenizer; acc = argmax Σ log p, acc_norm = argmax Σ log p / len(choice chars)",
            limit: limit, model: loaded.source.path, model_sha256: try SHA256.hexDigest(ofFile: modelDigestPath(loaded)),
            compression: provenance,
            weights: engine.weights.rawValue, kv_cache: engine.keyValuePrecision.rawValue, active_rank: engine.activeRank, blas: BLASRuntime.summary, seconds: (clock.now - started).seconds, lowrank_version: lowrankVersion)
        if json {
            try Terminal.printJSON(report)
            return
        }
        print(Terminal.table(rows))
        print(String(format: "average acc %.4f; average with the papers' metric per task %.4f; %.0f s", report.average_acc,
                     report.average_paper_metric, report.seconds))
    }
}

func parseTasks(_ argument: String) throws -> [ZeroShotTask] {
    try argument.split(separator: ",").map { name in
        let trimmed = name.trimmingCharacters(in: .whitespaces)
        guard let task = ZeroShotTask(rawValue: trimmed) else { throw ValidationError(ZeroShotError.unknownTask(trimmed).description) }
        return task
    }
}
