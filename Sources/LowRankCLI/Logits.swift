import ArgumentParser
import Foundation
import Llama

struct Logits: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a token sequence through the model and print logits at chosen positions (a verification interface).",
        discussion: """
            JSON shape (stable): {"mean_nll": x, "positions": [{"position": p, "top": [{"id": i, "logit": l}, ...], \
            "logsumexp": s, "first_logits": [16 values]}]}. mean_nll is the mean next-token NLL over the whole sequence.
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var engine: EngineOptions

    @Option(help: "Comma-separated token ids.", transform: parseIntegers)
    var ids: [Int]

    @Option(help: "Comma-separated positions (negative counts from the end; default: the last).", transform: parseIntegers)
    var positions: [Int] = [-1]

    @Option(help: "How many top logits to list per position.")
    var top: Int = 10

    @Flag(help: "Print JSON.")
    var json = false

    struct Output: Encodable {
        struct Entry: Encodable { var id: Int; var logit: Float }
        struct Position: Encodable {
            var position: Int
            var top: [Entry]
            var logsumexp: Double
            var first_logits: [Float]
        }
        var mean_nll: Double?
        var positions: [Position]
    }

    func validate() throws {
        guard !ids.isEmpty else { throw ValidationError("--ids needs at least one token id") }
        guard top >= 1 else { throw ValidationError("--top must be at least 1") }
    }

    func run() throws {
        var loaded = try loadModel(model, engine: engine)
        let runtime = try engine.makeModel(&loaded)
        for id in ids where id < 0 || id >= loaded.configuration.vocabularySize {
            throw CLIError("token id \(id) in --ids is outside the vocabulary (0..<\(loaded.configuration.vocabularySize))")
        }
        let resolved = try positions.map { p -> Int in
            let q = p < 0 ? ids.count + p : p
            guard q >= 0 && q < ids.count else { throw CLIError("--positions \(p) is outside the sequence of \(ids.count) tokens") }
            return q
        }
        let scores = runtime.score(ids, keepLogitsAt: Set(resolved))
        let entries = resolved.map { p -> Output.Position in
            let row = scores.logits[p]!
            let order = row.indices.sorted { (row[$0], -$0) > (row[$1], -$1) }.prefix(top)
            return Output.Position(position: p, top: order.map { Output.Entry(id: $0, logit: row[$0]) },
                                   logsumexp: scores.logSumExp[p]!, first_logits: Array(row.prefix(16)))
        }
        let output = Output(mean_nll: ids.count > 1 ? scores.meanNLL : nil, positions: entries)
        if scores.nonFinitePositions > 0 {
            Terminal.error("warning: \(scores.nonFinitePositions) position(s) had non-finite logits")
        }
        if json {
            try Terminal.printJSON(output)
            return
        }
        if let nll = output.mean_nll { print(String(format: "mean NLL %.6f over %d predicted tokens", nll, ids.count - 1)) }
        for e in entries {
            print("position \(e.position): logsumexp \(String(format: "%.5f", e.logsumexp))")
            for t in e.top {
                print("  \(t.id)\t\(String(format: "%.5f", t.logit))\t\(loaded.tokenizer.tokens[t.id])")
            }
        }
    }
}

func parseIntegers(_ text: String) throws -> [Int] {
    try text.split(separator: ",").map {
        guard let v = Int($0.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("'\($0)' is not an integer") }
        return v
    }
}
