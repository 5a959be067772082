import Foundation

/// One multiple-choice item as lm-evaluation-harness builds its requests: choice i is scored as
/// log p(continuation_i | context_i). Most tasks share one context and vary the continuation
/// (" " + choice); WinoGrande varies the context and shares the continuation ("partial scoring").
public struct MultipleChoiceItem: Equatable, Sendable {
    public var contexts: [String]
    public var continuations: [String]
    /// The choice strings, whose character (Unicode scalar) counts normalise `acc_norm`.
    public var choices: [String]
    public var gold: Int

    public init(contexts: [String], continuations: [String], choices: [String], gold: Int) {
        precondition(contexts.count == 1 || contexts.count == choices.count)
        precondition(continuations.count == 1 || continuations.count == choices.count)
        self.contexts = contexts
        self.continuations = continuations
        self.choices = choices
        self.gold = gold
    }

    public var choiceCount: Int { choices.count }
    public func context(_ i: Int) -> String { contexts.count == 1 ? contexts[0] : contexts[i] }
    public func continuation(_ i: Int) -> String { continuations.count == 1 ? continuations[0] : continuations[i] }
}

/// The seven zero-shot tasks of the compression papers, with lm-evaluation-harness's prompts
/// (`lm_eval/tasks/<task>/*.yaml` and utils, as summarised in ../shared/data/README.md §5).
public enum ZeroShotTask: String, CaseIterable, Codable, Sendable {
    case arcEasy = "arc_easy"
    case arcChallenge = "arc_challenge"
    case hellaswag
    case openbookqa
    case winogrande
    case mathqa
    case piqa

    public var fileName: String { rawValue + ".jsonl" }

    /// WinoGrande reports only `acc`; the others report `acc` and `acc_norm`.
    public var hasNormalisedAccuracy: Bool { self != .winogrande }

    /// The metric the LLM-compression tables most often quote for this task (README §5:
    /// acc for ARC-e, PIQA, WinoGrande, MathQA; acc_norm for ARC-c, HellaSwag, OpenBookQA).
    public var paperMetricIsNormalised: Bool { [.arcChallenge, .hellaswag, .openbookqa].contains(self) }

    /// Builds the item of one JSON line of `data/zeroshot/<task>.jsonl`.
    public func item(fromJSONLine line: String, lineNumber: Int, path: String) throws(ZeroShotError) -> MultipleChoiceItem {
        guard let data = line.data(using: .utf8), let object = try? JSONSerialization.jsonObject(with: data), let doc = object as? [String: Any] else {
            throw .malformedLine(path: path, line: lineNumber, reason: "not a JSON object")
        }
        func string(_ key: String) throws(ZeroShotError) -> String {
            guard let s = doc[key] as? String else { throw .malformedLine(path: path, line: lineNumber, reason: "missing string '\(key)'") }
            return s
        }
        func choicesObject() throws(ZeroShotError) -> (text: [String], label: [String]) {
            guard let c = doc["choices"] as? [String: Any], let text = c["text"] as? [String], let label = c["label"] as? [String], text.count == label.count, !text.isEmpty else {
                throw .malformedLine(path: path, line: lineNumber, reason: "'choices' needs equal-length 'text' and 'label' arrays")
            }
            return (text, label)
        }
        func goldIndex(_ index: Int?, of count: Int) throws(ZeroShotError) -> Int {
            guard let index, index >= 0, index < count else { throw .malformedLine(path: path, line: lineNumber, reason: "the answer is not one of the \(count) choices") }
            return index
        }
        switch self {
        case .arcEasy, .arcChallenge:
            let choices = try choicesObject()
            let context = "Question: \(try string("question"))\nAnswer:"
            return .init(shared: context, choices: choices.text, gold: try goldIndex(choices.label.firstIndex(of: try string("answerKey")), of: choices.text.count))
        case .openbookqa:
            let choices = try choicesObject()
            let key = String(try string("answerKey").drop { $0.isWhitespace })  // answerKey.lstrip()
            return .init(shared: try string("question_stem"), choices: choices.text, gold: try goldIndex(choices.label.firstIndex(of: key), of: choices.text.count))
        case .piqa:
            let choices = [try string("sol1"), try string("sol2")]
            return .init(shared: "Question: \(try string("goal"))\nAnswer:", choices: choices, gold: try goldIndex(doc["label"] as? Int, of: 2))
        case .hellaswag:
            guard let endings = doc["endings"] as? [String], !endings.isEmpty else {
                throw .malformedLine(path: path, line: lineNumber, reason: "missing 'endings'")
            }
            let ctx = try string("ctx_a") + " " + HarnessText.pythonCapitalize(try string("ctx_b"))
            let query = HarnessText.hellaswagPreprocess(try string("activity_label") + ": " + ctx)
            return .init(shared: query, choices: endings.map(HarnessText.hellaswagPreprocess), gold: try goldIndex(Int(try string("label")), of: endings.count))
        case .winogrande:
            let sentence = try string("sentence")
            guard let blank = sentence.firstIndex(of: "_") else { throw .malformedLine(path: path, line: lineNumber, reason: "the sentence has no '_'") }
            let options = [try string("option1"), try string("option2")]
            let prefix = String(sentence[..<blank])
            let after = String(sentence[sentence.index(after: blank)...]).trimmingCharacters(in: .whitespacesAndNewlines)
            return MultipleChoiceItem(contexts: options.map { prefix + $0 }, continuations: [" " + after], choices: options,
                                      gold: try goldIndex(["1": 0, "2": 1][try string("answer")], of: 2))
        case .mathqa:
            let choices = HarnessText.mathqaChoices(try string("options"))
            return .init(shared: "Question: \(try string("Problem"))\nAnswer:", choices: choices,
                         gold: try goldIndex(["a", "b", "c", "d", "e"].firstIndex(of: try string("correct")), of: choices.count))
        }
    }

    /// `<dir>/zeroshot/<task>.jsonl`, or the `.gz` beside it when the plain file is absent.
    public func filePath(dataDirectory: String) -> String {
        let plain = dataDirectory + "/zeroshot/" + fileName
        return FileManager.default.fileExists(atPath: plain) ? plain : plain + ".gz"
    }

    /// A task file's text; `.gz` files (HellaSwag is 9 MB as plain JSON lines) are decompressed by
    /// the system's `gzip -dc`, present on every Debian machine.
    static func readText(_ path: String) throws -> String {
        guard path.hasSuffix(".gz") else { return try String(contentsOfFile: path, encoding: .utf8) }
        guard FileManager.default.fileExists(atPath: path) else { throw ZeroShotError.missingFile(path: String(path.dropLast(3))) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["gzip", "-dc", path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let text = String(data: data, encoding: .utf8) else {
            throw ZeroShotError.malformedLine(path: path, line: 0, reason: "gzip -dc failed (status \(process.terminationStatus)); the file is damaged")
        }
        return text
    }

    /// Every item of the task's file (`<task>.jsonl`, or `<task>.jsonl.gz`), in file order.
    public func load(dataDirectory: String) throws(ZeroShotError) -> [MultipleChoiceItem] {
        let path = filePath(dataDirectory: dataDirectory)
        let plain = dataDirectory + "/zeroshot/" + fileName
        let text: String
        do {
            text = try Self.readText(path)
        } catch let error as ZeroShotError {
            throw error
        } catch {
            throw .missingFile(path: plain)
        }
        var items: [MultipleChoiceItem] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            items.append(try item(fromJSONLine: String(line), lineNumber: i + 1, path: path))
        }
        guard !items.isEmpty else { throw .malformedLine(path: path, line: 0, reason: "the file has no items") }
        return items
    }
}

extension MultipleChoiceItem {
    /// One shared context; continuation i is " " + choice i (the harness's target delimiter).
    init(shared context: String, choices: [String], gold: Int) {
        self.init(contexts: [context], continuations: choices.map { " " + $0 }, choices: choices, gold: gold)
    }
}

public enum ZeroShotError: Error, Equatable, CustomStringConvertible, Sendable {
    case missingFile(path: String)
    case malformedLine(path: String, line: Int, reason: String)
    case unknownTask(String)

    public var description: String {
        switch self {
        case .missingFile(let path): "\(path): cannot read the task file (copy ../shared/data/zeroshot into data/ or pass --data-directory)"
        case .malformedLine(let path, let line, let reason): "\(path):\(line): \(reason)"
        case .unknownTask(let name): "unknown task '\(name)'; choose from \(ZeroShotTask.allCases.map(\.rawValue).joined(separator: ", "))"
        }
    }
}
