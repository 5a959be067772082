import Foundation
import Testing
import TestSupport
import LinearAlgebra
import Llama

/// Progressive low-rank decoding: the active rank follows a schedule per generated token.
@Suite("Rank schedules")
struct RankScheduleTests {
    static let tiny = TinyLlama(seed: 12)

    /// Every projection low-rank at rank 10 but layer 1's down projection (dense).
    static func compressed() -> LlamaModel { tiny.lowRankModel(rank: 10) }

    static let prompt = [3, 14, 15, 9, 26, 5]

    /// A constant schedule is the model at that active rank, token for token.
    @Test func aConstantScheduleEqualsTheModelAtThatActiveRank() throws {
        let model = Self.compressed()
        var half = model
        half.setActiveRank(fraction: 0.5)
        let scheduled = Generator(model: model, capacity: 40).generate(prompt: Self.prompt, maxTokens: 24, sampling: .greedy, stopTokens: [],
                                                                       schedule: try StepRankSchedule.constant(0.5))
        let fixed = Generator(model: half, capacity: 40).generate(prompt: Self.prompt, maxTokens: 24, sampling: .greedy, stopTokens: [])
        #expect(scheduled.tokens == fixed.tokens)
        let full = Generator(model: model, capacity: 40).generate(prompt: Self.prompt, maxTokens: 24, sampling: .greedy, stopTokens: [])
        #expect(full.tokens != fixed.tokens, "half the rank must change the output of this model")
    }

    /// A step schedule: the prefill and token 0 at the first fraction, token t at fraction(t); the
    /// cache keeps the rows computed at earlier ranks. Reference: the same loop by hand with
    /// `forward`, `logits` and `setActiveRank`.
    @Test func aStepScheduleSwitchesTheRankBeforeTheTokenItNames() throws {
        let model = Self.compressed()
        let schedule = try StepRankSchedule(steps: [.init(fromToken: 0, fraction: 1), .init(fromToken: 5, fraction: 0.6), .init(fromToken: 11, fraction: 0.2)])
        let result = Generator(model: model, capacity: 40).generate(prompt: Self.prompt, maxTokens: 16, sampling: .greedy, stopTokens: [],
                                                                    schedule: schedule)
        var running = model
        let cache = KVCache(configuration: model.configuration, capacity: 40)
        let workspace = Workspace(model: model, rows: Self.prompt.count, contextCapacity: 40)
        var logits = [Float](repeating: 0, count: model.configuration.vocabularySize)
        var tokens: [Int] = []
        running.setActiveRank(fraction: schedule.fraction(forToken: 0))
        running.forward(Self.prompt[...], cache: cache, workspace: workspace)
        var row = Self.prompt.count - 1
        while tokens.count < 16 {
            logits.withUnsafeMutableBufferPointer { running.logits(workspace: workspace, rows: row..<(row + 1), into: $0.baseAddress!) }
            tokens.append(logits.withUnsafeBufferPointer { Sampler.argmax($0) })
            if tokens.count == 16 { break }
            running.setActiveRank(fraction: schedule.fraction(forToken: tokens.count))
            running.forward([tokens.last!], cache: cache, workspace: workspace)
            row = 0
        }
        #expect(result.tokens == tokens)
        #expect(schedule.direction == .decreasing && schedule.fraction(forToken: 4) == 1 && schedule.fraction(forToken: 5) == 0.6)
    }

    /// Parameters used, by hand: a low-rank projection at fraction f uses ⌈f·10⌉·(m + n), the dense
    /// one m·n. Prompt rows (6) run at 1.0, decode rows producing tokens 1…4 at 1.0, 5…7 at 0.5.
    @Test func theParametersUsedAndTheCompressionRateCountEveryRow() throws {
        let model = Self.compressed()
        let c = model.configuration
        func used(_ f: Double) -> Int {
            var total = 0
            for layer in 0..<c.layerCount {
                for kind in ProjectionKind.allCases {
                    let s = c.shape(of: kind)
                    total += layer == 1 && kind == .down ? s.outputs * s.inputs : Int((f * 10).rounded(.up)) * (s.outputs + s.inputs)
                }
            }
            return total
        }
        let schedule = try StepRankSchedule(steps: [.init(fromToken: 0, fraction: 1), .init(fromToken: 5, fraction: 0.5)])
        let g = Generator(model: model, capacity: 40).generate(prompt: Self.prompt, maxTokens: 8, sampling: .greedy, stopTokens: [], schedule: schedule)
        #expect(g.tokens.count == 8 && g.processedRows == 6 + 7 && g.decodeRows == 7)
        #expect(g.projectionParametersUsed == 6 * used(1) + 4 * used(1) + 3 * used(0.5))
        #expect(g.decodeProjectionParametersUsed == 4 * used(1) + 3 * used(0.5))
        let dense = ParameterCount(configuration: c).projections.values.reduce(0, +)
        #expect(abs(g.compressionRate(denseProjectionParameters: dense) - (1 - Double(10 * used(1) + 3 * used(0.5)) / Double(13 * dense))) < 1e-12)
        #expect(model.activeProjectionParameters == used(1))
    }

    @Test func schedulesAreValidatedAndFilesRoundTripNamingTheBadField() throws {
        #expect(throws: RankScheduleError.invalid(field: "steps[0].from_token", reason: "is 2; the first step starts at token 0")) {
            try StepRankSchedule(steps: [.init(fromToken: 2, fraction: 1)])
        }
        #expect(throws: RankScheduleError.self) { try StepRankSchedule(steps: [.init(fromToken: 0, fraction: 1), .init(fromToken: 0, fraction: 0.5)]) }
        #expect(throws: RankScheduleError.self) { try StepRankSchedule(steps: [.init(fromToken: 0, fraction: 0)]) }
        #expect(try StepRankSchedule(steps: [.init(fromToken: 0, fraction: 0.4), .init(fromToken: 9, fraction: 0.8)]).direction == .increasing)
        #expect(try StepRankSchedule.constant(0.7).direction == .static)
        let schedule = try StepRankSchedule(steps: [.init(fromToken: 0, fraction: 1), .init(fromToken: 16, fraction: 0.6)])
        let dir = TemporaryDirectory()
        try RankScheduleFile(schedule: schedule).write(to: dir.file("s.json"))
        #expect(try RankScheduleFile.read(dir.file("s.json")).schedule() == schedule)
        let text = try String(contentsOfFile: dir.file("s.json"), encoding: .utf8)
        #expect(text.contains("\"from_token\" : 16") && text.contains("\"direction\" : \"decreasing\""))
        try Data(#"{"format": "lowrank-rank-schedule", "version": 1, "steps": [{"from_token": 0, "fraction": 1}, {"from_token": 4}]}"#.utf8)
            .write(to: URL(fileURLWithPath: dir.file("bad.json")))
        #expect(throws: RankScheduleError.unreadable(path: dir.file("bad.json"), reason: "steps[1] needs an integer \"from_token\" and a number \"fraction\"")) {
            try RankScheduleFile.read(dir.file("bad.json"))
        }
        // Found by fuzzing: a "calibration" that is not an object made JSONSerialization trap.
        try Data(#"{"format": "lowrank-rank-schedule", "version": 1, "steps": [{"from_token": 0, "fraction": 0.5}], "calibration": "d"}"#.utf8)
            .write(to: URL(fileURLWithPath: dir.file("string.json")))
        #expect(throws: RankScheduleError.unreadable(path: dir.file("string.json"), reason: "\"calibration\" must be an object")) {
            try RankScheduleFile.read(dir.file("string.json"))
        }
        try Data(#"{"format": "something", "steps": []}"#.utf8).write(to: URL(fileURLWithPath: dir.file("other.json")))
        #expect(throws: RankScheduleError.self) { try RankScheduleFile.read(dir.file("other.json")) }
    }
}
