import Foundation
import Testing
import Evaluation
import TestSupport

@Suite("ROUGE as Google's rouge-score computes it")
struct RougeTests {
    let scorer = RougeScorer()

    /// "the cat sat on the mat" against "the cat is on the mat": 5 of 6 unigrams match (both "the"),
    /// 3 of 5 bigrams ("the cat", "on the", "the mat"), and the LCS "the cat on the mat" has 5.
    @Test func unigramBigramAndLCSScoresMatchHandCounts() {
        let s = scorer.score(reference: "The cat sat on the mat.", prediction: "the cat is on the mat")
        #expect(Self.close(s.rouge1, 5.0 / 6, 5.0 / 6, 5.0 / 6))
        #expect(Self.close(s.rouge2, 3.0 / 5, 3.0 / 5, 3.0 / 5))
        #expect(Self.close(s.rougeL, 5.0 / 6, 5.0 / 6, 5.0 / 6))
        // Unequal lengths: reference "a b c d", prediction "a c": P = 1, R = 1/2, F = 2/3 (ROUGE-1 and L).
        let short = RougeScorer(stemming: false).score(reference: "a b c d", prediction: "a c")
        #expect(Self.close(short.rouge1, 1, 0.5, 2.0 / 3))
        #expect(short.rougeL == short.rouge1)
        #expect(short.rouge2.f1 == 0)
    }

    /// Tokens: lowercase, anything but a–z and 0–9 separates ("don't" → "don", "t"; "x-ray" → "x",
    /// "ray"; "café" → "caf"), words longer than 3 characters are stemmed ("running" → "run",
    /// "cats" → "cat"), shorter ones are not ("was" stays, though Porter would give "wa").
    @Test func tokenizationSplitsOnNonAlphanumericsAndStemsLongWords() {
        #expect(scorer.tokenize("Don't X-ray the café, 42 cats were running!") == ["don", "t", "x", "ray", "the", "caf", "42", "cat", "were", "run"])
        #expect(scorer.tokenize("it was") == ["it", "was"])
        #expect(RougeScorer(stemming: false).tokenize("Cats RUNNING") == ["cats", "running"])
        #expect(scorer.tokenize(" \n\t ") == [])
    }

    @Test func anEmptyPredictionScoresZero() {
        let s = scorer.score(reference: "something was said", prediction: "   ")
        #expect(s.rouge1.f1 == 0 && s.rouge2.f1 == 0 && s.rougeL.f1 == 0)
    }

    /// Several references: each metric keeps the reference with its best F1 (so ROUGE-1 and ROUGE-2
    /// may come from different references).
    @Test func severalReferencesKeepTheBestF1PerMetric() {
        let prediction = "alpha beta gamma delta"
        let a = "alpha gamma beta delta"  // all 4 unigrams, none of the 3 bigrams
        let b = "alpha beta zeta"  // 2 unigrams, the bigram "alpha beta"
        let both = RougeScorer(stemming: false).score(references: [a, b], prediction: prediction)
        let sa = RougeScorer(stemming: false).score(reference: a, prediction: prediction)
        let sb = RougeScorer(stemming: false).score(reference: b, prediction: prediction)
        #expect(sa.rouge1.f1 > sb.rouge1.f1 && sb.rouge2.f1 > sa.rouge2.f1)
        #expect(both.rouge1 == sa.rouge1 && both.rouge2 == sb.rouge2)
    }

    /// The examples of Porter's paper (1980), step by step, with NLTK's departures where it has them.
    @Test func porterStepsReproduceThePapersExamples() {
        func w(_ s: String) -> [UInt8] { Array(s.utf8) }
        func s(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }
        #expect(["caresses", "ponies", "caress", "cats"].map { s(PorterStemmer.step1a(w($0))) } == ["caress", "poni", "caress", "cat"])
        #expect(s(PorterStemmer.step1a(w("ties"))) == "tie", "NLTK: a four-letter -ies word keeps -ie")
        #expect(["feed", "agreed", "plastered", "bled", "motoring", "sing", "conflated", "troubled", "sized", "hopping", "tanned",
                 "falling", "hissing", "fizzed", "failing", "filing"].map { s(PorterStemmer.step1b(w($0))) }
                == ["feed", "agree", "plaster", "bled", "motor", "sing", "conflate", "trouble", "size", "hop", "tan",
                    "fall", "hiss", "fizz", "fail", "file"])
        // NLTK's step 1c: y → i after a consonant that is not the first letter ("spy" → "spi", where the
        // paper's (*v*) condition keeps "spy"); "sky" stays "sky" only through NLTK's irregular forms.
        #expect(["happy", "enjoy", "spy"].map { s(PorterStemmer.step1c(w($0))) } == ["happi", "enjoy", "spi"])
        #expect(["relational", "conditional", "rational", "valenci", "digitizer", "vietnamization", "predication", "operator",
                 "feudalism", "decisiveness", "hopefulness", "callousness", "formaliti", "sensitiviti", "sensibiliti"]
            .map { s(PorterStemmer.step2(w($0))) }
                == ["relate", "condition", "rational", "valence", "digitize", "vietnamize", "predicate", "operate",
                    "feudal", "decisive", "hopeful", "callous", "formal", "sensitive", "sensible"])
        #expect(["triplicate", "formative", "formalize", "electriciti", "electrical", "hopeful", "goodness"].map { s(PorterStemmer.step3(w($0))) }
                == ["triplic", "form", "formal", "electric", "electric", "hope", "good"])
        #expect(["revival", "allowance", "inference", "airliner", "gyroscopic", "adjustable", "defensible", "irritant", "replacement",
                 "adjustment", "dependent", "adoption", "homologou", "communism", "activate", "angulariti", "homologous", "effective",
                 "bowdlerize"].map { s(PorterStemmer.step4(w($0))) }
                == ["reviv", "allow", "infer", "airlin", "gyroscop", "adjust", "defens", "irrit", "replac", "adjust", "depend", "adopt",
                    "homolog", "commun", "activ", "angular", "homolog", "effect", "bowdler"])
        #expect(["probate", "rate", "cease"].map { s(PorterStemmer.step5a(w($0))) } == ["probat", "rate", "ceas"])
        #expect(["controll", "roll"].map { s(PorterStemmer.step5b(w($0))) } == ["control", "roll"])
        #expect(PorterStemmer.measure(w("tr")) == 0 && PorterStemmer.measure(w("trouble")) == 1 && PorterStemmer.measure(w("private")) == 2)
        #expect(PorterStemmer.stem("dying") == "die" && PorterStemmer.stem("skies") == "sky" && PorterStemmer.stem("sky") == "sky",
                "NLTK's irregular forms")
    }

    /// End to end against `rouge-score` 0.1.2 (with NLTK's Porter stemmer) on real summaries: the
    /// second DialogSum reference of each of the first 160 test dialogues scored against the first,
    /// the third against the first two (several references), and 60 CNN/DailyMail lead-3 summaries
    /// against the highlights, plus edge strings. Every precision, recall and F1 must agree to 1e-12,
    /// and every stem of every word seen to the letter. Needs `python3 -m pip install rouge-score`
    /// (scripts/test.sh installs it).
    @Test func scoresAndStemsEqualRougeScoreOnRealSummaries() throws {
        let dialogsum = try SummarizationDataset.dialogsum.load(dataDirectory: Fixtures.repositoryRoot + "/data")
        let cnndm = try SummarizationDataset.cnndm.load(dataDirectory: Fixtures.repositoryRoot + "/data")
        var pairs: [(String, String)] = dialogsum.prefix(160).map { ($0.references[0], $0.references[1]) }
        pairs += cnndm.prefix(60).map { ($0.references[0], Self.leadSentences($0.document, 3)) }
        pairs += [("", "nothing"), ("Ünïcödé façade naïve — 3.14 is π!", "unicode facade naive 3 14 is pi"), ("yyyy yyyyy sky skies", "yyy sky"),
                  ("The flies died; the spies spied on generalizations.", "fly die spy spy generalization"),
                  ("hopefully, sensibility and electrical controlling", "hopeful sensible electric controlled")]
        let multi: [([String], String)] = dialogsum.prefix(160).map { (Array($0.references.prefix(2)), $0.references[2]) }
        let words = Array(Set((pairs.flatMap { [$0.0, $0.1] } + multi.map(\.1)).flatMap { RougeScorer(stemming: false).tokenize($0) }
            .filter { $0.count > 3 })).sorted()
        #expect(pairs.count >= 200 && words.count > 1000)

        let input: [String: Any] = ["pairs": pairs.map { [$0.0, $0.1] }, "multi": multi.map { ["references": $0.0, "prediction": $0.1] }, "words": words]
        let dir = TemporaryDirectory()
        try JSONSerialization.data(withJSONObject: input).write(to: URL(fileURLWithPath: dir.file("in.json")))
        let reference = try Self.runRougeScore(input: dir.file("in.json"))

        let stems = reference["stems"] as! [String]
        let stemMismatches = zip(words, stems).filter { PorterStemmer.stem($0.0) != $0.1 }
        #expect(stemMismatches.isEmpty, "stems differing from NLTK: \(stemMismatches.prefix(20).map { "\($0.0): ours \(PorterStemmer.stem($0.0)), NLTK \($0.1)" })")

        func check(_ ours: RougeScores, _ theirs: [String: [Double]], _ label: String) {
            for (name, score) in [("rouge1", ours.rouge1), ("rouge2", ours.rouge2), ("rougeL", ours.rougeL)] {
                let t = theirs[name]!
                #expect(abs(score.precision - t[0]) < 1e-12 && abs(score.recall - t[1]) < 1e-12 && abs(score.f1 - t[2]) < 1e-12,
                        "\(label) \(name): ours \(score), rouge-score \(t)")
            }
        }
        let single = reference["pairs"] as! [[String: [Double]]]
        for (i, (ref, pred)) in pairs.enumerated() { check(scorer.score(reference: ref, prediction: pred), single[i], "pair \(i)") }
        let several = reference["multi"] as! [[String: [Double]]]
        for (i, (refs, pred)) in multi.enumerated() { check(scorer.score(references: refs, prediction: pred), several[i], "multi \(i)") }
    }

    static func close(_ s: RougeScore, _ precision: Double, _ recall: Double, _ f1: Double) -> Bool {
        abs(s.precision - precision) < 1e-15 && abs(s.recall - recall) < 1e-15 && abs(s.f1 - f1) < 1e-15
    }

    /// The first `n` sentences (split after ". ", "! " or "? "), the classic lead baseline.
    static func leadSentences(_ text: String, _ n: Int) -> String {
        var sentences: [String] = []
        var current = ""
        var previous: Character = " "
        for c in text {
            if c == " " && ".!?".contains(previous) {
                sentences.append(current)
                current = ""
                if sentences.count == n { break }
            } else {
                current.append(c)
            }
            previous = c
        }
        if sentences.count < n && !current.isEmpty { sentences.append(current) }
        return sentences.joined(separator: " ")
    }

    static func runRougeScore(input: String) throws -> [String: Any] {
        let script = """
            import json, sys
            from rouge_score import rouge_scorer
            from nltk.stem import porter
            data = json.load(open(sys.argv[1]))
            scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
            def out(scores):
                return {k: [v.precision, v.recall, v.fmeasure] for k, v in scores.items()}
            stemmer = porter.PorterStemmer()
            print(json.dumps({
                "pairs": [out(scorer.score(r, p)) for r, p in data["pairs"]],
                "multi": [out(scorer.score_multi(m["references"], m["prediction"])) for m in data["multi"]],
                "stems": [stemmer.stem(w) for w in data["words"]],
            }))
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, input]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw RougeOracleError(message: "python3 with rouge-score failed (install it: python3 -m pip install rouge-score==0.1.2): \(stderr)")
        }
        return try JSONSerialization.jsonObject(with: stdout) as! [String: Any]
    }
}

struct RougeOracleError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}


/// A summarisation file the tool cannot use is refused with the file, the line and what is wrong.
@Suite("Summarisation data errors")
struct SummarizationDataErrorTests {
    @Test(arguments: [
        ("{\"dialogue\": \"a\", \"summary\": \"b\"}\nnot json\n", 2, "not a JSON object"),
        ("{\"summary\": \"b\"}\n", 1, "no \"dialogue\", \"article\" or \"document\" string"),
        ("\n{\"article\": \"a\", \"references\": []}\n", 2, "no references (\"references\", \"summary\" or \"highlights\")"),
        ("\n\n", 0, "no items"),
    ] as [(String, Int, String)])
    func aMalformedLineIsNamedWithItsNumber(contents: String, line: Int, reason: String) throws {
        let dir = TemporaryDirectory()
        let path = dir.file("items.jsonl")
        try contents.write(toFile: path, atomically: false, encoding: .utf8)
        #expect(throws: SummarizationError.malformed(path: path, line: line, reason: reason)) {
            try SummarizationDataset.file(path).load(dataDirectory: dir.path)
        }
        let message = SummarizationError.malformed(path: path, line: line, reason: reason).description
        #expect(message.hasPrefix(path) && message.contains(reason) && (line == 0 || message.contains("line \(line)")))
    }

    @Test func aMissingFileNamesThePathAndTheOption() {
        #expect(throws: SummarizationError.missing(path: "/nonexistent/x.jsonl", dataset: "/nonexistent/x.jsonl")) {
            try SummarizationDataset.file("/nonexistent/x.jsonl").load(dataDirectory: "/tmp")
        }
        #expect(SummarizationError.missing(path: "/p", dataset: "d").description.contains("--data-directory"))
    }
}
