import Foundation

/// One tensor's entry in a safetensors header.
public struct SafetensorsTensorInfo: Sendable, Equatable {
    public let name: String
    /// Row-major shape, outermost first.
    public let shape: [Int]
    public let type: ElementType
    /// Byte range within the data section (after the header).
    public let begin: Int
    public let end: Int

    public var elementCount: Int { shape.reduce(1, *) }
}

/// A memory-mapped safetensors file: u64 little-endian header length N, N bytes of JSON
/// (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`), then data.
/// Reads F32, F16 and BF16 tensors.
public struct SafetensorsFile: Sendable {
    public let path: String
    public let tensors: [SafetensorsTensorInfo]
    public let metadata: [String: String]
    private let file: MappedFile
    private let dataOffset: Int
    private let index: [String: Int]

    static let dtypes: [String: ElementType] = ["F32": .f32, "F16": .f16, "BF16": .bf16]

    public init(path: String) throws(ModelFormatError) {
        let file = try MappedFile(path: path)
        self.file = file
        self.path = path
        var cursor = ByteCursor(bytes: file.bytes, path: path)
        let headerLength = try cursor.read(UInt64.self, "the header length")
        guard headerLength <= UInt64(cursor.remaining) else {
            throw .truncated(path: path, needed: Int(clamping: headerLength), available: cursor.remaining, context: "the JSON header")
        }
        let headerBytes = try cursor.readBytes(Int(headerLength), "the JSON header")
        dataOffset = cursor.offset
        let dataSize = file.size - dataOffset
        guard String(validating: headerBytes, as: UTF8.self) != nil else {
            throw .invalidUTF8(path: path, context: "the JSON header")
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(headerBytes))
        } catch {
            throw .malformedJSON(path: path, reason: "the header does not parse: \(error.localizedDescription)")
        }
        guard let header = object as? [String: Any] else {
            throw .malformedJSON(path: path, reason: "the header is not a JSON object")
        }
        var metadata: [String: String] = [:]
        var infos: [SafetensorsTensorInfo] = []
        for (name, entry) in header {
            if name == "__metadata__" {
                guard let dict = entry as? [String: Any] else {
                    throw .malformedHeader(path: path, reason: "__metadata__ is not an object")
                }
                for (key, value) in dict {
                    guard let string = value as? String else {
                        throw .malformedHeader(path: path, reason: "__metadata__['\(key)'] is not a string")
                    }
                    metadata[key] = string
                }
                continue
            }
            guard let dict = entry as? [String: Any],
                  let dtype = dict["dtype"] as? String,
                  let shapeValues = dict["shape"] as? [Any],
                  let offsetValues = dict["data_offsets"] as? [Any], offsetValues.count == 2
            else {
                throw .malformedHeader(path: path, reason: "tensor '\(name)' needs dtype, shape and two data_offsets")
            }
            guard let type = Self.dtypes[dtype] else {
                throw .unsupportedTensorType(path: path, tensor: name, type: dtype)
            }
            let shape = try shapeValues.map { value throws(ModelFormatError) -> Int in
                guard let n = (value as? NSNumber)?.intValue, n >= 0, (value as? NSNumber)?.doubleValue == Double(n) else {
                    throw .invalidTensorShape(path: path, tensor: name, shape: [], reason: "shape entries must be non-negative integers")
                }
                return n
            }
            let offsets = try offsetValues.map { value throws(ModelFormatError) -> Int in
                guard let n = (value as? NSNumber)?.intValue, n >= 0 else {
                    throw .malformedHeader(path: path, reason: "tensor '\(name)' has a negative or non-integer data offset")
                }
                return n
            }
            let count = shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).partialValue }
            guard offsets[1] >= offsets[0], offsets[1] - offsets[0] == type.byteCount(elements: count) else {
                throw .invalidTensorShape(path: path, tensor: name, shape: shape,
                                          reason: "\(offsets[1] - offsets[0]) bytes do not hold \(count) \(dtype) values")
            }
            guard offsets[1] <= dataSize else {
                throw .tensorOutOfBounds(path: path, tensor: name, end: dataOffset + offsets[1], fileSize: file.size)
            }
            infos.append(SafetensorsTensorInfo(name: name, shape: shape, type: type, begin: offsets[0], end: offsets[1]))
        }
        infos.sort { ($0.begin, $0.name) < ($1.begin, $1.name) }
        for (a, b) in zip(infos, infos.dropFirst()) where b.begin < a.end {
            throw .malformedHeader(path: path, reason: "tensors '\(a.name)' and '\(b.name)' overlap")
        }
        tensors = infos
        self.metadata = metadata
        index = Dictionary(uniqueKeysWithValues: infos.enumerated().map { ($1.name, $0) })
    }

    public func tensorInfo(named name: String) -> SafetensorsTensorInfo? {
        index[name].map { tensors[$0] }
    }

    public func rawBytes(of info: SafetensorsTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[(dataOffset + info.begin)..<(dataOffset + info.end)])
    }

    /// The mapping the tensors' bytes live in (keep it to use `rawBytes` beyond this value's life).
    public var mapping: MappedFile { file }

    public func floats(of info: SafetensorsTensorInfo) -> [Float] {
        Dequantization.dequantize(info.type, source: rawBytes(of: info), count: info.elementCount)
    }
}
