import Foundation
import Testing
import TestSupport
import ModelFormats

@Suite("safetensors reading and writing")
struct SafetensorsTests {
    func write(_ writer: SafetensorsWriter) throws -> (TemporaryDirectory, String) {
        let dir = TemporaryDirectory()
        try writer.write(to: dir.file("model.safetensors"))
        return (dir, dir.file("model.safetensors"))
    }

    @Test func f32F16AndBF16TensorsRoundTrip() throws {
        var writer = SafetensorsWriter()
        writer.metadata = ["format": "pt"]
        writer.tensors = [
            .init(name: "a.weight", shape: [2, 3], floats: [1, 2, 3, 4, 5, 6]),
            .init(name: "b", shape: [2], type: .f16, bytes: [0x00, 0x3C, 0x00, 0xC0]),
            .init(name: "c", shape: [1], type: .bf16, bytes: [0x49, 0x40]),
        ]
        let (dir, path) = try write(writer)
        _ = dir
        let file = try SafetensorsFile(path: path)
        #expect(file.metadata == ["format": "pt"])
        #expect(file.tensors.map(\.name) == ["a.weight", "b", "c"])
        #expect(file.floats(of: file.tensorInfo(named: "a.weight")!) == [1, 2, 3, 4, 5, 6])
        #expect(file.tensorInfo(named: "a.weight")?.shape == [2, 3])
        #expect(file.floats(of: file.tensorInfo(named: "b")!) == [1, -2])
        #expect(file.floats(of: file.tensorInfo(named: "c")!) == [3.140625])
    }

    @Test func streamedFileEqualsTheInMemoryEncodingAndProducesTensorsOnDemand() throws {
        var writer = SafetensorsWriter()
        writer.tensors = [
            .init(name: "dense", shape: [3], floats: [0.5, -1, 2]),
            .init(name: "generated", shape: [2, 2], type: .f16, byteCount: 8, payload: .produced { buffer in
                for (i, half) in [UInt16(0x3C00), 0x4000, 0x4200, 0xBC00].enumerated() { buffer.storeBytes(of: half.littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            }),
        ]
        let (dir, path) = try write(writer)
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: path))) == writer.encoded())
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["model.safetensors"])  // no temporary left
        let file = try SafetensorsFile(path: path)
        #expect(file.floats(of: file.tensorInfo(named: "generated")!) == [1, 2, 3, -1])
    }

    @Test func aFailedStreamedWriteLeavesNothingBehind() throws {
        var writer = SafetensorsWriter()
        writer.tensors = [.init(name: "x", shape: [1], floats: [1])]
        let dir = TemporaryDirectory()
        #expect(throws: ModelFormatError.self) { try writer.write(to: dir.file("missing-folder/model.safetensors")) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    /// A mapped tensor then starts on a cache line (and the reference's 8-byte padding still holds).
    @Test func theHeaderIsPaddedSoTheTensorDataStartsOnA64ByteBoundary() throws {
        for name in ["x", "model.layers.0.self_attn.q_proj.weight", String(repeating: "n", count: 200)] {
            var writer = SafetensorsWriter()
            writer.tensors = [.init(name: name, shape: [1], floats: [1])]
            let bytes = writer.encoded()
            let length = bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
            #expect(length % 8 == 0)
            #expect((8 + length) % 64 == 0)
            #expect(bytes.count == 8 + Int(length) + 4)
        }
    }

    func expectError(_ bytes: [UInt8], _ check: (ModelFormatError) -> Bool, sourceLocation: SourceLocation = #_sourceLocation) {
        let dir = TemporaryDirectory()
        let path = dir.file("bad.safetensors")
        try! Data(bytes).write(to: URL(fileURLWithPath: path))
        do {
            _ = try SafetensorsFile(path: path)
            Issue.record("accepted", sourceLocation: sourceLocation)
        } catch {
            #expect(check(error), "\(error)", sourceLocation: sourceLocation)
            #expect(error.description.contains(path), sourceLocation: sourceLocation)
        }
    }

    static func file(header: String, data: [UInt8] = []) -> [UInt8] {
        let h = Array(header.utf8)
        return withUnsafeBytes(of: UInt64(h.count).littleEndian) { Array($0) } + h + data
    }

    @Test func truncatedFilesAreReported() {
        var writer = SafetensorsWriter()
        writer.tensors = [.init(name: "x", shape: [4], floats: [1, 2, 3, 4])]
        let bytes = writer.encoded()
        for length in [0, 5, 8, 20, bytes.count - 1] {
            expectError(Array(bytes[0..<length])) {
                if case .truncated = $0 { return true }
                if case .tensorOutOfBounds = $0 { return true }
                return false
            }
        }
    }

    @Test func malformedJSONIsReported() {
        expectError(Self.file(header: "{\"x\": {\"dtype\": ")) { if case .malformedJSON = $0 { true } else { false } }
        expectError(Self.file(header: "[1, 2]")) { if case .malformedJSON = $0 { true } else { false } }
    }

    @Test func invalidUTF8HeaderIsReported() {
        let bytes = Self.file(header: "{}") .enumerated().map { $0.offset == 8 ? 0xFF : $0.element }
        expectError(bytes) { if case .invalidUTF8 = $0 { true } else { false } }
    }

    @Test func unsupportedDtypeNamesTheTensor() {
        let header = #"{"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#
        expectError(Self.file(header: header, data: [UInt8](repeating: 0, count: 8))) {
            $0 == .unsupportedTensorType(path: $0.pathForTest, tensor: "ids", type: "I64")
        }
    }

    @Test func sizeThatContradictsTheShapeIsReported() {
        let header = #"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#
        expectError(Self.file(header: header, data: [UInt8](repeating: 0, count: 8))) {
            if case .invalidTensorShape(_, "w", [3], _) = $0 { true } else { false }
        }
    }

    @Test func dataPastTheEndIsReported() {
        let header = #"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#
        expectError(Self.file(header: header, data: [UInt8](repeating: 0, count: 8))) {
            if case .tensorOutOfBounds(_, "w", _, _) = $0 { true } else { false }
        }
    }

    @Test func overlappingTensorsAreReported() {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        expectError(Self.file(header: header, data: [UInt8](repeating: 0, count: 12))) {
            if case .malformedHeader = $0 { true } else { false }
        }
    }

    @Test func headerLengthPastTheEndIsReported() {
        expectError(withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { Array($0) } + Array("{}".utf8)) {
            if case .truncated = $0 { true } else { false }
        }
    }
}
