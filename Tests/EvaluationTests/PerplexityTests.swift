import Foundation
import Testing
import TestSupport
import Evaluation
import ModelFormats

/// A model whose next-token probability is fixed: p(correct next token) = `probability` everywhere.
final class FixedProbabilityModel: LanguageModel {
    let probability: Double
    var calls: [[Int]] = []
    init(probability: Double) { self.probability = probability }
    var vocabularySize: Int { 100 }
    var contextLength: Int { 64 }
    func nextTokenNLL(_ tokens: [Int]) -> (nll: [Double], nonFinitePositions: Int) {
        calls.append(tokens)
        return ([Double](repeating: -log(probability), count: tokens.count - 1), 0)
    }
}

@Suite("Perplexity protocol")
struct PerplexityTests {
    @Test func knownProbabilityGivesKnownPerplexity() throws {
        let model = FixedProbabilityModel(probability: 0.25)
        let result = try PerplexityEvaluation(windowLength: 8).run(model, tokens: Array(0..<30))
        #expect(abs(result.perplexity - 4) < 1e-12)
        #expect(abs(result.meanNLL - log(4)) < 1e-12)
    }

    @Test func windowsAreConsecutiveNonOverlappingAndTheRemainderIsDropped() throws {
        let model = FixedProbabilityModel(probability: 0.5)
        let result = try PerplexityEvaluation(windowLength: 8).run(model, tokens: Array(0..<30))
        #expect(model.calls == [Array(0..<8), Array(8..<16), Array(16..<24)])
        #expect(result.windows == 3)
        #expect(result.availableWindows == 3)
        #expect(result.tokens == 3 * 7)  // the first token of each window is context only
    }

    @Test func limitScoresOnlyTheFirstWindows() throws {
        let model = FixedProbabilityModel(probability: 0.5)
        let result = try PerplexityEvaluation(windowLength: 8, limit: 2).run(model, tokens: Array(0..<30))
        #expect(model.calls.count == 2)
        #expect(result.windows == 2)
        #expect(result.availableWindows == 3)
    }

    @Test func tooShortACorpusOrTooLongAWindowIsAnError() {
        #expect(throws: EvaluationError.self) { try PerplexityEvaluation(windowLength: 8).run(FixedProbabilityModel(probability: 0.5), tokens: [1, 2]) }
        #expect(throws: EvaluationError.self) { try PerplexityEvaluation(windowLength: 128).run(FixedProbabilityModel(probability: 0.5), tokens: Array(0..<300)) }
    }

    @Test func progressReportsEveryWindow() throws {
        var seen: [Int] = []
        _ = try PerplexityEvaluation(windowLength: 4).run(FixedProbabilityModel(probability: 0.5), tokens: Array(0..<12)) { done, total in
            #expect(total == 3)
            seen.append(done)
        }
        #expect(seen == [1, 2, 3])
    }
}

@Suite("Corpora are joined as the reference protocols join them")
struct CorpusTests {
    @Test func wikitextBlankLinesBecomeEmptyRowsJoinedWithBlankLines() throws {
        let dir = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir.file("wikitext2"), withIntermediateDirectories: true)
        try Data(" \n = Title = \n \n Text here . \n".utf8).write(to: URL(fileURLWithPath: dir.file("wikitext2/test.txt")))
        // Rows: "", " = Title = \n", "", " Text here . \n".
        #expect(try Corpus.wikitext2.text(dataDirectory: dir.path) == "\n\n = Title = \n\n\n\n\n Text here . \n")
    }

    @Test func jsonLinesJoinTheirTextFields() throws {
        let dir = TemporaryDirectory()
        try Data("{\"text\": \"a\\nb\", \"url\": \"x\"}\n{\"text\": \"c\"}\n".utf8).write(to: URL(fileURLWithPath: dir.file("d.jsonl")))
        #expect(try Corpus.file(dir.file("d.jsonl")).text(dataDirectory: "") == "a\nb\n\nc")
    }

    @Test func malformedJSONLineIsReportedWithItsNumber() throws {
        let dir = TemporaryDirectory()
        try Data("{\"text\": \"a\"}\n{oops\n".utf8).write(to: URL(fileURLWithPath: dir.file("d.jsonl")))
        #expect(throws: CorpusError.malformedLine(path: dir.file("d.jsonl"), line: 2)) {
            try Corpus.file(dir.file("d.jsonl")).text(dataDirectory: "")
        }
    }

    @Test func missingCorpusSaysWhereItLooked() {
        #expect(throws: CorpusError.missing(path: "/nowhere/c4/train_sample.jsonl", corpus: "c4")) {
            try Corpus.c4.text(dataDirectory: "/nowhere")
        }
    }

    @Test func repositoryDataMatchesTheSharedCopies() throws {
        // data/ must be byte-identical to ../shared/data (sha256 from its README).
        #expect(try SHA256.hexDigest(ofFile: Fixtures.repositoryRoot + "/data/wikitext2/test.txt")
            == "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08")
    }

    @Test func sha256MatchesKnownVectors() {
        #expect(SHA256.hexDigest([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hexDigest(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(SHA256.hexDigest(long) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // A million "a" crosses many blocks and the partial-block buffering.
        var hasher = SHA256()
        for _ in 0..<1000 { hasher.update([UInt8](repeating: UInt8(ascii: "a"), count: 1000)) }
        #expect(hasher.finalize() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
