import Foundation
import Testing
import Evaluation
import Llama
import TestSupport

/// A language model given by a rule: −log p(next | prefix) = nll(prefix, next).
struct RuleModel: LanguageModel {
    var nll: ([Int], Int) -> Double
    var vocabularySize: Int { 0x110000 }
    var contextLength: Int { 4096 }
    func nextTokenNLL(_ tokens: [Int]) -> (nll: [Double], nonFinitePositions: Int) {
        ((1..<tokens.count).map { nll(Array(tokens[..<$0]), tokens[$0]) }, 0)
    }
}

/// One token per Unicode scalar, so expected log-likelihoods can be derived by hand.
let characterTokens = MultipleChoiceEvaluation(encode: { $0.unicodeScalars.map { Int($0.value) } })
func token(_ c: Character) -> Int { Int(c.unicodeScalars.first!.value) }

@Suite("Zero-shot multiple choice as lm-evaluation-harness scores it")
struct ZeroShotTests {
    func item(_ task: ZeroShotTask, _ json: String) throws -> MultipleChoiceItem {
        try task.item(fromJSONLine: json, lineNumber: 1, path: "test.jsonl")
    }

    @Test func arcAndPiqaAndMathqaUseTheQuestionAnswerPrompt() throws {
        let arc = try item(.arcChallenge, #"{"id":"x","question":"Which is wet?","choices":{"text":["fire","water","sand"],"label":["1","2","3"]},"answerKey":"2"}"#)
        #expect(arc == MultipleChoiceItem(contexts: ["Question: Which is wet?\nAnswer:"], continuations: [" fire", " water", " sand"],
                                          choices: ["fire", "water", "sand"], gold: 1))
        let piqa = try item(.piqa, #"{"goal":"Open a jar","sol1":"Twist the lid.","sol2":"Eat the lid.","label":0}"#)
        #expect(piqa.contexts == ["Question: Open a jar\nAnswer:"] && piqa.continuations == [" Twist the lid.", " Eat the lid."] && piqa.gold == 0)
        let mathqa = try item(.mathqa, #"{"Problem":"2 + 2 ?","options":"a ) 38 , b ) 27.675 , c ) 30 , d ) data inadequate , e ) none of these","correct":"d"}"#)
        #expect(mathqa.choices == ["38", "27.675", "30", "data inadequate", "none of these"])
        #expect(mathqa.contexts == ["Question: 2 + 2 ?\nAnswer:"] && mathqa.gold == 3)
    }

    @Test func openbookqaUsesTheBareStemAndStripsTheAnswerKey() throws {
        let obqa = try item(.openbookqa, #"{"id":"7","question_stem":"The sun is","choices":{"text":["hot","cold"],"label":["A","B"]},"answerKey":" A"}"#)
        #expect(obqa.contexts == ["The sun is"] && obqa.gold == 0)
    }

    @Test func hellaswagPreprocessesLikeTheHarness() throws {
        let h = try item(.hellaswag, #"{"ind":1,"activity_label":"Roof [title] work","ctx_a":"A man sits.","ctx_b":"the MAN [step]","endings":[" climbs [header] down. ","falls  off."],"label":"1"}"#)
        // ctx_b.capitalize() lower-cases the rest; " [title]" → ". "; brackets removed; "  " → " ".
        #expect(h.contexts == ["Roof. work: A man sits. The man "])  // the strip comes before the removal, as in Python
        #expect(h.choices == ["climbs down.", "falls off."])
        #expect(h.gold == 1)
        #expect(HarnessText.hellaswagPreprocess("[header] How to x [unclosed") == " How to x [unclosed")
        #expect(HarnessText.pythonCapitalize("éCOLE du") == "École du")
    }

    @Test func winograndeScoresOneContinuationUnderTwoContexts() throws {
        let w = try item(.winogrande, #"{"sentence":"Alice hid _ .","option1":"Bo","option2":"Cy","answer":"2"}"#)
        #expect(w.contexts == ["Alice hid Bo", "Alice hid Cy"] && w.continuations == [" ."] && w.gold == 1)
        // −log p: 0.5 for the token after "y", 2 after "o", 1 otherwise. ll(Bo) = −(2 + 1), ll(Cy) = −(0.5 + 1).
        let model = RuleModel { prefix, _ in prefix.last == token("y") ? 0.5 : prefix.last == token("o") ? 2 : 1 }
        let s = characterTokens.score(w, model: model)
        #expect(s.logLikelihoods == [-3, -1.5])
        #expect(s.predicted == 1)
        let result = characterTokens.run(.winogrande, items: [w], model: model)
        #expect(result.acc.value == 1 && result.accNorm == nil)
    }

    @Test func accAndAccNormPickDifferentChoicesWhenLengthsDiffer() throws {
        // Every token costs 1 nat except "z" (5): " z" = −6 over 1 character, " abcdefgh" = −9 over 8.
        let model = RuleModel { _, next in next == token("z") ? 5 : 1 }
        let item = MultipleChoiceItem(contexts: ["Q:"], continuations: [" z", " abcdefgh"], choices: ["z", "abcdefgh"], gold: 1)
        let s = characterTokens.score(item, model: model)
        #expect(s.logLikelihoods == [-6, -9])
        #expect(s.predicted == 0 && s.predictedNormalised == 1)
        let other = MultipleChoiceItem(contexts: ["Q:"], continuations: [" z", " ab"], choices: ["z", "ab"], gold: 0)
        let result = characterTokens.run(.arcEasy, items: [item, other], model: model)
        // item: acc wrong, acc_norm right; other: −6 vs −3 → acc picks 1 (wrong), acc_norm −6 vs −1.5 → 1 (wrong).
        #expect(result.acc.value == 0 && result.accNorm?.value == 0.5)
        #expect(abs(result.accNorm!.standardError - 0.5) < 1e-12)  // sample s.d. 0.7071 / √2
    }

    @Test func trailingSpacesOfTheContextMoveToTheContinuation() {
        let pair = characterTokens.encodePair(context: "Answer:  ", continuation: "x")
        #expect(pair.context == "Answer:".unicodeScalars.map { Int($0.value) })
        #expect(pair.continuation == [token(" "), token(" "), token("x")])
    }

    @Test func batchedBranchesScoreLikeOneFullPassPerChoice() throws {
        let tiny = TinyLlama(seed: 12)
        var configuration = tiny.configuration
        configuration.contextLength = 1024  // room for a 300-token branch without cutting the context
        let model = LlamaLanguageModel(LlamaModel(configuration: configuration, weights: tiny.weights))
        struct Plain: LanguageModel {
            let inner: LlamaLanguageModel
            var vocabularySize: Int { inner.vocabularySize }
            var contextLength: Int { inner.contextLength }
            func nextTokenNLL(_ tokens: [Int]) -> (nll: [Double], nonFinitePositions: Int) { inner.nextTokenNLL(tokens) }
        }
        let context = [5, 17, 200, 3, 64, 9, 31]
        // One continuation longer than an attention block (256 rows), so a branch spans two blocks.
        let continuations = [[8], [40, 41, 42, 43], [250, 2], [7, 7, 7, 7, 7, 7, 7, 7, 7], (0..<300).map { ($0 * 13 + 1) % 265 }]
        let fork = model.continuationLogLikelihoods(context: context, continuations: continuations)
        let plain = Plain(inner: model).continuationLogLikelihoods(context: context, continuations: continuations)
        for (a, b) in zip(fork, plain) { #expect(abs(a - b) < 1e-4 * max(1, abs(b)), "\(a) vs \(b)") }
    }

    /// With a half cache too: a packed pass computes every segment's keys in the Float32 window and
    /// attends to them rounded, as the plain pass does.
    @Test(arguments: [1, 12, 40, 1024], KVCachePrecision.allCases)
    func packedRequestsScoreLikeOneFullPassPerContinuationHoweverTheyArePacked(rowsPerPass: Int, cache precision: KVCachePrecision) throws {
        let tiny = TinyLlama(seed: 21)
        var model = LlamaModel(configuration: tiny.configuration, weights: tiny.weights)
        model.keyValuePrecision = precision
        let packed = LlamaLanguageModel(model, rowsPerPass: rowsPerPass)
        let plain = LlamaLanguageModel(model)
        // Contexts of different lengths (positions restart at 0 for each), single-token and empty
        // continuations (no branch rows), and a request bigger than a small pass (it runs alone).
        let requests = [
            ContinuationRequest(context: [5, 17, 200], continuations: [[8], [40, 41, 42], []]),
            ContinuationRequest(context: [9], continuations: [[1, 2]]),
            ContinuationRequest(context: (0..<20).map { ($0 * 7 + 3) % 256 }, continuations: [[11, 12, 13, 14, 15], [16]]),
            ContinuationRequest(context: [100, 101, 102, 103], continuations: [[104, 105], [106, 107], [108, 109, 110]]),
        ]
        let got = packed.continuationLogLikelihoods(requests)
        #expect(got.map(\.count) == [3, 1, 2, 3])
        #expect(got[0][2] == 0)  // an empty continuation has log-likelihood 0
        for (request, answers) in zip(requests, got) {
            for (continuation, value) in zip(request.continuations, answers) where !continuation.isEmpty {
                let nll = plain.nextTokenNLL(request.context + continuation).nll
                let expected = -nll.suffix(continuation.count).reduce(0, +)
                #expect(abs(value - expected) < 1e-4 * max(1, abs(expected)), "\(value) vs \(expected)")
            }
        }
    }

    @Test func aBatchOfItemsScoresAsEachItemAlone() throws {
        // The log-likelihood depends on the whole prefix, so any mix-up between requests shows.
        let model = RuleModel { prefix, next in Double((prefix.reduce(0, +) + 3 * next) % 17) / 4 }
        let items = [
            MultipleChoiceItem(contexts: ["Q: a?"], continuations: [" x", " yy", " zzz"], choices: ["x", "yy", "zzz"], gold: 2),
            try item(.winogrande, #"{"sentence":"Ann met _ today.","option1":"Bob","option2":"Cyd","answer":"1"}"#),
            MultipleChoiceItem(contexts: ["Q: b?"], continuations: [" p", " q"], choices: ["p", "q"], gold: 0),
        ]
        let batch = characterTokens.score(items, model: model)
        #expect(batch == items.map { characterTokens.score($0, model: model) })
        #expect(Set(batch.flatMap(\.logLikelihoods)).count > 3)  // the rule gives varied values
    }

    @Test("every task file in data/ parses with the harness's choice counts", arguments: ZeroShotTask.allCases)
    func taskFilesParse(task: ZeroShotTask) throws {
        let items = try task.load(dataDirectory: Fixtures.repositoryRoot + "/data")
        let expected: [ZeroShotTask: Int] = [.arcEasy: 2376, .arcChallenge: 1172, .piqa: 1838, .hellaswag: 10042, .winogrande: 1267,
                                             .openbookqa: 500, .mathqa: 2985]
        #expect(items.count == expected[task])
        let choiceCounts = Set(items.map(\.choiceCount))
        switch task {
        case .arcEasy, .arcChallenge: #expect(choiceCounts.isSubset(of: [3, 4, 5]))
        case .hellaswag, .openbookqa: #expect(choiceCounts == [4])
        case .mathqa: #expect(choiceCounts == [5])
        case .piqa, .winogrande: #expect(choiceCounts == [2])
        }
        #expect(items.allSatisfy { $0.gold >= 0 && $0.gold < $0.choiceCount && !$0.contexts.contains("") })
    }

    @Test func aDamagedCompressedTaskFileIsNamed() throws {
        let dir = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir.file("zeroshot"), withIntermediateDirectories: true)
        try Data("not gzip".utf8).write(to: URL(fileURLWithPath: dir.file("zeroshot/piqa.jsonl.gz")))
        do {
            _ = try ZeroShotTask.piqa.load(dataDirectory: dir.path)
            Issue.record("a damaged file was accepted")
        } catch {
            #expect(error.description.contains("piqa.jsonl.gz") && error.description.contains("gzip -dc failed"), "\(error)")
        }
        #expect(throws: ZeroShotError.missingFile(path: dir.file("zeroshot/arc_easy.jsonl"))) { try ZeroShotTask.arcEasy.load(dataDirectory: dir.path) }
    }

    @Test func aMalformedLineIsNamedWithItsFileAndLine() {
        #expect(throws: ZeroShotError.malformedLine(path: "test.jsonl", line: 1, reason: "missing string 'goal'")) {
            try self.item(.piqa, #"{"sol1":"a","sol2":"b","label":0}"#)
        }
        #expect(throws: ZeroShotError.malformedLine(path: "test.jsonl", line: 1, reason: "the answer is not one of the 2 choices")) {
            try self.item(.winogrande, #"{"sentence":"a _ b","option1":"x","option2":"y","answer":"3"}"#)
        }
    }
}
