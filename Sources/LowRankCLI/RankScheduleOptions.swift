import ArgumentParser
import Llama
import ModelFormats

/// `--rank-schedule FILE`: progressive low-rank decoding (generate, summarize, bench).
struct RankScheduleOptions: ParsableArguments {
    @Option(help: ArgumentHelp("A rank schedule (JSON, written by lowrank schedule or by hand): each low-rank module runs at a fraction of its stored rank that changes with the generated token.",
                               valueName: "file"))
    var rankSchedule: String?

    /// What a report records about the schedule that ran.
    struct Record: Encodable {
        var file: String
        var sha256: String
        var direction: String
        var steps: [StepRankSchedule.Step]
    }

    /// The schedule, checked against the model and the engine options; nil without the option.
    func load(_ loaded: LoadedModel, engine: EngineOptions) throws -> (StepRankSchedule, Record)? {
        guard let path = rankSchedule else { return nil }
        if engine.activeRank < 1 {
            throw CLIError("--rank-schedule and --active-rank both set the active rank: use one (a constant schedule is {\"from_token\": 0, \"fraction\": F})")
        }
        if loaded.weights.isDense {
            throw CLIError("--rank-schedule \(path): \(loaded.source.path) has no low-rank factors (a dense model always runs at full rank); pass a checkpoint made by lowrank compress")
        }
        if loaded.weights.hasSkippedFactors {
            throw CLIError("--rank-schedule \(path): \(loaded.source.path) has block-skipped factors (skip, skipcat), whose leading ranks are "
                + "not a truncation of the factorisation; use a svd-llm, cat or basis-sharing checkpoint")
        }
        let file: RankScheduleFile
        do { file = try RankScheduleFile.read(path) } catch { throw CLIError(error.description) }
        let schedule = try file.schedule()
        return (schedule, Record(file: path, sha256: try SHA256.hexDigest(ofFile: path), direction: schedule.direction.rawValue, steps: schedule.steps))
    }
}
