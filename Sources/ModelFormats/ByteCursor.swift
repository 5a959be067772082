/// A bounds-checked little-endian reader over a byte buffer. Every read that would pass the end
/// throws `.truncated` naming what was being read, so corrupt files never crash or hang.
struct ByteCursor {
    let bytes: UnsafeRawBufferPointer
    let path: String
    var offset: Int = 0

    init(bytes: UnsafeRawBufferPointer, path: String, offset: Int = 0) {
        self.bytes = bytes
        self.path = path
        self.offset = offset
    }

    var remaining: Int { bytes.count - offset }

    mutating func require(_ count: Int, _ context: @autoclosure () -> String) throws(ModelFormatError) {
        guard count >= 0, count <= remaining else {
            throw .truncated(path: path, needed: count, available: remaining, context: context())
        }
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ context: @autoclosure () -> String) throws(ModelFormatError) -> T {
        try require(MemoryLayout<T>.size, context())
        let value = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: value)
    }

    mutating func readFloat(_ context: @autoclosure () -> String) throws(ModelFormatError) -> Float {
        Float(bitPattern: try read(UInt32.self, context()))
    }

    mutating func readDouble(_ context: @autoclosure () -> String) throws(ModelFormatError) -> Double {
        Double(bitPattern: try read(UInt64.self, context()))
    }

    mutating func readBytes(_ count: Int, _ context: @autoclosure () -> String) throws(ModelFormatError) -> UnsafeRawBufferPointer {
        try require(count, context())
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
        offset += count
        return slice
    }

    /// A GGUF string: u64 length, then that many UTF-8 bytes (no terminator).
    mutating func readString(_ context: @autoclosure () -> String) throws(ModelFormatError) -> String {
        let length = try read(UInt64.self, context())
        guard length <= UInt64(remaining) else {
            throw .truncated(path: path, needed: Int(clamping: length), available: remaining, context: context())
        }
        let raw = try readBytes(Int(length), context())
        guard let string = String(validating: raw, as: UTF8.self) else {
            throw .invalidUTF8(path: path, context: context())
        }
        return string
    }
}
