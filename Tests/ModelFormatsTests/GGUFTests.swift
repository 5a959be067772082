import Foundation
import Testing
import TestSupport
import ModelFormats

@Suite("GGUF reading and writing")
struct GGUFTests {
    static func everyValueType() -> [(String, GGUFValue)] {
        [
            ("u8", .uint8(200)), ("i8", .int8(-5)), ("u16", .uint16(65000)), ("i16", .int16(-300)),
            ("u32", .uint32(4_000_000_000)), ("i32", .int32(-70000)), ("f32", .float32(1.25)), ("bool", .bool(true)),
            ("string", .string("héllo ✓")), ("u64", .uint64(1 << 40)), ("i64", .int64(-(1 << 40))), ("f64", .float64(-2.5e-300)),
            ("strings", .array(.string, [.string("a"), .string(""), .string("ü")])),
            ("ints", .array(.int32, [.int32(1), .int32(-2)])),
            ("empty", .array(.float32, [])),
            ("nested", .array(.array, [.array(.uint8, [.uint8(1), .uint8(2)]), .array(.uint8, [])])),
        ]
    }

    @Test func everyMetadataValueTypeRoundTrips() throws {
        let dir = TemporaryDirectory()
        var writer = GGUFWriter()
        for (key, value) in Self.everyValueType() { writer.set(key, value) }
        writer.tensors = [.init(name: "w", shape: [2, 32], floats: (0..<64).map(Float.init))]
        try writer.write(to: dir.file("a.gguf"))
        let file = try GGUFFile(path: dir.file("a.gguf"))
        #expect(file.version == 3)
        #expect(file.metadataKeys == Self.everyValueType().map(\.0))
        for (key, value) in Self.everyValueType() { #expect(file.metadata[key] == value, "\(key)") }
        let info = try #require(file.tensorInfo(named: "w"))
        #expect(info.shape == [2, 32])
        #expect(info.dimensions == [32, 2])
        #expect(file.floats(of: info) == (0..<64).map(Float.init))
    }

    @Test func tensorsStartAtTheDeclaredAlignment() throws {
        let dir = TemporaryDirectory()
        var writer = GGUFWriter()
        writer.alignment = 64
        writer.set("general.alignment", .uint32(64))
        writer.tensors = [
            .init(name: "a", shape: [3], floats: [1, 2, 3]),
            .init(name: "b", shape: [2, 2], floats: [4, 5, 6, 7]),
        ]
        try writer.write(to: dir.file("a.gguf"))
        let file = try GGUFFile(path: dir.file("a.gguf"))
        #expect(file.alignment == 64)
        #expect(file.dataOffset % 64 == 0)
        #expect(file.tensorInfo(named: "b")?.offset == 64)
        #expect(file.floats(of: file.tensorInfo(named: "b")!) == [4, 5, 6, 7])
    }

    @Test func versionTwoIsRead() throws {
        let dir = TemporaryDirectory()
        var writer = GGUFWriter()
        writer.version = 2
        writer.set("k", .string("v"))
        try writer.write(to: dir.file("v2.gguf"))
        #expect(try GGUFFile(path: dir.file("v2.gguf")).version == 2)
    }

    @Test func quantisedTensorsAreDequantisedOnRead() throws {
        let dir = TemporaryDirectory()
        var writer = GGUFWriter()
        // Two Q8_0 blocks: scale 1 and scale 0.5.
        let block1 = DequantizationTests.half(1) + (0..<32).map { UInt8($0) }
        let block2 = DequantizationTests.half(0.5) + (0..<32).map { UInt8($0) }
        writer.tensors = [.init(name: "q", shape: [2, 32], type: .q8_0, bytes: block1 + block2)]
        try writer.write(to: dir.file("q.gguf"))
        let file = try GGUFFile(path: dir.file("q.gguf"))
        let values = file.floats(of: file.tensorInfo(named: "q")!)
        #expect(values == (0..<32).map(Float.init) + (0..<32).map { Float($0) / 2 })
    }
}
