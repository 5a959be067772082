import Foundation
import ModelFormats

/// Evaluation and calibration text, joined as the reference protocols join it.
public enum Corpus: Sendable, Equatable {
    /// WikiText-2 raw test, `data/wikitext2/test.txt`.
    case wikitext2
    /// The C4 train sample, `data/c4/train_sample.jsonl`.
    case c4
    /// A UTF-8 text file (used as is) or a `.jsonl` file with a `"text"` field per line.
    case file(String)

    public init(argument: String) {
        switch argument {
        case "wikitext2": self = .wikitext2
        case "c4": self = .c4
        default: self = .file(argument)
        }
    }

    public var name: String {
        switch self {
        case .wikitext2: "wikitext2"
        case .c4: "c4"
        case .file(let path): path
        }
    }

    /// The file this corpus reads, found under `dataDirectory`.
    public func path(dataDirectory: String) -> String {
        switch self {
        case .wikitext2: dataDirectory + "/wikitext2/test.txt"
        case .c4: dataDirectory + "/c4/train_sample.jsonl"
        case .file(let path): path
        }
    }

    /// How the text is assembled, for reports.
    public var joining: String {
        switch self {
        case .wikitext2: "Hugging Face rows of wiki.test.raw (blank lines as empty rows) joined with \"\\n\\n\""
        case .c4: "the \"text\" of each JSON line joined with \"\\n\\n\" (C4 train sample, not held out)"
        case .file(let path): path.hasSuffix(".jsonl") ? "the \"text\" of each JSON line joined with \"\\n\\n\"" : "the file as is"
        }
    }

    /// The text. WikiText-2: each line of the raw file (with its "\n") is one Hugging Face row, a
    /// blank line " \n" being the empty row, and rows are joined with "\n\n" (SVD-LLM / GPTQ,
    /// algorithms.md §1.7). JSON lines: the `text` fields joined with "\n\n".
    public func text(dataDirectory: String) throws -> String {
        let path = path(dataDirectory: dataDirectory)
        guard let data = try? FileBytes.read(path) else {
            throw CorpusError.missing(path: path, corpus: name)
        }
        guard let raw = String(data: data, encoding: .utf8) else { throw CorpusError.invalidUTF8(path: path) }
        switch self {
        case .wikitext2:
            var rows: [Substring] = []
            var start = raw.startIndex
            while start < raw.endIndex {
                let end = raw[start...].firstIndex(of: "\n").map { raw.index(after: $0) } ?? raw.endIndex
                let line = raw[start..<end]
                rows.append(line == " \n" ? "" : line)
                start = end
            }
            return rows.joined(separator: "\n\n")
        case .c4:
            return try Self.jsonLinesText(raw, path: path)
        case .file(let p):
            return p.hasSuffix(".jsonl") ? try Self.jsonLinesText(raw, path: path) : raw
        }
    }

    static func jsonLinesText(_ raw: String, path: String) throws -> String {
        var texts: [String] = []
        for (number, line) in raw.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let text = object["text"] as? String
            else { throw CorpusError.malformedLine(path: path, line: number + 1) }
            texts.append(text)
        }
        return texts.joined(separator: "\n\n")
    }
}

public enum CorpusError: Error, CustomStringConvertible, Equatable {
    case missing(path: String, corpus: String)
    case invalidUTF8(path: String)
    case malformedLine(path: String, line: Int)

    public var description: String {
        switch self {
        case .missing(let path, let corpus):
            "\(path): corpus '\(corpus)' not found; run from the repository (its data/ folder) or set LOWRANK_DATA to the data folder."
        case .invalidUTF8(let path): "\(path): not valid UTF-8."
        case .malformedLine(let path, let line): "\(path): line \(line) is not a JSON object with a \"text\" string."
        }
    }
}

/// Where `data/` is: `$LOWRANK_DATA`, else `./data`, else the `data/` of the repository the binary
/// was built in (found by walking up from the executable).
public func defaultDataDirectory() -> String {
    if let env = ProcessInfo.processInfo.environment["LOWRANK_DATA"] { return env }
    let fm = FileManager.default
    if fm.fileExists(atPath: "data/wikitext2") { return "data" }
    var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<6 {
        if fm.fileExists(atPath: url.appendingPathComponent("data/wikitext2").path) { return url.appendingPathComponent("data").path }
        url = url.deletingLastPathComponent()
    }
    return "data"
}
