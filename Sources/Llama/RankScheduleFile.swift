import Foundation
import ModelFormats

/// A rank schedule on disk (`--rank-schedule FILE`; written by `lowrank schedule`). This type is
/// its only reader and writer:
///
///     {"format": "lowrank-rank-schedule", "version": 1, "direction": "decreasing",
///      "steps": [{"from_token": 0, "fraction": 1.0}, {"from_token": 24, "fraction": 0.6}],
///      "calibration": {...}}
///
/// `fraction` is of every low-rank module's stored rank, from generated token `from_token` on; the
/// prefill runs at the first step. `calibration` (optional) records how the schedule was chosen.
public struct RankScheduleFile: Codable, Sendable {
    public static let formatName = "lowrank-rank-schedule"

    public var format: String
    public var version: Int
    /// Written for a reader's benefit; recomputed from the steps on reading.
    public var direction: ScheduleDirection
    public var steps: [StepRankSchedule.Step]
    public var calibration: ScheduleCalibrationRecord?

    public init(schedule: StepRankSchedule, calibration: ScheduleCalibrationRecord? = nil) {
        format = Self.formatName
        version = 1
        direction = schedule.direction
        steps = schedule.steps
        self.calibration = calibration
    }

    public func schedule() throws(RankScheduleError) -> StepRankSchedule { try StepRankSchedule(steps: steps) }

    /// Reads and validates `path`; every error names the file and the field.
    public static func read(_ path: String) throws(RankScheduleError) -> RankScheduleFile {
        guard let data = try? FileBytes.read(path) else { throw .unreadable(path: path, reason: "no such file, or not readable") }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw .unreadable(path: path, reason: "not a JSON object")
        }
        guard object["format"] as? String == formatName else {
            throw .unreadable(path: path, reason: "\"format\" must be \"\(formatName)\" (found \(object["format"].map { "\($0)" } ?? "none"))")
        }
        guard object["version"] as? Int == 1 else {
            throw .unreadable(path: path, reason: "\"version\" \(object["version"].map { "\($0)" } ?? "missing") is not supported (this lowrank reads version 1)")
        }
        guard let rawSteps = object["steps"] as? [[String: Any]] else {
            throw .unreadable(path: path, reason: "\"steps\" must be a list of {\"from_token\", \"fraction\"} objects")
        }
        var steps: [StepRankSchedule.Step] = []
        for (i, step) in rawSteps.enumerated() {
            guard let token = step["from_token"] as? Int, let fraction = (step["fraction"] as? NSNumber)?.doubleValue else {
                throw .unreadable(path: path, reason: "steps[\(i)] needs an integer \"from_token\" and a number \"fraction\"")
            }
            steps.append(StepRankSchedule.Step(fromToken: token, fraction: fraction))
        }
        let schedule: StepRankSchedule
        do {
            schedule = try StepRankSchedule(steps: steps)
        } catch .invalid(let field, let reason) {
            throw .unreadable(path: path, reason: "\(field) \(reason)")
        } catch {
            throw error
        }
        var calibration: ScheduleCalibrationRecord?
        if let value = object["calibration"] {
            // JSONSerialization traps on a top-level value that is not a collection (found by fuzzing).
            guard let raw = value as? [String: Any], JSONSerialization.isValidJSONObject(raw) else {
                throw .unreadable(path: path, reason: "\"calibration\" must be an object")
            }
            do {
                calibration = try JSONDecoder().decode(ScheduleCalibrationRecord.self, from: JSONSerialization.data(withJSONObject: raw))
            } catch {
                throw .unreadable(path: path, reason: "\"calibration\" is malformed: \(error)")
            }
        }
        return RankScheduleFile(schedule: schedule, calibration: calibration)
    }

    /// Writes atomically (sorted keys, pretty-printed).
    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try AtomicWrite.write(try encoder.encode(self), to: path)
    }
}

/// How `lowrank schedule` chose a schedule: every candidate (all at the same average rate on the
/// calibration set), its rate and its score, and the recipe.
public struct ScheduleCalibrationRecord: Codable, Sendable, Equatable {
    public struct Candidate: Codable, Sendable, Equatable {
        public var steps: [StepRankSchedule.Step]
        public var direction: ScheduleDirection
        /// FLRC's compression rate on the calibration set: the mean fraction of projection
        /// parameters not used per processed token (prefill and decode rows).
        public var rate: Double
        public var score: Double

        public init(steps: [StepRankSchedule.Step], direction: ScheduleDirection, rate: Double, score: Double) {
            self.steps = steps
            self.direction = direction
            self.rate = rate
            self.score = score
        }
    }

    public var target_rate: Double
    public var dataset: String
    public var dataset_sha256: String
    public var samples: Int
    public var max_tokens: Int
    public var metric: String
    public var model: String
    public var model_sha256: String
    public var candidates: [Candidate]
    public var chosen: Int
    public var seconds: Double

    public init(target_rate: Double, dataset: String, dataset_sha256: String, samples: Int, max_tokens: Int, metric: String,
                model: String, model_sha256: String, candidates: [Candidate], chosen: Int, seconds: Double) {
        self.target_rate = target_rate
        self.dataset = dataset
        self.dataset_sha256 = dataset_sha256
        self.samples = samples
        self.max_tokens = max_tokens
        self.metric = metric
        self.model = model
        self.model_sha256 = model_sha256
        self.candidates = candidates
        self.chosen = chosen
        self.seconds = seconds
    }
}
