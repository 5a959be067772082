import Evaluation
import Foundation
import Llama
import LowRank
import ModelFormats
import Tokenization

/// Every parser lowrank runs on files from strangers, as a fuzz target: the bytes go to a file (the
/// parsers read paths, most through a memory map) and the parser must return or throw its typed
/// error, never crash, hang or allocate what the file cannot justify.
enum FuzzTarget: String, CaseIterable {
    case gguf
    case safetensors
    case tokenizerJSON = "tokenizer-json"
    case configJSON = "config-json"
    case compressionJSON = "compression-json"
    case rankSchedule = "rank-schedule"
    case zeroShotLine = "zeroshot-line"
    case summarizationLines = "summarization-lines"

    /// A scratch directory per process (in /dev/shm when it exists: no disk writes per input).
    static let scratch: String = {
        let root = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let path = root + "/lowrank-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()

    /// Parses `bytes` as this target's format; errors are the expected outcome for most inputs.
    func run(_ bytes: UnsafeRawBufferPointer) {
        let data = Data(bytes)
        switch self {
        case .gguf:
            let path = write(data, "model.gguf")
            if let file = try? GGUFFile(path: path) {
                _ = try? BPETokenizer(gguf: file)
                _ = try? GGUFLoader.load(path: path)
            }
        case .safetensors:
            _ = try? SafetensorsFile(path: write(data, "model.safetensors"))
        case .tokenizerJSON:
            _ = try? BPETokenizer(tokenizerJSON: write(data, "tokenizer.json"))
        case .configJSON:
            _ = write(data, "config.json")
            _ = try? HuggingFaceLoader.configuration(directory: Self.scratch)
        case .compressionJSON:
            _ = write(data, "compression.json")
            _ = try? CompressionRecord.read(directory: Self.scratch)
        case .rankSchedule:
            _ = try? RankScheduleFile.read(write(data, "schedule.json"))
        case .zeroShotLine:
            let line = String(decoding: data, as: UTF8.self)
            for task in ZeroShotTask.allCases { _ = try? task.item(fromJSONLine: line, lineNumber: 1, path: "fuzz.jsonl") }
        case .summarizationLines:
            _ = write(data, "summaries.jsonl")
            _ = try? SummarizationDataset.file(Self.scratch + "/summaries.jsonl").load(dataDirectory: Self.scratch)
        }
    }

    private func write(_ data: Data, _ name: String) -> String {
        let path = Self.scratch + "/" + name
        _ = FileManager.default.createFile(atPath: path, contents: data)
        return path
    }
}
