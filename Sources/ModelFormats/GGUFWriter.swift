import Foundation

/// Writes GGUF version 3 files: metadata in the given order, tensors aligned to 32 bytes.
/// Used to export models (for example an F32 GGUF for llama.cpp) and to build test files.
public struct GGUFWriter {
    public struct Tensor {
        public var name: String
        /// Row-major shape, outermost first (reversed into GGUF dimensions on write).
        public var shape: [Int]
        public var type: ElementType
        public var bytes: [UInt8]

        public init(name: String, shape: [Int], type: ElementType, bytes: [UInt8]) {
            self.name = name
            self.shape = shape
            self.type = type
            self.bytes = bytes
        }

        /// A Float32 tensor.
        public init(name: String, shape: [Int], floats: [Float]) {
            precondition(shape.reduce(1, *) == floats.count, "tensor \(name): shape \(shape) does not match \(floats.count) values")
            self.init(name: name, shape: shape, type: .f32,
                      bytes: floats.withUnsafeBytes { Array($0) })
        }
    }

    public var metadata: [(String, GGUFValue)] = []
    public var tensors: [Tensor] = []
    public var alignment = GGUFFile.defaultAlignment
    public var version: UInt32 = 3

    public init() {}

    public mutating func set(_ key: String, _ value: GGUFValue) {
        if let index = metadata.firstIndex(where: { $0.0 == key }) {
            metadata[index].1 = value
        } else {
            metadata.append((key, value))
        }
    }

    /// The file's bytes.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = Array("GGUF".utf8)
        append(version, to: &out)
        append(UInt64(tensors.count), to: &out)
        append(UInt64(metadata.count), to: &out)
        for (key, value) in metadata {
            appendString(key, to: &out)
            append(value.type.rawValue, to: &out)
            appendValue(value, to: &out)
        }
        var offset = 0
        var offsets: [Int] = []
        for tensor in tensors {
            offsets.append(offset)
            offset += (tensor.bytes.count + alignment - 1) / alignment * alignment
        }
        for (tensor, tensorOffset) in zip(tensors, offsets) {
            appendString(tensor.name, to: &out)
            append(UInt32(tensor.shape.count), to: &out)
            for d in tensor.shape.reversed() { append(UInt64(d), to: &out) }
            append(tensor.type.ggmlTypeID, to: &out)
            append(UInt64(tensorOffset), to: &out)
        }
        pad(&out)
        for tensor in tensors {
            out.append(contentsOf: tensor.bytes)
            pad(&out)
        }
        return out
    }

    public func write(to path: String) throws(ModelFormatError) {
        try AtomicWrite.write(Data(encoded()), to: path)
    }

    private func pad(_ out: inout [UInt8]) {
        while out.count % alignment != 0 { out.append(0) }
    }

    private func append<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    private func appendString(_ string: String, to out: inout [UInt8]) {
        append(UInt64(string.utf8.count), to: &out)
        out.append(contentsOf: string.utf8)
    }

    private func appendValue(_ value: GGUFValue, to out: inout [UInt8]) {
        switch value {
        case .uint8(let v): append(v, to: &out)
        case .int8(let v): append(v, to: &out)
        case .uint16(let v): append(v, to: &out)
        case .int16(let v): append(v, to: &out)
        case .uint32(let v): append(v, to: &out)
        case .int32(let v): append(v, to: &out)
        case .float32(let v): append(v.bitPattern, to: &out)
        case .bool(let v): out.append(v ? 1 : 0)
        case .string(let v): appendString(v, to: &out)
        case .uint64(let v): append(v, to: &out)
        case .int64(let v): append(v, to: &out)
        case .float64(let v): append(v.bitPattern, to: &out)
        case .array(let type, let values):
            append(type.rawValue, to: &out)
            append(UInt64(values.count), to: &out)
            for element in values { appendValue(element, to: &out) }
        }
    }
}
