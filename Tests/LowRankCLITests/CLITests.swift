import Foundation
import Testing
import TestSupport

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

    static func run(_ arguments: [String]) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
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

    @Test func unknownPreTokenizerOptionIsRejectedWithTheChoices() throws {
        let output = try CLI.run(["tokenize", "m.gguf", "--text", "x", "--pretokenizer", "bogus"])
        #expect(output.status != 0)
        #expect(output.stderr.contains("gpt2-digits"))
    }
}
