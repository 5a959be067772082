/// GPT-2's reversible byte ↔ Unicode mapping (`bytes_to_unicode` in OpenAI's encoder.py, also
/// Hugging Face's ByteLevel pre-tokenizer and decoder): printable Latin-1 bytes map to themselves,
/// the other 68 bytes to U+0100 onwards, so every byte string is a string of visible characters.
public enum ByteLevel {
    /// `characterOf[b]` is the character that stands for byte `b`.
    public static let characterOf: [Unicode.Scalar] = {
        var printable = Array(33...126) + Array(161...172) + Array(174...255)
        var mapped = printable
        var next = 0
        for b in 0..<256 where !printable.contains(b) {
            printable.append(b)
            mapped.append(256 + next)
            next += 1
        }
        var table = [Unicode.Scalar](repeating: "\0", count: 256)
        for (b, c) in zip(printable, mapped) { table[b] = Unicode.Scalar(UInt32(c))! }
        return table
    }()

    /// Inverse of `characterOf`, indexed by scalar value (0..<324).
    public static let byteOf: [Int16] = {
        var table = [Int16](repeating: -1, count: 324)
        for (b, c) in characterOf.enumerated() { table[Int(c.value)] = Int16(b) }
        return table
    }()

    /// The byte-level string of some UTF-8 bytes.
    public static func encode<S: Sequence<UInt8>>(_ bytes: S) -> String {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(characterOf[Int(b)]) }
        return String(s)
    }

    /// The bytes of a byte-level string, or nil if it has a character outside the mapping.
    public static func decode(_ string: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(string.unicodeScalars.count)
        for scalar in string.unicodeScalars {
            let v = Int(scalar.value)
            guard v < byteOf.count, byteOf[v] >= 0 else { return nil }
            out.append(UInt8(byteOf[v]))
        }
        return out
    }
}
