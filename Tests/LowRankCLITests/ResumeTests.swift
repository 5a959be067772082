import Foundation
import Testing
import TestSupport

/// `lowrank compress --resume`: a run stopped after any layer (as if killed: the process exits at
/// once after saving that layer) continues from the saved layers, and the checkpoint it writes is
/// byte for byte the uninterrupted run's. A changed recipe or a recipe with no per-layer result is
/// refused with the reason.
@Suite("Resumable compression")
struct ResumeTests {
    /// A 4-layer tiny model and its calibration text in `dir`.
    static func prepare(_ dir: TemporaryDirectory) throws -> (model: String, calibration: String) {
        try TinyCompression.prepare(dir, model: TinyLlama(seed: 12, layerCount: 4))
        return (dir.file("tiny.gguf"), dir.file("calibration.txt"))
    }

    static func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    @Test(arguments: [["--method", "svd-llm"], ["--method", "skipcat", "--calibrate-on", "compressed"], ["--method", "svd-llm", "--allocation", "fisher"],
                           ["--method", "skip", "--calibrate-on", "compensated"]])
    func aRunStoppedTwiceAndResumedWritesTheUninterruptedCheckpoint(options: [String]) throws {
        let dir = TemporaryDirectory()
        let (model, calibration) = try Self.prepare(dir)
        func compress(_ output: String, _ extra: [String] = [], stopAfter: Int? = nil) throws -> CLI.Output {
            try CLI.run(["compress", model] + options + ["--remove", "0.3", "--calibration", calibration, "--samples", "4", "--length", "32",
                                                        "-o", output] + extra,
                        environment: stopAfter.map { ["LOWRANK_STOP_AFTER_LAYER": String($0)] } ?? [:])
        }
        let reference = try compress(dir.file("reference"))
        #expect(reference.status == 0, "\(reference.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("reference.partial")), "a finished run leaves no partial directory")

        let first = try compress(dir.file("ck"), stopAfter: 0)
        #expect(first.status == 75 && first.stderr.contains("stopping after layer 0"), "\(first.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("ck")), "no checkpoint before the run ends")
        let state = try #require(try JSONSerialization.jsonObject(with: Self.bytes(dir.file("ck.partial/state.json"))) as? [String: Any])
        #expect(state["layers_finished"] as? Int == 1)
        let fresh = try compress(dir.file("ck"))
        #expect(fresh.status != 0 && fresh.stderr.contains("--resume"), "an unfinished run is not silently discarded: \(fresh.stderr)")
        let second = try compress(dir.file("ck"), ["--resume"], stopAfter: 2)
        #expect(second.status == 75 && second.stderr.contains("1 of 4 layers finished"), "\(second.stderr)")
        let last = try compress(dir.file("ck"), ["--resume"])
        #expect(last.status == 0 && last.stderr.contains("3 of 4 layers finished"), "\(last.stderr)")
        for file in ["model.safetensors", "config.json"] {
            #expect(try Self.bytes(dir.file("ck/" + file)) == Self.bytes(dir.file("reference/" + file)), "\(options): \(file) differs")
        }
        let summary = try #require(try JSONSerialization.jsonObject(with: Self.bytes(dir.file("ck/compression.json"))) as? [String: Any])
        let expected = try #require(try JSONSerialization.jsonObject(with: Self.bytes(dir.file("reference/compression.json"))) as? [String: Any])
        let projections = { (s: [String: Any]) in ((s["report"] as! [String: Any])["projections"] as! [[String: Any]]).map { $0["rank"] as? Int } }
        #expect(projections(summary) == projections(expected), "the report lists every layer once, in order")
        #expect(summary["resumed_after_layers"] as? Int == 3 && expected["resumed_after_layers"] == nil)
        // The memory record outside checks read: the peak, where it was reached, and the peak after each layer.
        let memory = try #require(expected["memory"] as? [String: Any])
        #expect(memory["streaming"] as? Bool == true && (memory["peak_rss_after_layer"] as? [Int])?.count == 4, "\(memory)")
        #expect((memory["peak_rss_bytes"] as? Int ?? 0) >= (memory["peak_rss_after_layer"] as? [Int])?.last ?? .max && memory["peak_stage"] is String)
        #expect(!FileManager.default.fileExists(atPath: dir.file("ck.partial")))
    }

    /// asvd-search's ranks come after every layer's probes, so a fresh search neither streams nor
    /// calibrates sequentially; reusing a dense search's probes (`--sensitivity-from`) fixes the
    /// ranks first: the sequential run keeps the dense run's ranks, records where its probes came
    /// from, and resumes to the uninterrupted checkpoint.
    @Test func aSequentialRunOnReusedProbesKeepsTheirRanksAndResumes() throws {
        let dir = TemporaryDirectory()
        let (model, calibration) = try Self.prepare(dir)
        let common = ["compress", model, "--method", "skip", "--remove", "0.3", "--allocation", "asvd-search", "--search-samples", "1",
                      "--calibration", calibration, "--samples", "4", "--length", "32"]
        let search = try CLI.run(common + ["-o", dir.file("search")])
        #expect(search.status == 0, "\(search.stderr)")
        let sequential = common + ["--calibrate-on", "compressed", "--sensitivity-from", dir.file("search")]
        let reference = try CLI.run(sequential + ["-o", dir.file("reference")])
        #expect(reference.status == 0, "\(reference.stderr)")
        let stopped = try CLI.run(sequential + ["-o", dir.file("ck")], environment: ["LOWRANK_STOP_AFTER_LAYER": "1"])
        #expect(stopped.status == 75, "\(stopped.stderr)")
        let resumed = try CLI.run(sequential + ["-o", dir.file("ck"), "--resume"])
        #expect(resumed.status == 0 && resumed.stderr.contains("2 of 4 layers finished"), "\(resumed.stderr)")
        #expect(try Self.bytes(dir.file("ck/model.safetensors")) == Self.bytes(dir.file("reference/model.safetensors")))
        func record(_ name: String) throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Self.bytes(dir.file(name + "/compression.json"))) as? [String: Any])
        }
        let ranks = { (s: [String: Any]) in ((s["report"] as! [String: Any])["projections"] as! [[String: Any]]).map { $0["rank"] as? Int } }
        let dense = try record("search"), reused = try record("reference")
        #expect(ranks(reused) == ranks(dense), "the dense search's ranks")
        #expect(ranks(dense).contains(nil) && ranks(dense).contains { $0 != nil }, "some projections kept dense, some factored")
        let recipe = try #require(reused["recipe"] as? [String: Any])
        #expect(recipe["calibrateOn"] as? String == "compressed")
        #expect((recipe["sensitivitySource"] as? [String: Any])?["path"] as? String == dir.file("search") + "/compression.json", "\(recipe)")
        #expect(try Self.bytes(dir.file("reference/model.safetensors")) != Self.bytes(dir.file("search/model.safetensors")),
                "calibrating on the compressed prefix must change the factors")
    }

    @Test func aResumeWithAnotherRecipeOrNoPartialRunIsRefusedWithTheReason() throws {
        let dir = TemporaryDirectory()
        let (model, calibration) = try Self.prepare(dir)
        let common = ["compress", model, "--method", "svd-llm", "--calibration", calibration, "--samples", "4", "--length", "32", "-o", dir.file("ck")]
        let nothing = try CLI.run(common + ["--remove", "0.3", "--resume"])
        #expect(nothing.status != 0 && nothing.stderr.contains("no unfinished run"), "\(nothing.stderr)")
        let stopped = try CLI.run(common + ["--remove", "0.3"], environment: ["LOWRANK_STOP_AFTER_LAYER": "1"])
        #expect(stopped.status == 75)
        let other = try CLI.run(common + ["--remove", "0.4", "--resume"])
        #expect(other.status != 0 && other.stderr.contains("removedFraction was 0.3, now 0.4"), "\(other.stderr)")
        let spectra = try CLI.run(common + ["--remove", "0.3", "--allocation", "effective-rank", "--resume"])
        #expect(spectra.status != 0 && spectra.stderr.contains("every layer's spectrum"), "\(spectra.stderr)")
        let resumed = try CLI.run(common + ["--remove", "0.3", "--resume"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
    }
}
