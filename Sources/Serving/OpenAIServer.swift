import Foundation
import Hummingbird
import Llama
import Logging
import Tokenization

/// What the server says about itself (`/v1/models`, `/lowrank/info`, the chat page).
public struct ServerInfo: Sendable {
    public var modelName: String
    /// The checkpoint's compression recipe as JSON (nil for a dense model).
    public var recipe: String?
    public var weights: String
    public var rankSchedule: String?

    public init(modelName: String, recipe: String?, weights: String, rankSchedule: String?) {
        self.modelName = modelName
        self.recipe = recipe
        self.weights = weights
        self.rankSchedule = rankSchedule
    }
}

/// `lowrank serve`: OpenAI's chat completions, completions and models endpoints, `/health`, and a
/// chat page at `/`, on Hummingbird, in front of a `BatchScheduler`. Every error is OpenAI's error
/// object with its status; one line per request goes to stderr.
public struct OpenAIServer: Sendable {
    public let scheduler: BatchScheduler
    public let tokenizer: BPETokenizer
    public let chatTemplate: ChatTemplate?
    public let info: ServerInfo
    public let maxBodyBytes: Int
    private let created = Int(Date().timeIntervalSince1970)
    private let counter = RequestCounter()

    public init(scheduler: BatchScheduler, tokenizer: BPETokenizer, chatTemplate: ChatTemplate?, info: ServerInfo, maxBodyBytes: Int = 1 << 20) {
        self.scheduler = scheduler
        self.tokenizer = tokenizer
        self.chatTemplate = chatTemplate
        self.info = info
        self.maxBodyBytes = maxBodyBytes
    }

    /// Serves until SIGINT or SIGTERM; then stops accepting, lets in-flight requests finish, and
    /// stops the model thread. `onRunning` runs once the socket listens.
    public func run(host: String, port: Int, onRunning: @escaping @Sendable () -> Void = {}) async throws {
        var logger = Logger(label: "lowrank.serve")
        logger.logLevel = .warning
        let app = Application(router: router(), configuration: .init(address: .hostname(host, port: port), serverName: "lowrank"),
                              onServerRunning: { _ in onRunning() }, logger: logger)
        scheduler.start()
        try await app.runService()
        scheduler.shutdown(cancel: true)
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/health") { _, _ in
            let load = scheduler.load
            return json(["status": "ok", "active": load.active, "queued": load.queued])
        }
        router.get("/v1/models") { _, _ in
            json(["object": "list", "data": [["id": info.modelName, "object": "model", "created": created, "owned_by": "lowrank"]]])
        }
        router.get("/lowrank/info") { _, _ in
            var body: [String: Any] = ["model": info.modelName, "weights": info.weights, "context": scheduler.context,
                                       "max_concurrent": scheduler.maxConcurrent]
            body["recipe"] = info.recipe.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } ?? NSNull()
            body["rank_schedule"] = info.rankSchedule ?? NSNull()
            return json(body)
        }
        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: ChatPage.html)))
        }
        router.post("/v1/chat/completions") { request, context in try await generate(request, context: context, endpoint: .chat) }
        router.post("/v1/completions") { request, context in try await generate(request, context: context, endpoint: .completion) }
        return router
    }

    // MARK: - Generation

    func generate(_ request: Request, context: BasicRequestContext, endpoint: GenerationRequest.Endpoint) async throws -> Response {
        let number = counter.next()
        let parsed: GenerationRequest
        let ticket: Ticket
        do {
            let buffer: ByteBuffer
            do { buffer = try await request.body.collect(upTo: maxBodyBytes) } catch {
                if (error as? any HTTPResponseError)?.status == .contentTooLarge {
                    throw APIError(status: 413, message: "the body is larger than \(maxBodyBytes) bytes", code: "request_too_large")
                }
                throw error
            }
            parsed = try GenerationRequest.parse(Data(buffer.readableBytesView), endpoint: endpoint)
            let prompt: [Int]
            do {
                prompt = try GenerationSession.encode(parsed.prompt, tokenizer: tokenizer, chatTemplate: chatTemplate, source: info.modelName).ids
            } catch .noChatTemplate {
                throw APIError.invalid("\(info.modelName) has no chat template: use /v1/completions", param: "messages")
            } catch {
                throw APIError.invalid(error.description, param: "prompt")
            }
            ticket = try scheduler.submit(prompt: prompt, maxTokens: parsed.maxTokens, sampling: parsed.sampling, stop: parsed.stop)
        } catch let error as APIError {
            return failure(error, number: number, endpoint: endpoint)
        }
        let id = (endpoint == .chat ? "chatcmpl-" : "cmpl-") + ticket.id
        let model = info.modelName
        if parsed.stream {
            return streamed(ticket, id: id, model: model, endpoint: endpoint, includeUsage: parsed.includeUsage, number: number)
        }
        var text = ""
        var summary: GenerationSummary?
        for await event in ticket.events {
            switch event {
            case .text(let piece): text += piece
            case .finished(let s): summary = s
            }
        }
        guard let summary, summary.finishReason != "cancelled" else {
            return failure(APIError(status: 503, message: "the generation was cancelled (the server is stopping)", type: "server_error"),
                           number: number, endpoint: endpoint)
        }
        let choice: [String: Any] = endpoint == .chat
            ? ["index": 0, "message": ["role": "assistant", "content": text], "finish_reason": summary.finishReason, "logprobs": NSNull()]
            : ["index": 0, "text": text, "finish_reason": summary.finishReason, "logprobs": NSNull()]
        log(number, endpoint, status: 200, summary: summary, stream: false)
        return json(["id": id, "object": endpoint == .chat ? "chat.completion" : "text_completion", "created": Int(Date().timeIntervalSince1970),
                     "model": model, "choices": [choice], "usage": usage(summary)])
    }

    /// Server-sent events: one chunk per piece of text, a last chunk with the finish_reason, the
    /// usage chunk when asked, then `data: [DONE]`. A client that goes away cancels the sequence.
    func streamed(_ ticket: Ticket, id: String, model: String, endpoint: GenerationRequest.Endpoint, includeUsage: Bool, number: Int) -> Response {
        let created = Int(Date().timeIntervalSince1970)
        let object = endpoint == .chat ? "chat.completion.chunk" : "text_completion"
        @Sendable func chunk(_ choices: [[String: Any]], usage: [String: Any]? = nil) -> ByteBuffer {
            var body: [String: Any] = ["id": id, "object": object, "created": created, "model": model, "choices": choices]
            if let usage { body["usage"] = usage } else if includeUsage { body["usage"] = NSNull() }
            let data = (try? JSONSerialization.data(withJSONObject: body, options: [.withoutEscapingSlashes])) ?? Data()
            return ByteBuffer(bytes: Array("data: ".utf8) + Array(data) + Array("\n\n".utf8))
        }
        @Sendable func choice(text: String?, role: Bool = false, finish: String? = nil) -> [String: Any] {
            if endpoint == .chat {
                var delta: [String: Any] = [:]
                if role { delta["role"] = "assistant" }
                if let text { delta["content"] = text }
                return ["index": 0, "delta": delta, "finish_reason": finish ?? NSNull(), "logprobs": NSNull()]
            }
            return ["index": 0, "text": text ?? "", "finish_reason": finish ?? NSNull(), "logprobs": NSNull()]
        }
        let server = self
        let body = ResponseBody { writer in
            do {
                if endpoint == .chat { try await writer.write(chunk([choice(text: "", role: true)])) }
                for await event in ticket.events {
                    switch event {
                    case .text(let piece):
                        try await writer.write(chunk([choice(text: piece)]))
                    case .finished(let summary):
                        if summary.finishReason == "cancelled" {
                            server.log(number, endpoint, status: 200, summary: summary, stream: true)
                            break
                        }
                        try await writer.write(chunk([choice(text: endpoint == .chat ? nil : "", finish: summary.finishReason)]))
                        if includeUsage { try await writer.write(chunk([], usage: server.usage(summary))) }
                        try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                        server.log(number, endpoint, status: 200, summary: summary, stream: true)
                    }
                }
                try await writer.finish(nil)
            } catch {
                ticket.cancel()  // the client went away: free its sequence
                server.log(number, endpoint, status: 499, detail: "client disconnected; generation cancelled")
                throw error
            }
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }

    /// An error answered (and logged) in OpenAI's shape.
    func failure(_ error: APIError, number: Int, endpoint: GenerationRequest.Endpoint) -> Response {
        log(number, endpoint, status: error.status, detail: error.message)
        return Response(status: .init(code: error.status), headers: [.contentType: "application/json"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: error.body)))
    }

    func usage(_ s: GenerationSummary) -> [String: Any] {
        ["prompt_tokens": s.promptTokens, "completion_tokens": s.completionTokens, "total_tokens": s.promptTokens + s.completionTokens]
    }

    func json(_ object: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes])) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// One line per request: number, endpoint, status, then tokens, time to first token and speed,
    /// or what went wrong.
    func log(_ number: Int, _ endpoint: GenerationRequest.Endpoint, status: Int, summary: GenerationSummary? = nil, stream: Bool = false,
             detail: String? = nil) {
        var line = "req-\(number) POST \(endpoint.rawValue) \(status)"
        if let s = summary {
            let speed = s.completionTokens > 1 && s.decodeSeconds > 0 ? Double(s.completionTokens - 1) / s.decodeSeconds : 0
            line += String(format: " prompt=%d generated=%d ttft=%.3fs %.1f tok/s finish=%@%@", s.promptTokens, s.completionTokens,
                           s.timeToFirstToken, speed, s.finishReason, stream ? " stream" : "")
        }
        if let detail { line += " (\(detail))" }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}

/// Numbers requests for the log.
final class RequestCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}
