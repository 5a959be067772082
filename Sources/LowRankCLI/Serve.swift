import ArgumentParser
import Foundation
import Llama
import LowRank
import Serving

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a dense or compressed model over OpenAI's API, with batched decoding and a chat page.",
        discussion: """
            Endpoints: POST /v1/chat/completions and /v1/completions (non-streamed, or server-sent events with \
            "stream": true), GET /v1/models, GET /health, and a chat page at /. Requests that arrive together decode \
            together (one pass over the weights per step for every active sequence); beyond --max-concurrent they \
            queue, and beyond --max-queue they get 429. Stops on SIGINT or SIGTERM after the requests in flight \
            finish. One line per request on stderr.
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var engine: EngineOptions
    @OptionGroup var scheduleOptions: RankScheduleOptions

    @Option(help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "Port to listen on.")
    var port: Int = 8080

    @Option(help: "Sequences decoded together at most.")
    var maxConcurrent: Int = 4

    @Option(help: "Requests waiting for a slot at most (beyond: 429).")
    var maxQueue: Int = 16

    @Option(help: "Tokens per sequence, prompt and reply (default: the model's context length, at most 8192).")
    var context: Int?

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port must be between 1 and 65535") }
        guard maxConcurrent >= 1 else { throw ValidationError("--max-concurrent must be at least 1") }
        guard maxQueue >= 0 else { throw ValidationError("--max-queue must be 0 or more") }
        if let context, context < 2 { throw ValidationError("--context must be at least 2") }
    }

    func run() async throws {
        var loaded = try loadModel(model, engine: engine)
        let schedule = try scheduleOptions.load(loaded, engine: engine)
        let provenance = try CompressionRecord.Provenance.read(loaded)
        let contextLength = min(context ?? min(loaded.configuration.contextLength, 8192), loaded.configuration.contextLength)
        if let context, context > loaded.configuration.contextLength {
            throw CLIError("--context \(context) exceeds the model's context length \(loaded.configuration.contextLength)")
        }
        let runtime = try engine.makeModel(&loaded)
        let session = GenerationSession(model: runtime, loaded: loaded)
        let scheduler = BatchScheduler(model: runtime, tokenizer: loaded.tokenizer, stopTokens: session.stopTokens,
                                       maxConcurrent: maxConcurrent, maxQueued: maxQueue, context: contextLength, schedule: schedule?.0)
        var recipe: String?
        if let provenance, let data = try? JSONEncoder().encode(provenance.recipe) { recipe = String(decoding: data, as: UTF8.self) }
        let name = URL(fileURLWithPath: loaded.source.path).lastPathComponent
        let info = ServerInfo(modelName: name, recipe: recipe, weights: engine.weights.rawValue, rankSchedule: scheduleOptions.rankSchedule)
        let server = OpenAIServer(scheduler: scheduler, tokenizer: loaded.tokenizer, chatTemplate: loaded.chatTemplate, info: info)
        let (host, port, maxConcurrent) = (host, port, maxConcurrent)
        try await server.run(host: host, port: port) {
            Terminal.error("lowrank serve: \(name) on http://\(host):\(port) (context \(contextLength), up to \(maxConcurrent) sequences together); Ctrl-C stops")
        }
        Terminal.error("lowrank serve: stopped")
    }
}
