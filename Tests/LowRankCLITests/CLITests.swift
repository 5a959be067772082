import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
import TestSupport
import Llama
import LinearAlgebra
import ModelFormats

/// The tiny model and calibration text the compressing CLI tests share: `tiny.gguf` (seed 9) and
/// `calibration.txt` in a directory, and a short compression of one into `ck` there.
enum TinyCompression {
    static let calibrationText = (0..<80).map { "Calibration sentence \($0) says something about the number \($0 * 7)." }.joined(separator: " ")

    static func prepare(_ dir: TemporaryDirectory, model: TinyLlama = TinyLlama(seed: 9)) throws {
        try model.writeGGUF(to: dir.file("tiny.gguf"))
        try calibrationText.write(toFile: dir.file("calibration.txt"), atomically: false, encoding: .utf8)
    }

    /// `lowrank compress tiny.gguf OPTIONS --calibration calibration.txt --samples 4 --length 32 -o ck`.
    static func compress(_ dir: TemporaryDirectory, _ options: [String]) throws -> CLI.Output {
        try CLI.run(["compress", dir.file("tiny.gguf")] + options + ["--calibration", dir.file("calibration.txt"), "--samples", "4", "--length", "32",
                                                                    "-o", dir.file("ck")])
    }
}

/// Runs the built `lowrank` binary as a user would and checks its output.
enum CLI {
    /// The `lowrank` executable in the same build directory as this test bundle.
    static let binary: String = {
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = testBinary.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("lowrank").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return Fixtures.repositoryRoot + "/.build/release/lowrank"
    }()

    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// `environment` values replace inherited ones; an empty value removes the variable.
    /// `executable`: another program (curl, python3) run the same way.
    static func run(_ arguments: [String], environment: [String: String] = [:], executable: String = binary) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }.filter { !$0.value.isEmpty }
        }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Output(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderr, as: UTF8.self))
    }
}

@Suite("lowrank command line", .serialized)
struct CLITests {
    @Test func tokenizeJSONHasTheStableShape() throws {
        let output = try CLI.run(["tokenize", try Fixtures.requireSmolLM2(), "--text", "Hello, world! <|im_end|>", "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])
        #expect(Set(json.keys) == ["ids", "tokens"])
        #expect(json["ids"] as? [Int] == [19556, 28, 905, 17, 216, 2])
        #expect(json["tokens"] as? [String] == ["Hello", ",", "Ġworld", "!", "Ġ", "<|im_end|>"])
    }

    /// A multi-line help string that loses a `\` line continuation keeps the next line's indentation
    /// inside its sentence ("measured on             its own", once in `bench --help`). Every
    /// command's and subcommand's help is read: outside the aligned option and subcommand columns,
    /// no sentence may hold a run of three or more spaces.
    @Test func everyHelpTextReadsWithoutRunsOfSpacesInsideASentence() throws {
        var pending: [[String]] = [[]], checked = 0
        while let path = pending.popLast() {
            let output = try CLI.run(["help"] + path)
            #expect(output.status == 0, "lowrank help \(path): \(output.stderr)")
            let lines = output.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            var inSubcommands = false
            for line in lines {
                if line.hasPrefix("SUBCOMMANDS:") { inSubcommands = true; continue }
                // A subcommand's line: its lowercase name, then the column gap (the closing
                // "  See 'lowrank help …'" line has a single space after its first word).
                if inSubcommands, line.hasPrefix("  "), !line.hasPrefix("   "), path.count < 3,
                   let name = line.dropFirst(2).split(separator: " ").first,
                   line.dropFirst(2 + name.count).hasPrefix("  "), name.allSatisfy({ $0.isLowercase || $0 == "-" }) {
                    pending.append(path + [String(name)])
                }
                // The columns: an option, argument or subcommand name, then its text after a gap.
                let body = String(line.drop(while: { $0 == " " }))
                let isColumn = body.first == "-" || body.first == "<" || (inSubcommands && line.hasPrefix("  ") && !line.hasPrefix("   "))
                let text = isColumn ? body.range(of: "  ").map { String(body[$0.upperBound...].drop(while: { $0 == " " })) } ?? "" : body
                #expect(!text.contains("   "), "lowrank help \(path.joined(separator: " ")): \(line)")
            }
            checked += 1
        }
        #expect(checked >= 16, "the help of every command was read (\(checked))")
    }

    @Test func infoReportsTheSmolLM2Architecture() throws {
        let output = try CLI.run(["info", try Fixtures.requireSmolLM2(), "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])
        let configuration = try #require(json["configuration"] as? [String: Any])
        #expect(configuration["layerCount"] as? Int == 30)
        #expect(configuration["hiddenSize"] as? Int == 576)
        #expect(configuration["attentionHeads"] as? Int == 9)
        #expect(configuration["keyValueHeads"] as? Int == 3)
        #expect(configuration["intermediateSize"] as? Int == 1536)
        #expect(configuration["vocabularySize"] as? Int == 49152)
        #expect(configuration["tiedEmbeddings"] as? Bool == true)
        let parameters = try #require(json["parameters"] as? [String: Any])
        #expect(parameters["total"] as? Int == 134_515_008)
        #expect((json["tensorTypes"] as? [String: Int]) == ["Q4_1": 210, "Q8_0": 1, "F32": 61])
    }

    @Test func infoTableNamesEveryProjection() throws {
        let output = try CLI.run(["info", try Fixtures.requireSmolLM2()])
        #expect(output.status == 0)
        for name in ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "134,515,008", "tied"] {
            #expect(output.stdout.contains(name), "\(name)")
        }
    }

    @Test func badModelFileGivesAnErrorNamingItAndExitCode1() throws {
        let dir = TemporaryDirectory()
        try Data("not a model".utf8).write(to: URL(fileURLWithPath: dir.file("x.gguf")))
        let output = try CLI.run(["info", dir.file("x.gguf")])
        #expect(output.status == 1)
        #expect(output.stderr.contains(dir.file("x.gguf")))
        #expect(output.stderr.contains("not a GGUF file"))
        #expect(output.stdout.isEmpty)
    }

    @Test func synthesizeRefusesFloat32WeightsAndNamesTheChoices() throws {
        let output = try CLI.run(["synthesize", "m.gguf", "--dtype", "f32", "-o", TemporaryDirectory().file("out")])
        #expect(output.status != 0)
        #expect(output.stderr.contains("--dtype must be f16 or bf16"), "\(output.stderr)")
    }

    @Test func unknownPreTokenizerOptionIsRejectedWithTheChoices() throws {
        let output = try CLI.run(["tokenize", "m.gguf", "--text", "x", "--pretokenizer", "bogus"])
        #expect(output.status != 0)
        #expect(output.stderr.contains("gpt2-digits"))
    }

    @Test func anUnsupportedKVCachePrecisionIsRejectedNamingTheOptionAndItsChoices() throws {
        let output = try CLI.run(["bench", "m.gguf", "--kv-cache", "bf16"])
        #expect(output.status != 0)
        #expect(output.stderr.contains("--kv-cache") && output.stderr.contains("f16") && output.stderr.contains("f32"), "\(output.stderr)")
    }

    @Test func logitsJSONHasTheStableShapeAndMatchesTheFixture() throws {
        let fixture = (try Fixtures.sharedJSON("forward_cases.json")["cases"] as! [[String: Any]])[0]
        let ids = (fixture["ids"] as! [Int]).map(String.init).joined(separator: ",")
        let output = try CLI.run(["logits", try Fixtures.requireSmolLM2(), "--ids", ids, "--positions", "0,-1", "--top", "10", "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])
        #expect(Set(json.keys) == ["mean_nll", "positions"])
        #expect(abs((json["mean_nll"] as! Double) - (fixture["mean_nll"] as! Double)) < 1e-4)
        let positions = json["positions"] as! [[String: Any]]
        #expect(positions.map { $0["position"] as! Int } == [0, 6])
        for p in positions {
            #expect(Set(p.keys) == ["position", "top", "logsumexp", "first_logits"])
            #expect((p["first_logits"] as! [Double]).count == 16)
            let top = p["top"] as! [[String: Any]]
            #expect(top.count == 10)
            #expect(Set(top[0].keys) == ["id", "logit"])
        }
        let reference = (fixture["positions"] as! [[String: Any]]).first { $0["position"] as! Int == 6 }!
        #expect((positions[1]["top"] as! [[String: Any]]).map { $0["id"] as! Int } == reference["top10_ids"] as! [Int])
    }

    @Test func perplexityJSONRecordsTheResultAndItsRecipe() throws {
        let output = try CLI.run(["perplexity", try Fixtures.requireSmolLM2(), "--dataset", "wikitext2", "--window", "256", "--limit", "2", "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])
        for key in ["perplexity", "mean_nll", "tokens", "windows", "protocol", "recipe"] { #expect(json[key] != nil, "\(key)") }
        #expect(json["tokens"] as? Int == 2 * 255)
        #expect(json["windows"] as? Int == 2)
        let recipe = json["recipe"] as! [String: Any]
        #expect(recipe["model_sha256"] as? String == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")
        #expect(recipe["dataset_sha256"] as? String == "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08")
        #expect(abs(exp(json["mean_nll"] as! Double) - (json["perplexity"] as! Double)) < 1e-9 * (json["perplexity"] as! Double))
        #expect(output.stderr.contains("ETA"))
    }

    @Test func benchJSONHasTheStableKeys() throws {
        let output = try CLI.run(["bench", try Fixtures.requireSmolLM2(), "--prompt-tokens", "16", "--decode-tokens", "4", "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])
        for key in ["prefill_tokens_per_second", "decode_tokens_per_second", "peak_rss_bytes", "time_to_first_token_seconds"] {
            #expect((json[key] as? Double).map { $0 > 0 } ?? false, "\(key)")
        }
        #expect((json["decode_runs"] as? [Double])?.count == 3)
        #expect((json["memory_read_gigabytes_per_second"] as? Double).map { $0 > 0 } ?? false)
        #expect(json["mapped_weight_bytes"] as? Int == 0, "a Q4_1 GGUF is dequantised, not mapped")
        #expect(json["kv_cache_bytes"] as? Int == 30 * 2 * (16 + 4) * 192 * 4, "30 layers × keys and values × 20 positions × 192 × Float32")
        #expect(json["kv_cache"] as? String == "f32", "Float32 weights keep a Float32 cache")
    }

    /// `--weights f16` on a Hugging Face directory stored in F16 runs the matrices in place from the
    /// memory map, and the report counts their bytes; `--weights f32` maps nothing.
    @Test func benchOnAHalfPrecisionFileReportsTheWeightsUsedInPlace() throws {
        let tiny = TinyLlama(seed: 4, tiedEmbeddings: false)
        let dir = TemporaryDirectory()
        try tiny.writeHuggingFace(to: dir.file("hf"))
        var writer = SafetensorsWriter()
        writer.tensors = tiny.safetensorsTensors(as: .f16)
        try writer.write(to: dir.file("hf/model.safetensors"))
        let c = tiny.configuration
        let matrices = 2 * c.vocabularySize * c.hiddenSize + c.layerCount * (2 * c.queryWidth * c.hiddenSize + 2 * c.keyValueWidth * c.hiddenSize
                                                                             + 3 * c.intermediateSize * c.hiddenSize)
        // The KV cache follows the weights (f16 with half weights) unless --kv-cache says otherwise.
        let cacheValues = c.layerCount * 2 * (8 + 4) * c.keyValueWidth
        for (weights, extra, mapped, cache) in [("f16", [], 2 * matrices, "f16"), ("f32", [], 0, "f32"), ("f16", ["--kv-cache", "f32"], 2 * matrices, "f32"),
                                                ("f32", ["--kv-cache", "f16"], 0, "f16")] {
            let output = try CLI.run(["bench", dir.file("hf"), "--weights", weights, "--prompt-tokens", "8", "--decode-tokens", "4", "--json"] + extra)
            #expect(output.status == 0, "\(output.stderr)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])
            #expect(json["mapped_weight_bytes"] as? Int == mapped, "--weights \(weights)")
            #expect(json["kv_cache"] as? String == cache, "--weights \(weights) \(extra)")
            #expect(json["kv_cache_bytes"] as? Int == cacheValues * (cache == "f16" ? 2 : 4), "--weights \(weights) \(extra)")
        }
    }

    /// `--baseline` decodes a second model in the same process, run for run beside the first, and
    /// reports each pair's speed-up, their median and the weight-byte ratio, from the two models'
    /// own numbers (a separate bench of the baseline reads the same bytes per token and digest).
    @Test func benchWithABaselinePairsEachRunWithOneOfTheBaselinesAndReportsTheirRatios() throws {
        let dir = TemporaryDirectory()
        try TinyCompression.prepare(dir)
        let compress = try TinyCompression.compress(dir, ["--method", "svd", "--remove", "0.3"])
        #expect(compress.status == 0, "\(compress.stderr)")
        func bench(_ arguments: [String]) throws -> [String: Any] {
            let output = try CLI.run(["bench"] + arguments + ["--weights", "f16", "--prompt-tokens", "8", "--decode-tokens", "4", "--runs", "3", "--json"])
            #expect(output.status == 0, "\(output.stderr)")
            return try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])
        }
        let alone = try bench([dir.file("tiny.gguf")]), checkpointAlone = try bench([dir.file("ck")])
        for (arguments, base) in [([dir.file("ck"), "--baseline", dir.file("tiny.gguf")], alone),
                                  ([dir.file("ck"), "--active-rank", "0.5", "--baseline", dir.file("ck")], checkpointAlone)] {
            let json = try bench(arguments)
            let baseline = try #require(json["baseline"] as? [String: Any], "\(arguments)")
            let runs = json["decode_runs"] as! [Double], baseRuns = baseline["decode_runs"] as! [Double]
            let pairs = baseline["decode_speedup_runs"] as! [Double]
            #expect(runs.count == 3 && baseRuns.count == 3 && pairs.count == 3 && (baseline["prefill_runs"] as! [Double]).count == 3)
            for i in 0..<3 { #expect(abs(pairs[i] - runs[i] / baseRuns[i]) <= 1e-12 * pairs[i], "pair \(i) of \(arguments)") }
            #expect(baseline["decode_speedup"] as? Double == pairs.sorted()[1])
            #expect(baseline["decode_tokens_per_second"] as? Double == baseRuns.sorted()[1])
            // The baseline runs at full rank with the same --weights: the bytes and digest of a bench of it alone.
            let baseBytes = baseline["weight_bytes_per_token"] as! Int, bytes = json["weight_bytes_per_token"] as! Int
            #expect(baseBytes == base["weight_bytes_per_token"] as? Int && baseline["model_sha256"] as? String == base["model_sha256"] as? String)
            #expect(baseline["byte_ratio"] as? Double == Double(baseBytes) / Double(bytes))
            #expect(bytes < baseBytes, "the checkpoint, and the checkpoint at half rank, read fewer bytes than their baselines")
        }
        #expect(alone["baseline"] == nil)
        let withSchedule = try CLI.run(["bench", dir.file("ck"), "--baseline", dir.file("tiny.gguf"), "--rank-schedule", dir.file("none.json")])
        #expect(withSchedule.status != 0 && withSchedule.stderr.contains("--baseline"), "\(withSchedule.stderr)")
    }

    /// Both models decode the same token ids, so a baseline with another vocabulary is refused by name.
    @Test func benchRefusesABaselineWithAnotherVocabulary() throws {
        let dir = TemporaryDirectory()
        try TinyLlama(seed: 9).writeGGUF(to: dir.file("tiny.gguf"))
        let output = try CLI.run(["bench", dir.file("tiny.gguf"), "--baseline", try Fixtures.requireSmolLM2(), "--prompt-tokens", "8", "--decode-tokens", "4"])
        #expect(output.status != 0 && output.stderr.contains("--baseline") && output.stderr.contains("49152") && output.stderr.contains("same tokenizer"),
                "\(output.stderr)")
    }

    @Test func generateStreamsTheGreedyContinuation() throws {
        let output = try CLI.run(["generate", try Fixtures.requireSmolLM2(), "--prompt", "The three primary colors are", "--max-tokens", "12"])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout.hasPrefix(" the primary colors of the RGB color model: red, blue"))
        #expect(output.stderr.contains("decode"))
    }

    @Test func generateRejectsImpossibleOptions() throws {
        let model = try Fixtures.requireSmolLM2()
        let tooLong = try CLI.run(["generate", model, "--prompt", "x", "--max-tokens", "9000"])
        #expect(tooLong.status != 0)
        #expect(tooLong.stderr.contains("context length 8192"))
        let badP = try CLI.run(["generate", model, "--prompt", "x", "--top-p", "1.5"])
        #expect(badP.status != 0)
        #expect(badP.stderr.contains("--top-p"))
    }

    @Test func evalPrintsBothMetricsPerTaskAndTheAverages() throws {
        let output = try CLI.run(["eval", try Fixtures.requireSmolLM2(), "--tasks", "arc_easy,winogrande", "--limit", "3", "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])
        let tasks = try #require(json["tasks"] as? [String: [String: Any]])
        #expect(Set(tasks.keys) == ["arc_easy", "winogrande"])
        #expect(tasks["arc_easy"]?["items"] as? Int == 3 && tasks["arc_easy"]?["available_items"] as? Int == 2376)
        #expect(tasks["arc_easy"]?["acc_norm"] is Double)
        #expect(tasks["winogrande"]?["acc_norm"] == nil || tasks["winogrande"]?["acc_norm"] is NSNull)
        let accs = [tasks["arc_easy"]!["acc"] as! Double, tasks["winogrande"]!["acc"] as! Double]
        #expect(abs((json["average_acc"] as! Double) - (accs[0] + accs[1]) / 2) < 1e-12)
        #expect(json["average_paper_metric"] is Double && json["protocol"] is String && json["model_sha256"] is String)
        #expect(json["compression"] == nil)  // the GGUF was not compressed by us
        #expect(output.stderr.contains("ETA"))
        let bad = try CLI.run(["eval", try Fixtures.requireSmolLM2(), "--tasks", "arc_easy,boolq"])
        #expect(bad.status != 0 && bad.stderr.contains("unknown task 'boolq'") && bad.stderr.contains("hellaswag"))
    }

    /// Summarisation JSON: every item with its prediction, references and three F1s in [0, 1], the
    /// means of the items, the prompt and the recipe; each prediction is what `generate --chat`
    /// writes for the same user message (one generation path).
    @Test func summarizeJSONHoldsItemsMeansPromptAndRecipe() throws {
        let model = try Fixtures.requireSmolLM2()
        let fixed = ["LOWRANK_DECODE_GOVERNOR": "off"]  // the same worker count in both processes
        let output = try CLI.run(["summarize", model, "--dataset", "dialogsum", "--limit", "2", "--max-tokens", "24", "--json"], environment: fixed)
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stderr.contains("summarize dialogsum  2/2 items"), "\(output.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])
        let items = try #require(report["items"] as? [[String: Any]])
        #expect(items.count == 2 && items.map { $0["id"] as? String } == ["test_0", "test_1"])
        for key in ["rouge1", "rouge2", "rougeL"] {
            let values = items.map { $0[key] as! Double }
            #expect(values.allSatisfy { (0...1).contains($0) })
            #expect(abs((report[key] as! Double) - values.reduce(0, +) / 2) < 1e-12, "\(key) is the mean of the items")
        }
        #expect(items.allSatisfy { ($0["references"] as? [String])?.count == 3 })
        let prompt = try #require(report["prompt"] as? String)
        #expect(prompt.contains("<|im_start|>user\nSummarize the following dialogue") && prompt.contains("{document}<|im_end|>"))
        let recipe = try #require(report["recipe"] as? [String: Any])
        #expect((recipe["dataset_sha256"] as? String)?.count == 64 && recipe["decoding"] as? String == "greedy" && recipe["max_tokens"] as? Int == 24)
        let firstLine = try String(contentsOfFile: Fixtures.repositoryRoot + "/data/dialogsum/test.jsonl", encoding: .utf8).split(separator: "\n")[0]
        let dialogue = try #require(try JSONSerialization.jsonObject(with: Data(firstLine.utf8)) as? [String: Any])["dialogue"] as! String
        let generated = try CLI.run(["generate", model, "--chat", "--prompt", "Summarize the following dialogue in one or two sentences.\n\n" + dialogue,
                                     "--max-tokens", "24"], environment: fixed)
        #expect(generated.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == items[0]["prediction"] as? String)
        let missing = try CLI.run(["summarize", model, "--dataset", "/tmp/no-such-file.jsonl"])
        #expect(missing.status == 1 && missing.stderr.contains("/tmp/no-such-file.jsonl"), "\(missing.stderr)")
    }

    /// Scheduler calibration end to end on a quick SVD checkpoint: every candidate is recorded with
    /// the rate it reached, the chosen one has the best ROUGE-L, and summarize with the written
    /// schedule on the same calibration dialogues reproduces that candidate's rate and score.
    @Test func scheduleWritesTheBestCandidateAndSummarizeReproducesIt() throws {
        let dir = TemporaryDirectory()
        let model = try Fixtures.requireSmolLM2()
        let compress = try CLI.run(["compress", model, "--method", "svd", "--remove", "0.2", "-o", dir.file("ck")])
        #expect(compress.status == 0, "\(compress.stderr)")
        // Greedy replies compared across processes: the decode governor off, so both use every worker
        // (a different worker count sums partial products in another order).
        let fixed = ["LOWRANK_DECODE_GOVERNOR": "off"]
        let schedule = try CLI.run(["schedule", dir.file("ck"), "--target", "0.24", "--samples", "2", "--max-tokens", "24", "-o", dir.file("s.json")],
                                   environment: fixed)
        #expect(schedule.status == 0, "\(schedule.stderr)")
        let file = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.file("s.json")))) as? [String: Any])
        #expect(file["format"] as? String == "lowrank-rank-schedule" && file["direction"] as? String == "decreasing")
        let calibration = try #require(file["calibration"] as? [String: Any])
        let candidates = try #require(calibration["candidates"] as? [[String: Any]])
        let chosen = try #require(calibration["chosen"] as? Int)
        #expect(!candidates.isEmpty && candidates.allSatisfy { ($0["rate"] as! Double) >= 0.2 })
        #expect(candidates.allSatisfy { ($0["score"] as! Double) <= (candidates[chosen]["score"] as! Double) })
        let summary = try CLI.run(["summarize", dir.file("ck"), "--dataset", "dialogsum-train", "--limit", "2", "--max-tokens", "24",
                                   "--rank-schedule", dir.file("s.json"), "--json"], environment: fixed)
        #expect(summary.status == 0, "\(summary.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(summary.stdout.utf8)) as? [String: Any])
        #expect(abs((report["compression_rate"] as! Double) - (candidates[chosen]["rate"] as! Double)) < 1e-12)
        #expect(abs((report["rougeL"] as! Double) - (candidates[chosen]["score"] as! Double)) < 1e-12)
        #expect(((report["recipe"] as! [String: Any])["rank_schedule"] as? [String: Any])?["direction"] as? String == "decreasing")
        // bench: each step's fraction measured on its own, its weight bytes falling with the fraction.
        let bench = try CLI.run(["bench", dir.file("ck"), "--prompt-tokens", "8", "--decode-tokens", "4", "--runs", "3",
                                 "--rank-schedule", dir.file("s.json"), "--json"])
        #expect(bench.status == 0, "\(bench.stderr)")
        let benchReport = try #require(try JSONSerialization.jsonObject(with: Data(bench.stdout.utf8)) as? [String: Any])
        let steps = try #require(benchReport["rank_schedule_steps"] as? [[String: Any]])
        let fileSteps = file["steps"] as! [[String: Any]]
        #expect(steps.map { $0["fraction"] as! Double } == fileSteps.map { $0["fraction"] as! Double })
        let bytes = steps.map { $0["weight_bytes_per_token"] as! Int }
        #expect(bytes.first! <= benchReport["weight_bytes_per_token"] as! Int && zip(bytes, bytes.dropFirst()).allSatisfy { $0 > $1 })
        #expect(abs((steps.last!["byte_ratio"] as! Double) - Double(bytes.first!) / Double(bytes.last!)) < 1e-12)
        let both = try CLI.run(["generate", dir.file("ck"), "--prompt", "hi", "--rank-schedule", dir.file("s.json"), "--active-rank", "0.5"])
        #expect(both.status != 0 && both.stderr.contains("--rank-schedule and --active-rank"), "\(both.stderr)")
        let unreachable = try CLI.run(["schedule", dir.file("ck"), "--target", "0.9", "--samples", "1", "--max-tokens", "4", "-o", dir.file("x.json")])
        #expect(unreachable.status == 1 && unreachable.stderr.contains("no decreasing candidate reaches --target 0.900"), "\(unreachable.stderr)")
        let below = try CLI.run(["schedule", dir.file("ck"), "--target", "0.05", "--samples", "1", "--max-tokens", "4", "-o", dir.file("x.json")])
        #expect(below.status == 1 && below.stderr.contains("already removes") && below.stderr.contains("a checkpoint that stores more rank"), "\(below.stderr)")
    }

    /// Killing `lowrank compress` (SIGKILL) at any moment leaves the previous checkpoint or the new
    /// one at the destination, whole, never a partial one: killed at 24 points spread over a run
    /// (loading, factorising, writing), each time the destination holds exactly the files of one of
    /// the two complete runs. A run that finds an unfinished one (saved layers) resumes it.
    @Test func aKilledCompressionLeavesThePreviousCheckpointOrTheNewOneWhole() throws {
        let dir = TemporaryDirectory()
        try TinyLlama(seed: 5, hiddenSize: 256, intermediateSize: 768, layerCount: 8).writeGGUF(to: dir.file("small.gguf"))
        func compress(_ remove: String, to name: String) throws -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CLI.binary)
            // A run killed after saving a layer left an unfinished run beside the output: continue it.
            let unfinished = FileManager.default.fileExists(atPath: dir.file(name + ".partial/state.json"))
            process.arguments = ["compress", dir.file("small.gguf"), "--method", "svd", "--remove", remove, "-o", dir.file(name)] + (unfinished ? ["--resume"] : [])
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            return process
        }
        func digests(_ name: String) throws -> [String: String] {
            let files = try FileManager.default.contentsOfDirectory(atPath: dir.file(name)).filter { $0 != "compression.json" }
            return Dictionary(uniqueKeysWithValues: try files.map { ($0, try Self.sha256(dir.file(name + "/" + $0))) })
        }
        let clock = ContinuousClock()
        let started = clock.now
        let new = try compress("0.3", to: "new")
        new.waitUntilExit()
        let duration = clock.now - started
        let old = try compress("0.6", to: "ck")
        old.waitUntilExit()
        #expect(new.terminationStatus == 0 && old.terminationStatus == 0)
        let (oldFiles, newFiles) = (try digests("ck"), try digests("new"))
        #expect(oldFiles != newFiles && newFiles.keys.contains("model.safetensors"))
        var outcomes: [String: Int] = [:]
        for i in 1...24 {
            let run = try compress("0.3", to: "ck")
            Thread.sleep(forTimeInterval: (duration * Double(i) / 20).seconds)  // past the end too: some runs finish
            kill(run.processIdentifier, SIGKILL)
            run.waitUntilExit()
            let now = try digests("ck")
            #expect(now == oldFiles || now == newFiles, "after a kill at \(i)/20 of a run: \(now.keys.sorted())")
            outcomes[now == oldFiles ? "previous" : "new", default: 0] += 1
        }
        // Early kills find the previous checkpoint; once a run completes, the new one stays.
        #expect(outcomes["previous", default: 0] >= 1 && outcomes["new", default: 0] >= 1, "\(outcomes)")
    }

    static func sha256(_ path: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        process.arguments = [path]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return String(text.prefix(64))
    }

    /// Every committed fuzz corpus and regression input goes through its parser (the plain build of
    /// `lowrank-fuzz`): a parser that crashes on one of them fails here, without sanitizers.
    @Test func everyFuzzCorpusInputIsParsedOrRejectedWithoutACrash() throws {
        let fuzz = URL(fileURLWithPath: CLI.binary).deletingLastPathComponent().appendingPathComponent("lowrank-fuzz").path
        let root = Fixtures.repositoryRoot + "/fuzz"
        let targets = ["gguf", "safetensors", "tokenizer-json", "config-json", "compression-json", "rank-schedule", "zeroshot-line", "summarization-lines"]
        for target in targets {
            var files: [String] = []
            for folder in ["corpus", "regressions"] {
                let dir = root + "/\(folder)/\(target)"
                files += ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted().map { dir + "/" + $0 }
            }
            #expect(!files.isEmpty, "no corpus for \(target)")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: fuzz)
            process.arguments = [target] + files
            let out = Pipe()
            process.standardOutput = out
            process.standardError = out
            try process.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0 && text.contains("\(files.count) input(s)"), "\(target): \(text)")
        }
    }

    @Test func compressWritesACheckpointThatEveryCommandLoads() throws {
        let dir = TemporaryDirectory()
        let output = try CLI.run(["compress", try Fixtures.requireSmolLM2(), "--method", "svd", "--remove", "0.2", "-o", dir.file("ck"), "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])
        #expect(summary["source_sha256"] as? String == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")
        #expect(abs((summary["removed_projection_fraction"] as! Double) - 0.2006) < 1e-3)
        #expect(output.stderr.contains("compression") && output.stderr.contains("ETA"))
        for file in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "compression.json"] {
            #expect(FileManager.default.fileExists(atPath: dir.file("ck/\(file)")), "\(file)")
        }
        let info = try CLI.run(["info", dir.file("ck"), "--json"])
        #expect(info.status == 0, "\(info.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any])
        #expect(json["lowRankProjections"] as? Int == 210)
        #expect((json["parameters"] as! [String: Any])["projectionTotal"] as? Int == 84_873_600)
        let tokenize = try CLI.run(["tokenize", dir.file("ck"), "--text", "Hello, world! <|im_end|>", "--json"])
        #expect(tokenize.stdout.contains("[19556,28,905,17,216,2]"))
        // Numbers measured on the checkpoint carry its recipe.
        let eval = try CLI.run(["eval", dir.file("ck"), "--tasks", "openbookqa", "--limit", "2", "--json"])
        let evalJSON = try #require(try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any])
        let provenance = try #require(evalJSON["compression"] as? [String: Any], "eval JSON: \(eval.stdout.prefix(300)) \(eval.stderr.suffix(300))")
        #expect((provenance["recipe"] as? [String: Any])?["method"] as? String == "svd")
        #expect((provenance["recipe"] as? [String: Any])?["removedFraction"] as? Double == 0.2)
        #expect((provenance["source_sha256"] as? String)?.hasPrefix("b179c952") == true)
        #expect((provenance["compression_json_sha256"] as? String)?.count == 64)
        // A uniform checkpoint plots its ranks but has no importances to plot.
        let ranks = try CLI.run(["plot", "ranks", dir.file("ck"), "-o", dir.file("ranks.svg")])
        #expect(ranks.status == 0, "\(ranks.stderr)")
        let noImportance = try CLI.run(["plot", "importance", dir.file("ck"), "-o", dir.file("importance.svg")])
        #expect(noImportance.status == 1 && noImportance.stderr.contains("--allocation fisher"), "\(noImportance.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("importance.svg")))
        // An unreadable compression record stops eval and perplexity before they evaluate, naming the file.
        try Data("{\"recipe\": ".utf8).write(to: URL(fileURLWithPath: dir.file("ck/compression.json")))
        for command in [["eval", dir.file("ck"), "--tasks", "openbookqa", "--limit", "2"], ["perplexity", dir.file("ck"), "--limit", "1"]] {
            let broken = try CLI.run(command)
            #expect(broken.status == 1, "\(command[0]): \(broken.stderr)")
            #expect(broken.stderr.contains(dir.file("ck/compression.json")) && broken.stderr.contains("recompress"), "\(command[0]): \(broken.stderr)")
            #expect(!broken.stderr.contains("ETA"), "\(command[0]) evaluated before reading the record")
        }
    }

    /// FLRC allocation from the command line: the backward pass shows progress, compression.json
    /// carries an importance per projection, and both plots are readable SVG documents with a title,
    /// labelled axes and a legend naming the seven projection types.
    @Test func fisherAllocationRecordsImportancesAndPlotsThem() throws {
        let dir = TemporaryDirectory()
        let output = try CLI.run(["compress", try Fixtures.requireSmolLM2(), "--method", "svd", "--allocation", "fisher", "--samples", "2",
                                  "--length", "64", "--remove", "0.3", "-o", dir.file("ck"), "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stderr.contains("fisher importance (backward pass)  2/2 windows"), "\(output.stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])
        let report = summary["report"] as! [String: Any]
        let projections = report["projections"] as! [[String: Any]]
        #expect(projections.count == 210 && projections.allSatisfy { ($0["importance"] as? Double ?? 0) > 0 })
        #expect((report["allocationSeconds"] as? Double ?? 0) > 0)
        #expect((summary["recipe"] as! [String: Any])["fisherCap"] as? String == "break-even")
        // The parameter count compression.json records equals the elements of the projection
        // tensors in model.safetensors (its header read here directly: 8-byte length, then JSON).
        let record = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.file("ck/compression.json")))) as? [String: Any])
        let recorded = (record["report"] as! [String: Any])["projectionParametersAfter"] as! Int
        let file = try Data(contentsOf: URL(fileURLWithPath: dir.file("ck/model.safetensors")))
        let headerLength = file.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try #require(try JSONSerialization.jsonObject(with: file.subdata(in: 8..<(8 + headerLength))) as? [String: Any])
        let stored = header.filter { $0.key.contains("_proj") }.reduce(0) { total, entry in
            total + ((entry.value as! [String: Any])["shape"] as! [Int]).reduce(1, *)
        }
        #expect(recorded == stored && stored < 106_168_320, "compression.json counts \(recorded), model.safetensors stores \(stored)")
        for (kind, title, axis) in [("ranks", "Rank per layer", "rank kept"), ("importance", "Fisher importance α", "α (log scale)")] {
            let file = dir.file("\(kind).svg")
            let plot = try CLI.run(["plot", kind, dir.file("ck"), "-o", file])
            #expect(plot.status == 0, "\(plot.stderr)")
            let svg = try String(contentsOfFile: file, encoding: .utf8)
            #expect(XMLParser(data: Data(svg.utf8)).parse(), "\(kind).svg is not well-formed XML")
            for text in [title, axis, ">layer<"] + ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"].map({ ">\($0)<" }) {
                #expect(svg.contains(text), "\(kind).svg lacks \(text)")
            }
            #expect(svg.components(separatedBy: "<circle").count - 1 >= 210 + 7, "\(kind).svg: one marker per projection and per legend entry")
        }
    }

    /// `lowrank heal` on a tiny skipcat checkpoint: it writes a checkpoint with the same parameter
    /// count whose compression.json has the healing record (recipe, held-out divergences, one
    /// training divergence per step), which perplexity then reports; and it refuses a dense model,
    /// a checkpoint without compression.json, a teacher that is not the source, and healing twice.
    @Test func healTrainsACheckpointAndRecordsItsRecipe() throws {
        let dir = TemporaryDirectory()
        try TinyCompression.prepare(dir)
        try TinyLlama(seed: 10).writeGGUF(to: dir.file("other.gguf"))
        let compress = try TinyCompression.compress(dir, ["--method", "skipcat", "--remove", "0.6"])
        #expect(compress.status == 0, "\(compress.stderr)")
        let heal = ["--calibration", dir.file("calibration.txt"), "--steps", "3", "--windows-per-step", "2", "--length", "32", "--validation-windows", "2",
                    "--learning-rate", "1e-4", "--first-token", "40"]
        let healed = try CLI.run(["heal", dir.file("ck"), "-o", dir.file("healed"), "--json"] + heal)
        #expect(healed.status == 0, "\(healed.stderr)")
        #expect(healed.stderr.contains("healing") && healed.stderr.contains("ETA"), "progress on stderr: \(healed.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(healed.stdout.utf8)) as? [String: Any])
        let recipe = try #require(json["recipe"] as? [String: Any])
        #expect(recipe["objective"] as? String == "distillation-kl" && recipe["steps"] as? Int == 3 && recipe["windows_per_step"] as? Int == 2)
        #expect(recipe["teacher_model"] as? String == dir.file("tiny.gguf") && (recipe["training_starts"] as? [Int])?.count == 6)
        let training = try #require(recipe["training_starts"] as? [Int]), held = try #require(recipe["validation_starts"] as? [Int])
        #expect(training.allSatisfy { s in held.allSatisfy { s + 32 <= $0 || $0 + 32 <= s } }, "training windows overlap held-out ones")
        #expect((training + held).allSatisfy { $0 >= 40 }, "--first-token 40 keeps the first 40 tokens out: \(training + held)")
        #expect((json["training_divergence"] as? [Double])?.count == 3)
        let before = try #require(json["validation_divergence_before"] as? Double), after = try #require(json["validation_divergence_after"] as? Double)
        #expect(before > 0 && after < before, "held-out divergence \(before) → \(after)")
        let record = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.file("healed/compression.json")))) as? [String: Any])
        #expect((record["healing"] as? [String: Any])?["trained_parameters"] as? Int == json["trained_parameters"] as? Int)
        func projectionTotal(_ path: String) throws -> Int? {
            let info = try CLI.run(["info", path, "--json"])
            let j = try JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any]
            return (j?["parameters"] as? [String: Any])?["projectionTotal"] as? Int
        }
        #expect(try projectionTotal(dir.file("healed")) == projectionTotal(dir.file("ck")))
        let ppl = try CLI.run(["perplexity", dir.file("healed"), "--dataset", dir.file("calibration.txt"), "--window", "64", "--limit", "2", "--json"])
        #expect(ppl.status == 0 && ppl.stdout.contains("distillation-kl"), "the healing recipe is recorded beside the numbers: \(ppl.stdout.prefix(600))")

        let dense = try CLI.run(["heal", dir.file("tiny.gguf"), "-o", dir.file("never")] + heal)
        #expect(dense.status != 0 && dense.stderr.contains("no low-rank factors"), "\(dense.stderr)")
        let twice = try CLI.run(["heal", dir.file("healed"), "-o", dir.file("never")] + heal)
        #expect(twice.status != 0 && twice.stderr.contains("already healed"), "\(twice.stderr)")
        let stranger = try CLI.run(["heal", dir.file("ck"), "--teacher", dir.file("other.gguf"), "-o", dir.file("never")] + heal)
        #expect(stranger.status != 0 && stranger.stderr.contains("--teacher") && stranger.stderr.contains("sha256"), "\(stranger.stderr)")
        try FileManager.default.copyItem(atPath: dir.file("ck"), toPath: dir.file("ck2"))
        try FileManager.default.removeItem(atPath: dir.file("ck/compression.json"))
        let bare = try CLI.run(["heal", dir.file("ck"), "-o", dir.file("never")] + heal)
        #expect(bare.status != 0 && bare.stderr.contains("compression.json"), "\(bare.stderr)")
        let zeroSteps = try CLI.run(["heal", dir.file("healed"), "-o", dir.file("never"), "--steps", "0"])
        #expect(zeroSteps.status != 0 && zeroSteps.stderr.contains("--steps"), "\(zeroSteps.stderr)")
        let pastTheEnd = try CLI.run(["heal", dir.file("ck2"), "-o", dir.file("never")] + heal + ["--first-token", "1000000"])
        #expect(pastTheEnd.status != 0 && pastTheEnd.stderr.contains("--first-token 1000000"), "\(pastTheEnd.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("never")))
    }

    /// cat, skip, skipcat and basis-sharing checkpoints of a tiny model go through every command
    /// that loads a model (info, logits, perplexity, generate, bench at f16, eval), and the
    /// parameter count compression.json records is the count info reports.
    @Test(arguments: ["cat", "skip", "skipcat", "basis-sharing"])
    func everyFormCompressesAndRunsThroughEveryCommand(method: String) throws {
        let dir = TemporaryDirectory()
        try TinyCompression.prepare(dir)
        let compress = try TinyCompression.compress(dir, ["--method", method, "--remove", "0.3", "--json"])
        #expect(compress.status == 0, "\(compress.stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(compress.stdout.utf8)) as? [String: Any])
        let recipe = summary["recipe"] as! [String: Any]
        #expect(recipe["method"] as? String == method && recipe["groupSize"] as? Int == (method == "basis-sharing" ? 2 : 1))
        let after = (summary["report"] as! [String: Any])["projectionParametersAfter"] as! Int
        let info = try CLI.run(["info", dir.file("ck"), "--json"])
        #expect(info.status == 0, "\(info.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any])
        #expect((json["parameters"] as! [String: Any])["projectionTotal"] as? Int == after)
        let commands: [[String]] = [
            ["logits", dir.file("ck"), "--ids", "5,60,7,99", "--json"],
            ["perplexity", dir.file("ck"), "--dataset", dir.file("calibration.txt"), "--window", "64", "--limit", "2", "--json"],
            ["generate", dir.file("ck"), "--prompt", "Calibration", "--max-tokens", "6"],
            ["bench", dir.file("ck"), "--weights", "f16", "--prompt-tokens", "16", "--decode-tokens", "4", "--runs", "3", "--json"],
            ["eval", dir.file("ck"), "--tasks", "openbookqa", "--limit", "2", "--json"],
        ]
        for command in commands {
            let run = try CLI.run(command)
            #expect(run.status == 0, "\(method) \(command[0]): \(run.stderr.suffix(400))")
            #expect(!run.stdout.isEmpty, "\(method) \(command[0])")
        }
        // A lower active rank is a truncation for plain and shared factors, not for skipped ones.
        let lowered = try CLI.run(["logits", dir.file("ck"), "--ids", "5,60,7", "--active-rank", "0.5", "--json"])
        if method.contains("skip") {
            #expect(lowered.status == 1 && lowered.stderr.contains("--active-rank 0.5") && lowered.stderr.contains("block-skipped"), "\(lowered.stderr)")
        } else {
            #expect(lowered.status == 0, "\(method): \(lowered.stderr)")
        }
    }

    /// The form options are refused where they do not apply, before anything loads.
    @Test func compressRejectsFormOptionsThatDoNotApply() throws {
        let model = try Fixtures.requireSmolLM2()
        let group = try CLI.run(["compress", model, "--remove", "0.2", "--group-size", "2", "-o", "/tmp/never"])
        #expect(group.status != 0 && group.stderr.contains("--group-size applies to --method basis-sharing"), "\(group.stderr)")
        let zero = try CLI.run(["compress", model, "--method", "basis-sharing", "--remove", "0.2", "--group-size", "0", "-o", "/tmp/never"])
        #expect(zero.status != 0 && zero.stderr.contains("--group-size must be ≥ 1"), "\(zero.stderr)")
        let selection = try CLI.run(["compress", model, "--method", "cat", "--remove", "0.2", "--skip-selection", "leading", "-o", "/tmp/never"])
        #expect(selection.status != 0 && selection.stderr.contains("--skip-selection applies to --method skip and skipcat"), "\(selection.stderr)")
        let shares = try CLI.run(["compress", model, "--method", "cat", "--remove", "0.2", "--skipped-allocation", "exact-cost", "-o", "/tmp/never"])
        #expect(shares.status != 0 && shares.stderr.contains("--skipped-allocation applies to --method skip and skipcat"), "\(shares.stderr)")
        let sequential = try CLI.run(["compress", model, "--method", "basis-sharing", "--remove", "0.2", "--calibrate-on", "compressed", "-o", "/tmp/never"])
        #expect(sequential.status != 0 && sequential.stderr.contains("--calibrate-on dense"), "\(sequential.stderr)")
        let compensated = try CLI.run(["compress", model, "--method", "asvd", "--remove", "0.2", "--calibrate-on", "compensated", "-o", "/tmp/never"])
        #expect(compensated.status != 0 && compensated.stderr.contains("--calibrate-on compensated") && compensated.stderr.contains("--method asvd"),
                "\(compensated.stderr)")
        let ridgeAlone = try CLI.run(["compress", model, "--method", "skip", "--remove", "0.2", "--compensation-ridge", "0.1", "-o", "/tmp/never"])
        #expect(ridgeAlone.status != 0 && ridgeAlone.stderr.contains("--compensation-ridge applies to --calibrate-on compensated"), "\(ridgeAlone.stderr)")
        let negativeRidge = try CLI.run(["compress", model, "--method", "skip", "--remove", "0.2", "--calibrate-on", "compensated",
                                         "--compensation-ridge=-1", "-o", "/tmp/never"])
        #expect(negativeRidge.status != 0 && negativeRidge.stderr.contains("--compensation-ridge must be a finite number ≥ 0"), "\(negativeRidge.stderr)")
        let unknown = try CLI.run(["compress", model, "--method", "skipcatt", "--remove", "0.2", "-o", "/tmp/never"])
        #expect(unknown.status != 0 && unknown.stderr.contains("basis-sharing"), "\(unknown.stderr)")
    }

    @Test func compressRejectsAnImpossibleBudget() throws {
        let output = try CLI.run(["compress", try Fixtures.requireSmolLM2(), "--remove", "1.5", "-o", "/tmp/never"])
        #expect(output.status != 0)
        #expect(output.stderr.contains("--remove"))
    }

    /// An allocator that needs every layer's spectrum cannot calibrate on the compressed prefix,
    /// --beta outside [0, 1) is refused, and so is --beta with an allocation that would ignore it:
    /// all before anything loads, naming the options.
    @Test func compressRejectsImpossibleAllocationOptions() throws {
        let model = try Fixtures.requireSmolLM2()
        let sequential = try CLI.run(["compress", model, "--remove", "0.2", "--allocation", "effective-rank", "--calibrate-on", "compressed", "-o", "/tmp/never"])
        #expect(sequential.status != 0)
        #expect(sequential.stderr.contains("--allocation effective-rank") && sequential.stderr.contains("--calibrate-on dense"), "\(sequential.stderr)")
        let search = try CLI.run(["compress", model, "--remove", "0.2", "--allocation", "asvd-search", "--calibrate-on", "compressed", "-o", "/tmp/never"])
        #expect(search.status != 0 && search.stderr.contains("--sensitivity-from DIR"), "asvd-search names the way to reuse a dense run's probes: \(search.stderr)")
        let knapsack = try CLI.run(["compress", model, "--remove", "0.2", "--allocation", "asvd-knapsack", "--calibrate-on", "compressed", "-o", "/tmp/never"])
        #expect(knapsack.status != 0 && knapsack.stderr.contains("--allocation asvd-knapsack") && knapsack.stderr.contains("--sensitivity-from DIR"),
                "asvd-knapsack reads the same probes, with the same way round: \(knapsack.stderr)")
        let beta = try CLI.run(["compress", model, "--remove", "0.2", "--allocation", "effective-rank", "--beta", "1.2", "-o", "/tmp/never"])
        #expect(beta.status != 0 && beta.stderr.contains("--beta"), "\(beta.stderr)")
        let ignored = try CLI.run(["compress", model, "--remove", "0.2", "--beta", "0.1", "-o", "/tmp/never"])
        #expect(ignored.status != 0 && ignored.stderr.contains("--allocation effective-rank only"), "\(ignored.stderr)")
        let unknown = try CLI.run(["compress", model, "--remove", "0.2", "--allocation", "magic", "-o", "/tmp/never"])
        #expect(unknown.status != 0 && unknown.stderr.contains("effective-rank"), "\(unknown.stderr)")
        let cap = try CLI.run(["compress", model, "--remove", "0.2", "--fisher-cap", "full-rank", "-o", "/tmp/never"])
        #expect(cap.status != 0 && cap.stderr.contains("--fisher-cap applies to --allocation fisher"), "\(cap.stderr)")
        let badCap = try CLI.run(["compress", model, "--remove", "0.2", "--allocation", "fisher", "--fisher-cap", "sometimes", "-o", "/tmp/never"])
        #expect(badCap.status != 0 && badCap.stderr.contains("break-even"), "\(badCap.stderr)")
        let samples = try CLI.run(["compress", model, "--remove", "0.2", "--search-samples", "2", "-o", "/tmp/never"])
        #expect(samples.status != 0 && samples.stderr.contains("--search-samples applies to --allocation asvd-search and asvd-knapsack"), "\(samples.stderr)")
        let tooMany = try CLI.run(["compress", model, "--remove", "0.2", "--allocation", "asvd-search", "--samples", "3", "--search-samples", "4",
                                   "-o", "/tmp/never"])
        #expect(tooMany.status != 0 && tooMany.stderr.contains("--search-samples must be between 1 and the number of calibration windows (3)"),
                "\(tooMany.stderr)")
        let reuse = try CLI.run(["compress", model, "--remove", "0.2", "--sensitivity-from", "/tmp", "-o", "/tmp/never"])
        #expect(reuse.status != 0 && reuse.stderr.contains("--sensitivity-from applies to --allocation asvd-search"), "\(reuse.stderr)")
        let empty = TemporaryDirectory()
        let noRecord = try CLI.run(["compress", model, "--method", "svd", "--remove", "0.2", "--allocation", "asvd-search",
                                    "--sensitivity-from", empty.path, "-o", "/tmp/never"])
        #expect(noRecord.status == 1 && noRecord.stderr.contains("--sensitivity-from: \(empty.path) has no compression.json"), "\(noRecord.stderr)")
    }

    @Test func anActiveRankOnADenseModelIsRejectedAndNamed() throws {
        let output = try CLI.run(["logits", try Fixtures.requireSmolLM2(), "--ids", "1,2,3", "--active-rank", "0.5", "--json"])
        #expect(output.status == 1)
        #expect(output.stderr.contains("--active-rank 0.5") && output.stderr.contains("has no low-rank factors"), "\(output.stderr)")
        let outside = try CLI.run(["logits", try Fixtures.requireSmolLM2(), "--ids", "1,2,3", "--active-rank", "1.5", "--json"])
        #expect(outside.status != 0 && outside.stderr.contains("--active-rank must be in (0, 1]"), "\(outside.stderr)")
    }

    /// `info --json` names the decode kernels; `LOWRANK_DECODE_KERNELS` runs a lower tier (every
    /// tier gives the same logits to within the kernels' summation order), and a name that is no
    /// tier is refused before any work, naming the variable.
    @Test func theDecodeKernelTierIsReportedForcedLowerAndAWrongNameRefused() throws {
        let model = try Fixtures.requireSmolLM2()
        func info(_ environment: [String: String]) throws -> String {
            let output = try CLI.run(["info", model, "--json"], environment: environment)
            #expect(output.status == 0, "\(output.stderr)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])
            return try #require(json["decode_kernels"] as? String)
        }
        #expect(try info([:]) == DecodeKernels.cpuLevel.description)
        if DecodeKernels.cpuLevel > .portable {
            #expect(try info(["LOWRANK_DECODE_KERNELS": "portable"])
                    == "portable (forced by LOWRANK_DECODE_KERNELS; the CPU runs \(DecodeKernels.cpuLevel))")
        }
        func logits(_ environment: [String: String]) throws -> [Double] {
            let output = try CLI.run(["logits", model, "--ids", "1,504,3458,282,4649,314", "--positions", "0,3,-1", "--top", "5", "--json"], environment: environment)
            #expect(output.status == 0, "\(output.stderr)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])
            let rows = try #require(json["positions"] as? [[String: Any]])
            return rows.flatMap { ($0["first_logits"] as? [Double] ?? []) + ($0["top"] as? [[String: Any]] ?? []).compactMap { $0["logit"] as? Double } }
        }
        let native = try logits([:])
        #expect(!native.isEmpty)
        for level in DecodeKernels.supportedLevels where level < DecodeKernels.cpuLevel {
            let lower = try logits(["LOWRANK_DECODE_KERNELS": level.description])
            #expect(lower.count == native.count)
            for (a, b) in zip(lower, native) { #expect(abs(a - b) < 1e-3, "\(level): \(a) against \(b)") }
        }
        let wrong = try CLI.run(["info", model], environment: ["LOWRANK_DECODE_KERNELS": "sse9"])
        #expect(wrong.status != 0 && wrong.stderr.contains("LOWRANK_DECODE_KERNELS=sse9 is not a tier of decode kernels"), "\(wrong.stderr)")
    }

    static func blas(_ environment: [String: String]) throws -> String {
        let output = try CLI.run(["info", try Fixtures.requireSmolLM2(), "--json"], environment: environment)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])
        return json["blas"] as! String
    }

    @Test func anExplicitOpenBLASCoreTypeWinsAndOneThreadIsTheDefault() throws {
        #expect(try Self.blas(["OPENBLAS_CORETYPE": "Haswell"]) == "OpenBLAS Haswell kernels (set by OPENBLAS_CORETYPE), 1 thread(s) per call")
        #expect(try Self.blas(["OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_NUM_THREADS": "2"])
                == "OpenBLAS Haswell kernels (set by OPENBLAS_CORETYPE), 2 thread(s) per call")
    }

    /// Without a setting, an AVX-512 CPU runs AVX-512 kernels, whether OpenBLAS chose them or
    /// lowrank re-executed itself. (The test runner's own OpenBLAS exports the core it detected, so
    /// the variable is emptied for the child.)
    @Test(.enabled(if: CPUFeatures.current.hasAVX512F, "the CPU has no AVX-512"))
    func anAVX512CPURunsAVX512KernelsByDefault() throws {
        let automatic = try Self.blas(["OPENBLAS_CORETYPE": "", "OPENBLAS_NUM_THREADS": ""])
        #expect(["SkylakeX", "Cooperlake", "SapphireRapids"].contains { automatic.hasPrefix("OpenBLAS \($0) kernels") }, "\(automatic)")
    }

    /// The re-execution end to end, on any AVX-512 machine: the first process decides as if
    /// OpenBLAS had fallen back to Prescott (as Debian's 0.3.21 does on a Xeon of model 207), and the
    /// re-executed process must report the AVX-512 kernels OpenBLAS really loaded, with the
    /// arguments passed through (the model path reaches `info`).
    @Test(.enabled(if: CPUFeatures.current.hasAVX512F, "the CPU has no AVX-512"))
    func anAVX512CPUWhoseOpenBLASFellBackIsReexecutedOntoAVX512Kernels() throws {
        let expected = CPUFeatures.current.hasAVX512BF16 ? "Cooperlake" : "SkylakeX"
        let fellBack = try Self.blas(["OPENBLAS_CORETYPE": "", "OPENBLAS_NUM_THREADS": "", BLASRuntime.assumeDetectedVariable: "Prescott"])
        #expect(fellBack == "OpenBLAS \(expected) kernels (chosen by lowrank for this CPU's AVX-512), 1 thread(s) per call", "\(fellBack)")
        // The user's setting still wins over the re-execution.
        let user = try Self.blas(["OPENBLAS_CORETYPE": "Prescott", "OPENBLAS_NUM_THREADS": "", BLASRuntime.assumeDetectedVariable: "Prescott"])
        #expect(user == "OpenBLAS Prescott kernels (set by OPENBLAS_CORETYPE), 1 thread(s) per call", "\(user)")
    }
}

