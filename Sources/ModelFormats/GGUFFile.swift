/// One tensor's entry in a GGUF file.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    /// GGUF order: `dimensions[0]` is the innermost (contiguous) axis.
    public let dimensions: [Int]
    public let type: ElementType
    /// Offset from the start of the data section.
    public let offset: Int

    /// Row-major shape, outermost first: a `[out × in]` weight has `dimensions == [in, out]`.
    public var shape: [Int] { dimensions.reversed() }
    public var elementCount: Int { dimensions.reduce(1, *) }
    public var byteCount: Int { type.byteCount(elements: elementCount)! }  // validated at parse time
}

/// A parsed GGUF file (versions 2 and 3), memory-mapped; tensor data is read on demand.
///
/// Layout (ggml/include/gguf.h): magic "GGUF", u32 version, u64 tensor count, u64 metadata count,
/// the metadata key/values, the tensor infos, padding to `general.alignment` (default 32), then the
/// tensor data, each tensor at an aligned offset.
public struct GGUFFile: Sendable {
    public static let supportedVersions = [2, 3]
    public static let defaultAlignment = 32

    public let path: String
    public let version: Int
    /// Metadata in file order.
    public let metadataKeys: [String]
    public let metadata: [String: GGUFValue]
    /// Tensor infos in file order.
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// Absolute offset of the data section.
    public let dataOffset: Int
    private let file: MappedFile
    private let tensorIndex: [String: Int]

    public init(path: String) throws(ModelFormatError) {
        try self.init(file: MappedFile(path: path))
    }

    public init(file: MappedFile) throws(ModelFormatError) {
        self.file = file
        self.path = file.path
        var cursor = ByteCursor(bytes: file.bytes, path: path)
        let magic = try cursor.readBytes(4, "the magic bytes")
        guard Array(magic) == Array("GGUF".utf8) else {
            throw .badMagic(path: path, found: magic.map { String(format2: $0) }.joined(separator: " "), expected: "GGUF")
        }
        let version = Int(try cursor.read(UInt32.self, "the version"))
        guard Self.supportedVersions.contains(version) else {
            throw .unsupportedVersion(path: path, version: version, supported: Self.supportedVersions)
        }
        self.version = version
        let tensorCount = try cursor.read(UInt64.self, "the tensor count")
        let keyCount = try cursor.read(UInt64.self, "the metadata count")
        // Every key/value takes at least 12 bytes and every tensor info at least 24: reject counts
        // the file cannot hold before reserving anything.
        guard keyCount <= UInt64(cursor.remaining / 12), tensorCount <= UInt64(cursor.remaining / 24) else {
            throw .truncated(path: path, needed: Int(clamping: keyCount &* 12 &+ tensorCount &* 24),
                             available: cursor.remaining, context: "the header counts (\(keyCount) keys, \(tensorCount) tensors)")
        }

        var keys: [String] = []
        var values: [String: GGUFValue] = [:]
        for index in 0..<Int(keyCount) {
            let key = try cursor.readString("the name of metadata key #\(index)")
            let rawType = try cursor.read(UInt32.self, "the type of '\(key)'")
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw .unsupportedValueType(path: path, key: key, type: Int(rawType))
            }
            let value = try Self.readValue(type, key: key, cursor: &cursor, depth: 0)
            guard values[key] == nil else { throw .duplicateKey(path: path, key: key) }
            keys.append(key)
            values[key] = value
        }
        metadataKeys = keys
        metadata = values

        var alignment = Self.defaultAlignment
        if let value = values["general.alignment"] {
            guard let a = value.integer, a > 0, a & (a - 1) == 0 else {
                throw .invalidAlignment(path: path, alignment: value.integer ?? -1)
            }
            alignment = a
        }
        self.alignment = alignment

        var infos: [GGUFTensorInfo] = []
        var index: [String: Int] = [:]
        for number in 0..<Int(tensorCount) {
            let name = try cursor.readString("the name of tensor #\(number)")
            let rank = try cursor.read(UInt32.self, "the dimension count of '\(name)'")
            guard (1...4).contains(rank) else {
                throw .invalidTensorShape(path: path, tensor: name, shape: [], reason: "\(rank) dimensions (GGUF allows 1 to 4)")
            }
            var dimensions: [Int] = []
            for _ in 0..<rank {
                let d = try cursor.read(UInt64.self, "the dimensions of '\(name)'")
                guard d > 0, d < (1 << 40) else {
                    throw .invalidTensorShape(path: path, tensor: name, shape: dimensions + [Int(clamping: d)], reason: "dimensions must be positive")
                }
                dimensions.append(Int(d))
            }
            let rawType = try cursor.read(UInt32.self, "the type of '\(name)'")
            guard let type = ElementType(ggmlTypeID: rawType) else {
                throw .unsupportedTensorType(path: path, tensor: name, type: ElementType.ggmlName(of: rawType))
            }
            let offset = try cursor.read(UInt64.self, "the offset of '\(name)'")
            let (count, overflow) = dimensions.reduce((1, false)) { acc, d in
                let r = acc.0.multipliedReportingOverflow(by: d)
                return (r.partialValue, acc.1 || r.overflow)
            }
            guard !overflow, dimensions[0] % type.blockSize == 0, type.byteCount(elements: count) != nil else {
                throw .invalidTensorShape(path: path, tensor: name, shape: dimensions.reversed(),
                                          reason: "rows of \(dimensions[0]) values are not whole \(type.rawValue) blocks of \(type.blockSize)")
            }
            guard offset % UInt64(alignment) == 0, offset < (1 << 48) else {
                throw .malformedHeader(path: path, reason: "tensor '\(name)' offset \(offset) is not aligned to \(alignment)")
            }
            guard index[name] == nil else { throw .duplicateTensor(path: path, tensor: name) }
            index[name] = infos.count
            infos.append(GGUFTensorInfo(name: name, dimensions: dimensions, type: type, offset: Int(offset)))
        }
        tensors = infos
        tensorIndex = index

        let padded = (cursor.offset + alignment - 1) / alignment * alignment
        dataOffset = padded
        for info in infos {
            let end = padded + info.offset + info.byteCount
            guard end <= file.size else {
                throw .tensorOutOfBounds(path: path, tensor: info.name, end: end, fileSize: file.size)
            }
        }
    }

    private static func readValue(
        _ type: GGUFValueType, key: String, cursor: inout ByteCursor, depth: Int
    ) throws(ModelFormatError) -> GGUFValue {
        let context = "the value of '\(key)'"
        switch type {
        case .uint8: return .uint8(try cursor.read(UInt8.self, context))
        case .int8: return .int8(try cursor.read(Int8.self, context))
        case .uint16: return .uint16(try cursor.read(UInt16.self, context))
        case .int16: return .int16(try cursor.read(Int16.self, context))
        case .uint32: return .uint32(try cursor.read(UInt32.self, context))
        case .int32: return .int32(try cursor.read(Int32.self, context))
        case .float32: return .float32(try cursor.readFloat(context))
        case .uint64: return .uint64(try cursor.read(UInt64.self, context))
        case .int64: return .int64(try cursor.read(Int64.self, context))
        case .float64: return .float64(try cursor.readDouble(context))
        case .bool:
            let byte = try cursor.read(UInt8.self, context)
            guard byte <= 1 else {
                throw .invalidValue(path: cursor.path, key: key, reason: "boolean byte is \(byte), not 0 or 1")
            }
            return .bool(byte == 1)
        case .string: return .string(try cursor.readString(context))
        case .array:
            guard depth < 4 else {
                throw .invalidValue(path: cursor.path, key: key, reason: "arrays nested deeper than 4 levels")
            }
            let rawElement = try cursor.read(UInt32.self, "the element type of '\(key)'")
            guard let element = GGUFValueType(rawValue: rawElement) else {
                throw .unsupportedValueType(path: cursor.path, key: key, type: Int(rawElement))
            }
            let count = try cursor.read(UInt64.self, "the length of '\(key)'")
            guard count <= UInt64(cursor.remaining / element.minimumEncodedSize) else {
                throw .truncated(path: cursor.path, needed: Int(clamping: count &* UInt64(element.minimumEncodedSize)),
                                 available: cursor.remaining, context: "the \(count) elements of '\(key)'")
            }
            var values: [GGUFValue] = []
            values.reserveCapacity(Int(count))
            for _ in 0..<Int(count) {
                values.append(try readValue(element, key: key, cursor: &cursor, depth: depth + 1))
            }
            return .array(element, values)
        }
    }

    // MARK: - Access

    public func tensorInfo(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The raw bytes of a tensor; valid while this value (and so the mapping) is alive.
    public func rawBytes(of info: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        let start = dataOffset + info.offset
        return UnsafeRawBufferPointer(rebasing: file.bytes[start..<(start + info.byteCount)])
    }

    /// The tensor dequantised to Float32, in row-major order of `info.shape`.
    public func floats(of info: GGUFTensorInfo) -> [Float] {
        Dequantization.dequantize(info.type, source: rawBytes(of: info), count: info.elementCount)
    }

    public func value(_ key: String) -> GGUFValue? { metadata[key] }

    public func requiredInteger(_ key: String) throws(ModelFormatError) -> Int {
        guard let value = metadata[key] else { throw .missingKey(path: path, key: key) }
        guard let int = value.integer else {
            throw .wrongKeyType(path: path, key: key, expected: "an integer", found: value.type.name)
        }
        return int
    }

    public func requiredString(_ key: String) throws(ModelFormatError) -> String {
        guard let value = metadata[key] else { throw .missingKey(path: path, key: key) }
        guard let string = value.string else {
            throw .wrongKeyType(path: path, key: key, expected: "a string", found: value.type.name)
        }
        return string
    }

    public func stringArray(_ key: String) throws(ModelFormatError) -> [String]? {
        guard let value = metadata[key] else { return nil }
        guard case .array(.string, let values) = value else {
            throw .wrongKeyType(path: path, key: key, expected: "an array of strings", found: value.summary)
        }
        return values.map { $0.string! }
    }

    public func integerArray(_ key: String) throws(ModelFormatError) -> [Int]? {
        guard let value = metadata[key] else { return nil }
        guard case .array(_, let values) = value, values.allSatisfy({ $0.integer != nil }) else {
            throw .wrongKeyType(path: path, key: key, expected: "an array of integers", found: value.summary)
        }
        return values.map { $0.integer! }
    }
}

extension String {
    /// Two-digit hex of a byte.
    init(format2 byte: UInt8) {
        let digits = Array("0123456789abcdef")
        self = String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
    }
}
