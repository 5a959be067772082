import Foundation
import Testing
import Evaluation
import TestSupport

/// `Tests/Fixtures/harness_requests.json` was written by lm-evaluation-harness itself
/// (`benchmarks/harness/dump_requests.py`: the harness's task YAMLs on our data files, a recording
/// model that answers by a fixed character rule). It holds, for the first 50 items of each task,
/// the (context, continuation) strings the harness builds, the log-likelihoods of the rule, and the
/// harness's per-item acc and acc_norm from its own `process_results`. Set
/// `LOWRANK_HARNESS_REQUESTS` to a fuller dump (same script, a larger N) to check more items.
@Suite("Prompts, gold answers and metrics equal lm-evaluation-harness's own")
struct HarnessRequestTests {
    struct Dump: Decodable {
        var harness_version: String
        var limit: Int
        var tasks: [String: [Item]]
    }

    struct Item: Decodable {
        var requests: [[String]]
        var loglikelihoods: [Double]
        var acc: Double
        var acc_norm: Double?
    }

    /// −log p(next | prefix) = ((Σ prefix code points + 3·next) mod 17) / 4, one token per Unicode
    /// scalar: the rule the dump script answered the harness with (quarters, so sums are exact).
    /// A running sum, so a full dump (20,180 items) is checked in seconds.
    struct Rule: LanguageModel {
        var vocabularySize: Int { 0x110000 }
        var contextLength: Int { 1 << 20 }
        func nextTokenNLL(_ tokens: [Int]) -> (nll: [Double], nonFinitePositions: Int) {
            var prefix = 0
            var nll: [Double] = []
            for (t, token) in tokens.enumerated() {
                if t > 0 { nll.append(Double((prefix + 3 * token) % 17) / 4) }
                prefix += token
            }
            return (nll, 0)
        }
    }
    static let rule = Rule()

    static func dump() throws -> Dump {
        let path = ProcessInfo.processInfo.environment["LOWRANK_HARNESS_REQUESTS"]
            ?? Fixtures.repositoryRoot + "/Tests/Fixtures/harness_requests.json"
        return try JSONDecoder().decode(Dump.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    @Test(arguments: ZeroShotTask.allCases)
    func ourRequestsLogLikelihoodsAndAccuraciesEqualTheHarnesses(task: ZeroShotTask) throws {
        let dump = try Self.dump()
        let theirs = try #require(dump.tasks[task.rawValue], "the dump has no \(task.rawValue)")
        let ours = try task.load(dataDirectory: Fixtures.repositoryRoot + "/data")
        #expect(theirs.count == min(dump.limit, ours.count))
        var mismatches = 0
        for (n, (item, reference)) in zip(ours, theirs).enumerated() {
            let requests = (0..<item.choiceCount).map { [item.context($0), item.continuation($0)] }
            let score = characterTokens.score(item, model: Self.rule)
            let acc: Double = score.predicted == score.gold ? 1 : 0
            let accNorm: Double = score.predictedNormalised == score.gold ? 1 : 0
            let same = requests == reference.requests && score.logLikelihoods == reference.loglikelihoods && acc == reference.acc
                && (reference.acc_norm == nil || accNorm == reference.acc_norm)
            if !same {
                mismatches += 1
                if mismatches <= 3 {
                    Issue.record("\(task.rawValue) item \(n): ours \(requests) \(score.logLikelihoods) acc \(acc) norm \(accNorm); harness \(reference.requests) \(reference.loglikelihoods) acc \(reference.acc) norm \(String(describing: reference.acc_norm))")
                }
            }
        }
        #expect(mismatches == 0, "\(mismatches) of \(theirs.count) \(task.rawValue) items differ from lm-evaluation-harness \(dump.harness_version)")
        #expect((theirs.first?.acc_norm != nil) == task.hasNormalisedAccuracy)  // WinoGrande: acc only, in both
    }
}
