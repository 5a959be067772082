import Foundation
import Testing
import TestSupport
import ModelFormats

/// Every kind of damaged GGUF gives a typed error that names the file (and the tensor or key), never
/// a crash, a hang or a half-read file.
@Suite("GGUF bad input")
struct GGUFBadInputTests {
    func validFile() -> [UInt8] {
        var writer = GGUFWriter()
        writer.set("general.architecture", .string("llama"))
        writer.set("tokens", .array(.string, [.string("a"), .string("b")]))
        writer.tensors = [.init(name: "w", shape: [4, 32], floats: (0..<128).map(Float.init))]
        return writer.encoded()
    }

    func read(_ bytes: [UInt8]) throws(ModelFormatError) -> GGUFFile {
        let dir = TemporaryDirectory()
        let path = dir.file("m.gguf")
        try! Data(bytes).write(to: URL(fileURLWithPath: path))
        return try GGUFFile(path: path)
    }

    @Test func everyTruncationIsReportedAsTruncatedOrOutOfBounds() {
        let bytes = validFile()
        // Cut the file at every length short of the end.
        for length in stride(from: 0, to: bytes.count, by: 1) {
            do {
                _ = try read(Array(bytes[0..<length]))
                Issue.record("a file cut at \(length) of \(bytes.count) bytes was accepted")
            } catch {
                switch error {
                case .truncated(let path, _, _, _), .tensorOutOfBounds(let path, _, _, _):
                    #expect(path.hasSuffix("m.gguf"))
                default:
                    Issue.record("cut at \(length): unexpected error \(error)")
                }
            }
        }
    }

    @Test func wrongMagicSaysWhatTheFileIsNot() {
        var bytes = validFile()
        bytes[0] = UInt8(ascii: "X")
        do { _ = try read(bytes); Issue.record("accepted") } catch {
            #expect(error == .badMagic(path: error.pathForTest, found: "58 47 55 46", expected: "GGUF"))
            #expect(error.description.contains("not a GGUF file"))
        }
    }

    @Test(arguments: [1, 4, 0x0300_0000])
    func unsupportedVersionsAreRejected(version: Int) {
        var bytes = validFile()
        withUnsafeBytes(of: UInt32(version).littleEndian) { for i in 0..<4 { bytes[4 + i] = $0[i] } }
        do {
            _ = try read(bytes)
            Issue.record("version \(version) accepted")
        } catch {
            #expect(error == .unsupportedVersion(path: error.pathForTest, version: version, supported: [2, 3]))
        }
    }

    @Test func unsupportedTensorTypeNamesTensorAndType() throws {
        var writer = GGUFWriter()
        // Q5_0 (id 6) blocks are 22 bytes; write the type id by hand.
        writer.tensors = [.init(name: "blk.0.attn_q.weight", shape: [32], type: .q4_0, bytes: [UInt8](repeating: 0, count: 18))]
        var bytes = writer.encoded()
        let typeOffset = try #require(findTypeField(in: bytes, tensorName: "blk.0.attn_q.weight"))
        bytes[typeOffset] = 6
        do { _ = try read(bytes); Issue.record("accepted") } catch {
            #expect(error == .unsupportedTensorType(path: error.pathForTest, tensor: "blk.0.attn_q.weight", type: "Q5_0"))
            #expect(error.description.contains("Q5_0"))
        }
    }

    /// Offset of the u32 type field of a tensor info: after name, n_dims and the dims.
    func findTypeField(in bytes: [UInt8], tensorName: String) -> Int? {
        let name = Array(tensorName.utf8)
        for i in 0..<(bytes.count - name.count) where Array(bytes[i..<(i + name.count)]) == name {
            let dimsStart = i + name.count + 4
            let rank = Int(bytes[i + name.count])
            return dimsStart + 8 * rank
        }
        return nil
    }

    @Test func tensorDataPastTheEndIsReported() throws {
        var bytes = validFile()
        bytes.removeLast(16)  // the file now ends inside tensor "w"
        do {
            _ = try read(bytes)
            Issue.record("accepted")
        } catch {
            guard case .tensorOutOfBounds(_, let tensor, _, _) = error else { Issue.record("\(error)"); return }
            #expect(tensor == "w")
        }
    }

    @Test func invalidUTF8InAKeyIsReported() throws {
        var bytes = validFile()
        let key = Array("general.architecture".utf8)
        let i = try #require((0..<bytes.count).first { Array(bytes[$0..<($0 + key.count)]) == key })
        bytes[i] = 0xFF
        do { _ = try read(bytes); Issue.record("accepted") } catch {
            guard case .invalidUTF8 = error else { Issue.record("\(error)"); return }
        }
    }

    @Test func impossibleArrayLengthIsRejectedBeforeAllocating() throws {
        var writer = GGUFWriter()
        writer.set("big", .array(.uint64, [.uint64(1)]))
        var bytes = writer.encoded()
        // The array length (u64) sits right after the element type; make it 2^60.
        let key = Array("big".utf8)
        let i = try #require((0..<bytes.count).first { Array(bytes[$0..<($0 + key.count)]) == key })
        let lengthOffset = i + key.count + 4 + 4
        withUnsafeBytes(of: UInt64(1 << 60).littleEndian) { for j in 0..<8 { bytes[lengthOffset + j] = $0[j] } }
        do { _ = try read(bytes); Issue.record("accepted") } catch {
            guard case .truncated(_, _, _, let context) = error else { Issue.record("\(error)"); return }
            #expect(context.contains("big"))
        }
    }

    @Test func nonPowerOfTwoAlignmentIsRejected() {
        var writer = GGUFWriter()
        writer.set("general.alignment", .uint32(48))
        do { _ = try read(writer.encoded()); Issue.record("accepted") } catch {
            #expect(error == .invalidAlignment(path: error.pathForTest, alignment: 48))
        }
    }

    @Test func duplicateTensorNamesAreRejected() {
        var writer = GGUFWriter()
        writer.tensors = [.init(name: "w", shape: [1], floats: [1]), .init(name: "w", shape: [1], floats: [2])]
        do { _ = try read(writer.encoded()); Issue.record("accepted") } catch {
            #expect(error == .duplicateTensor(path: error.pathForTest, tensor: "w"))
        }
    }

    @Test func rowsThatAreNotWholeBlocksAreRejected() {
        var writer = GGUFWriter()
        writer.tensors = [.init(name: "q", shape: [1, 16], type: .q8_0, bytes: [UInt8](repeating: 0, count: 34))]
        do { _ = try read(writer.encoded()); Issue.record("accepted") } catch {
            guard case .invalidTensorShape(_, let tensor, _, _) = error else { Issue.record("\(error)"); return }
            #expect(tensor == "q")
        }
    }

    @Test func missingFileNamesThePath() {
        do { _ = try GGUFFile(path: "/nonexistent/model.gguf"); Issue.record("accepted") } catch {
            guard case .cannotOpen(let path, _) = error else { Issue.record("\(error)"); return }
            #expect(path == "/nonexistent/model.gguf")
        }
    }
}

extension ModelFormatError {
    /// The path an error carries (tests compare the rest of the case).
    var pathForTest: String {
        let mirror = Mirror(reflecting: self)
        guard let payload = mirror.children.first?.value else { return "" }
        return Mirror(reflecting: payload).children.first { $0.label == "path" }?.value as? String ?? ""
    }
}
