import ArgumentParser
import Evaluation
import Foundation
import Llama
import ModelFormats

struct Schedule: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Choose a progressive rank schedule for a compressed checkpoint on DialogSum train (FLRC's scheduler calibration).",
        discussion: """
            Runs the checkpoint at its stored ranks on the first --samples dialogues of DialogSum *train* (never test) to \
            measure prompt and reply lengths, builds candidate schedules of --form that all reach the --target compression \
            rate on those lengths (FLRC's rate: the mean fraction of the dense projection parameters not used per processed \
            row, prompt rows included; the prefill runs at the schedule's first fraction), summarises the same dialogues \
            with each, and keeps the one with the best mean ROUGE-L F1. Candidates: two-step schedules switching at tokens \
            8, 16, 32 or 64 with the larger part at 0.02, 0.05, 0.1 or 0.2 above the static fraction (the one fraction \
            of the stored rank that reaches the target; at most 1) (decreasing: first; increasing: second), the other \
            part solved for the target; static: one fraction. The file records every \
            candidate with the rate it actually reached and its score. Use it with --rank-schedule on generate, summarize, bench.
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var engine: EngineOptions

    @Option(help: "Average compression rate to reach (fraction of the dense projection parameters not used per row), in (0, 1).")
    var target: Double

    @Option(help: "decreasing (FLRC's progressive decoding), static or increasing (its baselines).")
    var form: ScheduleForm = .decreasing

    @Option(help: "Calibration dialogues (the first N of DialogSum train).")
    var samples: Int = 32

    @Option(help: "Maximum new tokens per summary.")
    var maxTokens: Int = 128

    @Option(name: [.short, .customLong("output")], help: "Schedule file to write (atomically).")
    var output: String

    @Option(help: "Folder holding dialogsum/ (default: $LOWRANK_DATA, ./data, or the repository's data/).")
    var dataDirectory: String?

    func validate() throws {
        guard target > 0 && target < 1 else { throw ValidationError("--target must be in (0, 1): the average fraction of projection parameters not used per row") }
        guard samples >= 1 && samples <= 500 else { throw ValidationError("--samples must be between 1 and 500 (the DialogSum train dialogues available)") }
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be at least 1") }
        if engine.activeRank < 1 { throw ValidationError("--active-rank cannot be combined with schedule: the schedule sets the active rank") }
    }

    func run() throws {
        let clock = ContinuousClock()
        let started = clock.now
        var loaded = try loadModel(model, engine: engine)
        if loaded.weights.isDense {
            throw CLIError("\(loaded.source.path) has no low-rank factors: a schedule changes the active rank of a checkpoint made by lowrank compress")
        }
        if loaded.weights.hasSkippedFactors {
            throw CLIError("\(loaded.source.path) has block-skipped factors (skip, skipcat), whose leading ranks are not a truncation of the "
                + "factorisation: a schedule cannot lower them; use a svd-llm, cat or basis-sharing checkpoint")
        }
        let data = SummarizationDataset.dialogsumTrain
        let directory = dataDirectory ?? defaultDataDirectory()
        let items: [SummarizationItem]
        do { items = Array(try data.load(dataDirectory: directory).prefix(samples)) } catch { throw CLIError(error.description) }
        let session = GenerationSession(model: try engine.makeModel(&loaded), loaded: loaded)
        let dense = session.denseProjectionParameters
        let calibration = ScheduleCalibration()
        let maximumCandidates = form == .static ? 1 : calibration.switchTokens.count * calibration.anchorSteps.count
        let progress = ProgressReporter("schedule (\(form.rawValue), target \(target))", unit: "summaries")
        var total = items.count * (1 + maximumCandidates)  // until the candidates are known
        var done = 0
        func run(_ schedule: StepRankSchedule?) throws -> [SummaryResult] {
            let base = done
            defer { done = base + items.count }
            do {
                return try SummarizationEvaluation.run(items, dataset: data, session: session, maxTokens: maxTokens, schedule: schedule) { finished, _ in
                    progress.update(base + finished, total)
                }
            } catch { throw CLIError(error.description) }
        }
        let stored = try run(nil)
        let storedRate = SummarizationEvaluation.compressionRate(stored, denseProjectionParameters: dense)
        var curve = ScheduleCalibration.ParameterCurve(model: session.model)
        let lengths = stored.map { ScheduleCalibration.Lengths(prompt: $0.generation.promptTokens, generated: $0.generation.tokens.count) }
        let schedules = calibration.candidates(form, target: target, lengths: lengths, curve: &curve, denseParameters: dense)
        guard !schedules.isEmpty else {
            let promptRows = lengths.reduce(0) { $0 + $1.prompt }, decodeRows = lengths.reduce(0) { $0 + max(0, $1.generated - 1) }
            if target < storedRate {
                throw CLIError(String(format: "no %@ candidate reaches --target %.3f: at its stored ranks the checkpoint already removes %.1f%% per row, and a schedule can only lower ranks (a target above %.1f%%, or a checkpoint that stores more rank)",
                                      form.rawValue, target, 100 * storedRate, 100 * storedRate))
            }
            throw CLIError(String(format: "no %@ candidate reaches --target %.3f on these samples: at its stored ranks the checkpoint removes %.1f%% per row, and %d prompt rows against %d decode rows leave the decode rows too little weight to pay for a prefill above the static fraction (a target nearer %.1f%%, more --samples or --max-tokens for more decode rows, or --form static)",
                                  form.rawValue, target, 100 * storedRate, promptRows, decodeRows, 100 * storedRate))
        }
        total = items.count * (1 + schedules.count)
        var candidates: [ScheduleCalibrationRecord.Candidate] = []
        for schedule in schedules {
            let results = try run(schedule)
            candidates.append(.init(steps: schedule.steps, direction: schedule.direction,
                                    rate: SummarizationEvaluation.compressionRate(results, denseProjectionParameters: dense),
                                    score: SummarizationEvaluation.meanF1(results).rougeL))
        }
        let chosen = candidates.indices.max { candidates[$0].score < candidates[$1].score || (candidates[$0].score == candidates[$1].score && $0 > $1) }!
        let file = data.path(dataDirectory: directory)
        let record = ScheduleCalibrationRecord(
            target_rate: target, dataset: "dialogsum-train (first \(items.count))", dataset_sha256: try SHA256.hexDigest(ofFile: file), samples: items.count,
            max_tokens: maxTokens, metric: "mean ROUGE-L F1 (rouge-score, use_stemmer=True), greedy decoding, the summarize prompt",
            model: loaded.source.path, model_sha256: try SHA256.hexDigest(ofFile: modelDigestPath(loaded)), candidates: candidates, chosen: chosen,
            seconds: (clock.now - started).seconds)
        let best = try StepRankSchedule(steps: candidates[chosen].steps)
        do { try RankScheduleFile(schedule: best, calibration: record).write(to: output) } catch { throw CLIError("cannot write \(output): \(error)") }
        print(String(format: "stored ranks: rate %.1f%%, ROUGE-L %.4f", 100 * storedRate, SummarizationEvaluation.meanF1(stored).rougeL))
        var rows: [(String, String)] = []
        for (i, c) in candidates.enumerated() {
            rows.append((c.steps.map { String(format: "t≥%d: %.3f", $0.fromToken, $0.fraction) }.joined(separator: ", "),
                         String(format: "rate %.1f%%  ROUGE-L %.4f%@", 100 * c.rate, c.score, i == chosen ? "  ← chosen" : "")))
        }
        print(Terminal.table(rows))
        print("wrote \(output)")
    }
}

extension ScheduleForm: ExpressibleByArgument {}
