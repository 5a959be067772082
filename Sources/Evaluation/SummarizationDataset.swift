import Foundation
import ModelFormats

/// One document to summarise and its reference summaries.
public struct SummarizationItem: Sendable, Equatable {
    public var id: String
    public var document: String
    public var references: [String]

    public init(id: String, document: String, references: [String]) {
        self.id = id
        self.document = document
        self.references = references
    }
}

/// The summarisation sets `lowrank summarize` reads (`data/`, copied from `../shared/data`).
public enum SummarizationDataset: Sendable, Equatable {
    /// DialogSum test (500 dialogues, three references each), `data/dialogsum/test.jsonl`.
    case dialogsum
    /// DialogSum train, first 500 (for calibrating rank schedules; never for reported scores).
    case dialogsumTrain
    /// CNN/DailyMail 3.0.0, the first 500 of the **validation** split (no test copy exists here),
    /// `data/cnndm/validation.jsonl`.
    case cnndm
    /// A JSON-lines file: `"id"` (optional), the text in `"dialogue"`, `"article"` or `"document"`,
    /// references in `"references"` (a list), or `"summary"` (+ `"summary2"`, `"summary3"`) or `"highlights"`.
    case file(String)

    public init(argument: String) {
        switch argument {
        case "dialogsum": self = .dialogsum
        case "dialogsum-train": self = .dialogsumTrain
        case "cnndm": self = .cnndm
        default: self = .file(argument)
        }
    }

    public var name: String {
        switch self {
        case .dialogsum: "dialogsum"
        case .dialogsumTrain: "dialogsum-train"
        case .cnndm: "cnndm"
        case .file(let path): path
        }
    }

    public func path(dataDirectory: String) -> String {
        switch self {
        case .dialogsum: dataDirectory + "/dialogsum/test.jsonl"
        case .dialogsumTrain: dataDirectory + "/dialogsum/train.jsonl"
        case .cnndm: dataDirectory + "/cnndm/validation.jsonl"
        case .file(let path): path
        }
    }

    /// Which split the numbers are on, said beside every result.
    public var split: String {
        switch self {
        case .dialogsum: "DialogSum test (all references scored, the best per metric kept)"
        case .dialogsumTrain: "DialogSum train (first 500; calibration only)"
        case .cnndm: "CNN/DailyMail 3.0.0 validation, not test: not comparable to published CNN/DM test numbers"
        case .file(let path): path
        }
    }

    /// The instruction put before the document in the user message. Ours (the papers do not state
    /// theirs): a plain request for the kind of summary the references are.
    public var instruction: String {
        switch self {
        case .dialogsum, .dialogsumTrain: "Summarize the following dialogue in one or two sentences."
        case .cnndm: "Summarize the following news article in three sentences."
        case .file: "Summarize the following text in a few sentences."
        }
    }

    /// The user message for one document.
    public func userMessage(_ document: String) -> String { instruction + "\n\n" + document }

    public func load(dataDirectory: String) throws(SummarizationError) -> [SummarizationItem] {
        let path = path(dataDirectory: dataDirectory)
        guard let data = try? FileBytes.read(path) else { throw .missing(path: path, dataset: name) }
        guard let text = String(data: data, encoding: .utf8) else { throw .malformed(path: path, line: 0, reason: "not UTF-8") }
        var items: [SummarizationItem] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            guard !line.trimmingCharacters(in: .whitespaces).isEmpty else { continue }
            guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
                throw .malformed(path: path, line: number, reason: "not a JSON object")
            }
            guard let document = ["dialogue", "article", "document"].lazy.compactMap({ object[$0] as? String }).first else {
                throw .malformed(path: path, line: number, reason: "no \"dialogue\", \"article\" or \"document\" string")
            }
            var references: [String]
            if let list = object["references"] as? [String] {
                references = list
            } else if let summary = object["summary"] as? String {
                references = [summary] + ["summary2", "summary3"].compactMap { object[$0] as? String }
            } else if let highlights = object["highlights"] as? String {
                references = [highlights]
            } else {
                references = []
            }
            guard !references.isEmpty else {
                throw .malformed(path: path, line: number, reason: "no references (\"references\", \"summary\" or \"highlights\")")
            }
            let id = (object["id"] as? String) ?? (object["id"] as? Int).map(String.init) ?? "line-\(number)"
            items.append(SummarizationItem(id: id, document: document, references: references))
        }
        guard !items.isEmpty else { throw .malformed(path: path, line: 0, reason: "no items") }
        return items
    }
}

public enum SummarizationError: Error, CustomStringConvertible, Equatable {
    case missing(path: String, dataset: String)
    case malformed(path: String, line: Int, reason: String)
    case generation(id: String, reason: String)

    public var description: String {
        switch self {
        case .missing(let path, let dataset):
            "summarisation data \(dataset) not found at \(path) (set --data-directory, or $LOWRANK_DATA, to the folder holding dialogsum/ and cnndm/)"
        case .malformed(let path, let line, let reason):
            line > 0 ? "\(path), line \(line): \(reason)" : "\(path): \(reason)"
        case .generation(let id, let reason): "item \(id): \(reason)"
        }
    }
}
