import Foundation
import Testing
import Llama
import Serving

/// Request bodies as OpenAI's API reference spells them, and every malformed one refused with 400
/// and the field named.
@Suite("OpenAI request parsing")
struct GenerationRequestTests {
    static func parse(_ body: String, _ endpoint: GenerationRequest.Endpoint = .chat) throws(APIError) -> GenerationRequest {
        try GenerationRequest.parse(Data(body.utf8), endpoint: endpoint)
    }

    @Test func aFullChatRequestIsRead() throws {
        let r = try Self.parse("""
            {"model": "m", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
             "max_tokens": 12, "temperature": 0, "top_p": 0.5, "seed": 7, "stop": ["\\n", "END"], "stream": true,
             "stream_options": {"include_usage": true}}
            """)
        #expect(r.prompt == .chat([.init(.system, "Be brief."), .init(.user, "Hi")]))
        #expect(r.maxTokens == 12 && r.sampling.temperature == 0 && r.sampling.topP == 0.5 && r.sampling.seed == 7)
        #expect(r.stop == ["\n", "END"] && r.stream && r.includeUsage && r.model == "m")
        let defaults = try Self.parse(#"{"messages": [{"role": "user", "content": "x"}]}"#)
        #expect(defaults.maxTokens == nil && defaults.sampling.temperature == 1 && !defaults.stream && defaults.stop.isEmpty)
        let completion = try Self.parse(#"{"prompt": "Once", "stop": "."}"#, .completion)
        #expect(completion.prompt == .text("Once") && completion.maxTokens == 16 && completion.stop == ["."])
        #expect(try Self.parse(#"{"messages": [{"role": "developer", "content": "d"}], "max_completion_tokens": 3}"#).maxTokens == 3)
    }

    @Test(arguments: [
        ("{\"messages\": ", "not valid JSON", nil),
        ("[1, 2]", "JSON object", nil),
        ("{}", "messages is required", "messages"),
        ("{\"messages\": []}", "must not be empty", "messages"),
        ("{\"messages\": \"hi\"}", "must be an array", "messages"),
        ("{\"messages\": [{\"role\": \"wizard\", \"content\": \"x\"}]}", "'wizard' is not supported", "messages[0].role"),
        ("{\"messages\": [{\"role\": 3, \"content\": \"x\"}]}", "role must be a string", "messages[0].role"),
        ("{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", "content must be a string", "messages[0].content"),
        ("{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}", "text only", "messages[0].content[0]"),
        ("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": \"ten\"}", "max_tokens must be an integer", "max_tokens"),
        ("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": 0}", "at least 1", "max_tokens"),
        ("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": 2.5}", "max_tokens must be an integer", "max_tokens"),
        ("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"temperature\": 3}", "between 0 and 2", "temperature"),
        ("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"temperature\": true}", "temperature must be a number", "temperature"),
        ("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"top_p\": 0}", "top_p must be in (0, 1]", "top_p"),
        ("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream\": \"yes\"}", "stream must be true or false", "stream"),
        ("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stop\": [1]}", "up to 4 strings", "stop"),
        ("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"n\": 2}", "n must be 1", "n"),
        ("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"seed\": \"s\"}", "seed must be an integer", "seed"),
        ("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream_options\": 1}", "stream_options must be an object", "stream_options"),
    ] as [(String, String, String?)])
    func aMalformedChatRequestIsRefusedNamingTheField(body: String, message: String, param: String?) {
        #expect {
            try Self.parse(body)
        } throws: { error in
            guard let error = error as? APIError else { return false }
            return error.status == 400 && error.message.contains(message) && error.param == param && error.type == "invalid_request_error"
        }
    }

    @Test func aCompletionWithoutAPromptIsRefused() {
        #expect(throws: APIError.invalid("prompt is required: a string", param: "prompt")) { try Self.parse("{}", .completion) }
        #expect(throws: APIError.invalid("prompt must be a string (or an array of one string)", param: "prompt")) {
            try Self.parse(#"{"prompt": ["a", "b"]}"#, .completion)
        }
    }

    @Test func anErrorBodyHasOpenAIsShape() throws {
        let body = APIError.invalid("max_tokens must be at least 1 (got 0)", param: "max_tokens").body
        let json = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
        let error = try #require(json["error"] as? [String: Any])
        #expect(error["message"] as? String == "max_tokens must be at least 1 (got 0)")
        #expect(error["type"] as? String == "invalid_request_error" && error["param"] as? String == "max_tokens" && error["code"] is NSNull)
    }
}
