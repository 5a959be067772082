import Foundation
import Testing
import Evaluation
import Llama
import TestSupport

/// The scheduler calibration's arithmetic: predicted rates by hand, and candidates that reach the
/// target in the form asked for.
@Suite("Schedule calibration")
struct ScheduleCalibrationTests {
    static let model = TinyLlama(seed: 12).lowRankModel(rank: 10)
    static let dense = ParameterCount(configuration: model.configuration).projections.values.reduce(0, +)
    static let lengths = [ScheduleCalibration.Lengths(prompt: 20, generated: 30), .init(prompt: 12, generated: 1), .init(prompt: 8, generated: 41)]

    /// Rows: 40 prompt rows at fraction(0); decode rows t = 1…29 and 1…40 at fraction(t).
    @Test func thePredictedRateCountsPromptRowsAtTheFirstFractionAndDecodeRowsAtTheirOwn() throws {
        var curve = ScheduleCalibration.ParameterCurve(model: Self.model)
        let schedule = try StepRankSchedule(steps: [.init(fromToken: 0, fraction: 1), .init(fromToken: 10, fraction: 0.5)])
        let full = Double(curve.parameters(at: 1)), half = Double(curve.parameters(at: 0.5))
        // Decode rows at 1.0: t = 1…9 twice (18); at 0.5: t = 10…29 (20) and 10…40 (31).
        let expected = 1 - (40 * full + 18 * full + 51 * half) / (Double(40 + 29 + 40) * Double(Self.dense))
        let predicted = ScheduleCalibration.predictedRate(schedule, lengths: Self.lengths, curve: &curve, denseParameters: Self.dense)
        #expect(abs(predicted - expected) < 1e-12)
        #expect(half < full)
    }

    /// Every candidate of each form reaches the target with the least compression that does: one
    /// more rank (of the stored 10) in its solved part would fall short. Each has its form's
    /// direction; decreasing candidates start at an anchor above the static fraction and end below
    /// it, increasing ones the other way round.
    @Test func everyCandidateReachesTheTargetInItsForm() throws {
        var curve = ScheduleCalibration.ParameterCurve(model: Self.model)
        let calibration = ScheduleCalibration()
        let stored = ScheduleCalibration.predictedRate(try .constant(1), lengths: Self.lengths, curve: &curve, denseParameters: Self.dense)
        let target = stored + 0.05
        for form in ScheduleForm.allCases {
            let candidates = calibration.candidates(form, target: target, lengths: Self.lengths, curve: &curve, denseParameters: Self.dense)
            #expect(!candidates.isEmpty, "\(form)")
            for c in candidates {
                let rate = ScheduleCalibration.predictedRate(c, lengths: Self.lengths, curve: &curve, denseParameters: Self.dense)
                #expect(rate >= target, "\(form) \(c.steps): rate \(rate) for target \(target)")
                // The solved part: the only step (static), the second (decreasing) or the first (increasing).
                let solved = form == .increasing ? 0 : c.steps.count - 1
                var steps = c.steps
                steps[solved].fraction = min(1, (steps[solved].fraction * 10).rounded(.up) / 10 + 0.1)
                let more = try StepRankSchedule(steps: steps)
                let anchored = form != .static && steps[solved].fraction > c.steps[1 - solved].fraction
                if !anchored {
                    #expect(ScheduleCalibration.predictedRate(more, lengths: Self.lengths, curve: &curve, denseParameters: Self.dense) < target,
                            "\(form) \(c.steps): one more rank still reaches the target")
                }
                #expect(c.direction == (form == .static ? .static : form == .decreasing ? .decreasing : .increasing))
            }
        }
        let decreasing = calibration.candidates(.decreasing, target: target, lengths: Self.lengths, curve: &curve, denseParameters: Self.dense)
        let increasing = calibration.candidates(.increasing, target: target, lengths: Self.lengths, curve: &curve, denseParameters: Self.dense)
        let staticFraction = try #require(calibration.candidates(.static, target: target, lengths: Self.lengths, curve: &curve, denseParameters: Self.dense).first)
            .fraction(forToken: 0)
        let anchors = calibration.anchorFractions(above: staticFraction)
        // (Not strictly below: where no reply reaches the switch token, the first part is the static one.)
        #expect(decreasing.allSatisfy { anchors.contains($0.steps[0].fraction) && $0.steps[1].fraction < staticFraction })
        #expect(increasing.allSatisfy { anchors.contains($0.steps[1].fraction) && $0.steps[0].fraction <= staticFraction })
        #expect(increasing.contains { $0.steps[0].fraction < staticFraction })
        // A target below what the stored ranks already remove has no candidate.
        #expect(calibration.candidates(.static, target: stored - 0.01, lengths: Self.lengths, curve: &curve, denseParameters: Self.dense).isEmpty)
    }

    /// The high parts sit at fixed steps above the static fraction, capped at the stored rank.
    @Test func anchorsAreStepsAboveTheStaticFractionCappedAtTheStoredRank() {
        let calibration = ScheduleCalibration()
        #expect(calibration.anchorFractions(above: 0.5) == [0.52, 0.55, 0.6, 0.7])
        #expect(calibration.anchorFractions(above: 0.9) == [0.92, 0.95, 1.0])
        #expect(calibration.anchorFractions(above: 1.0).isEmpty)
    }
}
