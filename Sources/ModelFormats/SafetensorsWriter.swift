import Foundation

/// Writes safetensors files: header keys sorted, header padded with spaces to a multiple of 8 bytes
/// (as the reference implementation does), tensors packed in the order given.
public struct SafetensorsWriter {
    public struct Tensor {
        public var name: String
        public var shape: [Int]
        public var type: ElementType
        public var bytes: [UInt8]

        public init(name: String, shape: [Int], type: ElementType, bytes: [UInt8]) {
            precondition([.f32, .f16, .bf16].contains(type), "safetensors writer takes F32, F16 or BF16")
            precondition(type.byteCount(elements: shape.reduce(1, *)) == bytes.count, "tensor \(name): bytes do not match shape")
            self.name = name
            self.shape = shape
            self.type = type
            self.bytes = bytes
        }

        public init(name: String, shape: [Int], floats: [Float]) {
            self.init(name: name, shape: shape, type: .f32, bytes: floats.withUnsafeBytes { Array($0) })
        }
    }

    public var tensors: [Tensor] = []
    public var metadata: [String: String] = [:]

    public init() {}

    public func encoded() -> [UInt8] {
        var entries: [String] = []
        var offset = 0
        for tensor in tensors {
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            entries.append("\(jsonString(tensor.name)):{\"dtype\":\"\(tensor.type.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + tensor.bytes.count)]}")
            offset += tensor.bytes.count
        }
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            entries.insert("\"__metadata__\":{\(pairs.joined(separator: ","))}", at: 0)
        }
        var header = Array("{\(entries.joined(separator: ","))}".utf8)
        while header.count % 8 != 0 { header.append(UInt8(ascii: " ")) }
        var out: [UInt8] = []
        out.reserveCapacity(8 + header.count + offset)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: header)
        for tensor in tensors { out.append(contentsOf: tensor.bytes) }
        return out
    }

    public func write(to path: String) throws(ModelFormatError) {
        try AtomicWrite.write(Data(encoded()), to: path)
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
