import Foundation

/// Writes safetensors files: header keys sorted, header padded with spaces so the tensor data
/// starts on a 64-byte boundary (the reference implementation pads to 8; the format allows any
/// trailing whitespace), tensors packed in the order given. A mapped tensor whose offset is a
/// multiple of 64 (every tensor when the ones before it are, as in Llama checkpoints) is then read
/// by the decode kernels from cache-line aligned rows (`AlignedBuffer` says why that matters).
///
/// `write(to:)` streams one tensor at a time to a temporary file and renames it into place, so
/// writing a multi-gigabyte checkpoint never holds a second copy of the weights in memory.
public struct SafetensorsWriter {
    public struct Tensor {
        /// Where a tensor's little-endian bytes come from when the file is written.
        public enum Payload {
            case bytes([UInt8])
            /// Float32 values, written as they are (the array is shared, not copied).
            case floats([Float])
            /// Filled on demand into a buffer of exactly `byteCount` bytes, one tensor at a time
            /// (for generated weights that should never all be in memory at once).
            case produced((UnsafeMutableRawBufferPointer) -> Void)
        }

        public var name: String
        public var shape: [Int]
        public var type: ElementType
        public var byteCount: Int
        public var payload: Payload

        public init(name: String, shape: [Int], type: ElementType, bytes: [UInt8]) {
            self.init(name: name, shape: shape, type: type, byteCount: bytes.count, payload: .bytes(bytes))
        }

        public init(name: String, shape: [Int], floats: [Float]) {
            self.init(name: name, shape: shape, type: .f32, byteCount: floats.count * 4, payload: .floats(floats))
        }

        public init(name: String, shape: [Int], type: ElementType, byteCount: Int, payload: Payload) {
            precondition([.f32, .f16, .bf16].contains(type), "safetensors writer takes F32, F16 or BF16")
            precondition(type.byteCount(elements: shape.reduce(1, *)) == byteCount, "tensor \(name): bytes do not match shape")
            self.name = name
            self.shape = shape
            self.type = type
            self.byteCount = byteCount
            self.payload = payload
        }

        /// Calls `body` with the tensor's bytes (produced on demand if needed).
        func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
            switch payload {
            case .bytes(let b): return try b.withUnsafeBytes(body)
            case .floats(let f): return try f.withUnsafeBytes(body)
            case .produced(let fill):
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: byteCount, alignment: 64)
                defer { buffer.deallocate() }
                fill(buffer)
                return try body(UnsafeRawBufferPointer(buffer))
            }
        }
    }

    public var tensors: [Tensor] = []
    public var metadata: [String: String] = [:]

    public init() {}

    /// The 8-byte length and the padded JSON header.
    func headerBytes() -> [UInt8] {
        var entries: [String] = []
        var offset = 0
        for tensor in tensors {
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            entries.append("\(jsonString(tensor.name)):{\"dtype\":\"\(tensor.type.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + tensor.byteCount)]}")
            offset += tensor.byteCount
        }
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            entries.insert("\"__metadata__\":{\(pairs.joined(separator: ","))}", at: 0)
        }
        var header = Array("{\(entries.joined(separator: ","))}".utf8)
        while (8 + header.count) % 64 != 0 { header.append(UInt8(ascii: " ")) }
        var out: [UInt8] = []
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: header)
        return out
    }

    /// The whole file in memory (tests and small files).
    public func encoded() -> [UInt8] {
        var out = headerBytes()
        for tensor in tensors { tensor.withBytes { out.append(contentsOf: $0) } }
        return out
    }

    /// Streams the file to a temporary sibling, then renames it over `path`.
    public func write(to path: String) throws(ModelFormatError) {
        let header = headerBytes()
        try AtomicWrite.stream(to: path) { (sink: (UnsafeRawBufferPointer) throws(ModelFormatError) -> Void) throws(ModelFormatError) in
            // (withBytes is not typed-throws, so each piece's error travels in a Result.)
            try header.withUnsafeBytes { b in Result { () throws(ModelFormatError) in try sink(b) } }.get()
            for tensor in tensors { try tensor.withBytes { b in Result { () throws(ModelFormatError) in try sink(b) } }.get() }
        }
    }
}

/// A JSON string literal with the escapes JSON requires.
func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 {
                out += "\\u" + String(scalar.value, radix: 16).leftPadded(to: 4)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
