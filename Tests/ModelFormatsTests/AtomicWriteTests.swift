import Foundation
import Testing
import ModelFormats
import TestSupport

/// Atomic file writes stage beside the target and leave nothing else behind.
@Suite("Atomic writes")
struct AtomicWriteTests {
    static func leftovers() throws -> Set<String> {
        Set(try FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory()).filter { $0.hasPrefix("TemporaryDirectory.") })
    }

    /// Foundation's `.atomic` option stages in a `/tmp/TemporaryDirectory.*` it never removes; ours
    /// stages in the target's directory and renames.
    @Test func aWriteLeavesOnlyTheFileAndNoStagingDirectory() throws {
        let dir = TemporaryDirectory()
        let before = try Self.leftovers()
        for i in 0..<5 { try AtomicWrite.write(Data("version \(i)".utf8), to: dir.file("out.json")) }
        #expect(try String(contentsOfFile: dir.file("out.json"), encoding: .utf8) == "version 4")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["out.json"])
        #expect(try Self.leftovers().subtracting(before).isEmpty)
        try AtomicWrite.write(Data(), to: dir.file("empty"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir.file("empty"))).isEmpty)
    }

    @Test func aWriteIntoAMissingDirectoryNamesThePath() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("no/such/dir/out.json")
        #expect {
            try AtomicWrite.write(Data("x".utf8), to: path)
        } throws: { error in
            "\(error)".contains(path)
        }
    }
}
