import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `lowrank serve` as a client sees it: started on a free port, checked by the official `openai`
/// Python client and curl (`Tests/serve/check_server.py`), every bad input answered with its status
/// while the server keeps serving, greedy replies identical to `lowrank generate`, and a clean stop
/// on SIGINT. The real-model tier adds SmolLM2 and a client that disconnects mid-stream.
@Suite("lowrank serve", .serialized)
struct ServeTests {
    /// A port nothing listens on now (bound to port 0, read, released).
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// A running server whose stderr goes to a file.
    final class Server {
        let process = Process()
        let port: Int
        let log: String

        init(_ arguments: [String], directory: TemporaryDirectory) throws {
            port = ServeTests.freePort()
            log = directory.file("serve-\(port).log")
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            process.executableURL = URL(fileURLWithPath: CLI.binary)
            process.arguments = ["serve"] + arguments + ["--port", String(port)]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            try process.run()
        }

        var base: String { "http://127.0.0.1:\(port)" }

        /// Waits until /health answers (the model is loaded and the socket listens).
        func waitUntilReady(seconds: Double = 120) throws {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                let health = try CLIProcess.run("/usr/bin/curl", ["-s", "-m", "2", base + "/health"])
                if health.stdout.contains("\"status\":\"ok\"") { return }
                guard process.isRunning else { throw TestFailure("the server exited: \(try String(contentsOfFile: log, encoding: .utf8))") }
                Thread.sleep(forTimeInterval: 0.2)
            }
            throw TestFailure("the server did not answer /health within \(seconds) s")
        }

        /// SIGINT, then the exit status (nil if it did not stop within `seconds`).
        func interrupt(seconds: Double = 30) -> Int32? {
            kill(process.processIdentifier, SIGINT)
            let deadline = Date().addingTimeInterval(seconds)
            while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
            if process.isRunning {
                process.terminate()
                return nil
            }
            return process.terminationStatus
        }

        var stderr: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
    }

    /// Greedy output of `lowrank generate` (without its trailing newline).
    static func generate(_ model: String, _ arguments: [String]) throws -> String {
        let output = try CLI.run(["generate", model] + arguments)
        guard output.status == 0 else { throw TestFailure("generate failed: \(output.stderr)") }
        return String(output.stdout.dropLast())
    }

    static func check(server: Server, model: String, name: String, context: Int) throws {
        let chat = try generate(model, ["--chat", "--prompt", "Say something.", "--max-tokens", "16"])
        let completion = try generate(model, ["--prompt", "Once upon", "--max-tokens", "8"])
        let script = Fixtures.repositoryRoot + "/Tests/serve/check_server.py"
        let result = try CLIProcess.run("/usr/bin/env", ["python3", script, server.base, name, chat, completion, String(context)])
        #expect(result.status == 0, "check_server.py:\n\(result.stdout)\n\(result.stderr)\nserver log:\n\(server.stderr.suffix(2000))")
    }

    @Test func theTinyModelServesTheOpenAIClientCurlAndBadInput() throws {
        let dir = TemporaryDirectory()
        try TinyLlama(seed: 9).writeGGUF(to: dir.file("tiny.gguf"))
        let server = try Server([dir.file("tiny.gguf"), "--max-concurrent", "2"], directory: dir)
        defer { if server.process.isRunning { server.process.terminate() } }
        try server.waitUntilReady()
        try Self.check(server: server, model: dir.file("tiny.gguf"), name: "tiny.gguf", context: 128)
        #expect(server.interrupt() == 0, "the server did not stop cleanly on SIGINT: \(server.stderr.suffix(1000))")
        let log = server.stderr
        #expect(log.contains("req-1 POST /v1/chat/completions 200 prompt=") && log.contains("ttft=") && log.contains("tok/s"), "\(log.prefix(2000))")
        #expect(log.contains("POST /v1/chat/completions 413") && log.contains("POST /v1/chat/completions 400"), "\(log.suffix(2000))")
        #expect(log.contains("lowrank serve: stopped"))
    }

    /// The real-model tier: SmolLM2 through the same checks, and a streaming client that hangs up
    /// after its first chunks has its sequence cancelled (the log says so, and /health shows no
    /// active sequence).
    @Test func smolLM2ServesAndCancelsADisconnectedStream() throws {
        let model = try Fixtures.requireSmolLM2()
        let dir = TemporaryDirectory()
        let server = try Server([model, "--context", "1024"], directory: dir)
        defer { if server.process.isRunning { server.process.terminate() } }
        try server.waitUntilReady()
        try Self.check(server: server, model: model, name: URL(fileURLWithPath: model).lastPathComponent, context: 1024)
        let hangUp = """
            import http.client, json, sys
            c = http.client.HTTPConnection("127.0.0.1", \(server.port), timeout=60)
            body = {"messages": [{"role": "user", "content": "Write a long story about the sea."}], "max_tokens": 900, "stream": True}
            c.request("POST", "/v1/chat/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
            r = c.getresponse()
            r.read1(200)
            c.sock.close()
            """
        let client = try CLIProcess.run("/usr/bin/env", ["python3", "-c", hangUp])
        #expect(client.status == 0, "\(client.stderr)")
        var cancelled = false
        for _ in 0..<300 where !cancelled {
            Thread.sleep(forTimeInterval: 0.2)
            cancelled = server.stderr.contains("client disconnected; generation cancelled")
        }
        #expect(cancelled, "no cancellation logged: \(server.stderr.suffix(1500))")
        // The model thread frees the sequence at its next step (the cancellation is logged when the
        // write fails, before that step ends): poll briefly.
        var health = try CLIProcess.run("/usr/bin/curl", ["-s", server.base + "/health"])
        for _ in 0..<50 where !health.stdout.contains("\"active\":0") {
            Thread.sleep(forTimeInterval: 0.1)
            health = try CLIProcess.run("/usr/bin/curl", ["-s", server.base + "/health"])
        }
        #expect(health.stdout.contains("\"active\":0"), "still active 5 s after the cancellation: \(health.stdout)")
        #expect(server.interrupt() == 0)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs any program and collects its output.
enum CLIProcess {
    static func run(_ executable: String, _ arguments: [String]) throws -> CLI.Output { try CLI.run(arguments, executable: executable) }
}
