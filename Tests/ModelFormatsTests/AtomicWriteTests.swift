import Foundation
import Testing
import ModelFormats
import TestSupport

/// Atomic file writes replace the target whole and leave nothing else behind.
@Suite("Atomic writes")
struct AtomicWriteTests {
    @Test func repeatedWritesLeaveOnlyTheLastVersionOfTheFile() throws {
        let dir = TemporaryDirectory()
        for i in 0..<5 { try AtomicWrite.write(Data("version \(i)".utf8), to: dir.file("out.json")) }
        #expect(try String(contentsOfFile: dir.file("out.json"), encoding: .utf8) == "version 4")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["out.json"])
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
