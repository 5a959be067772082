/// Turns a stream of token ids into text as it arrives, holding back bytes of a character that a
/// later token completes (byte-level tokens can split a UTF-8 sequence).
public struct StreamingDecoder {
    private let tokenizer: BPETokenizer
    private var pending: [UInt8] = []

    public init(tokenizer: BPETokenizer) { self.tokenizer = tokenizer }

    /// The text that became complete with this token (possibly empty).
    public mutating func append(_ id: Int) throws(TokenizationError) -> String {
        pending += try tokenizer.bytes(of: id)
        let complete = Self.completePrefixLength(pending)
        let text = String(decoding: pending[0..<complete], as: UTF8.self)
        pending.removeFirst(complete)
        return text
    }

    /// Whatever is left (an incomplete character becomes U+FFFD).
    public mutating func finish() -> String {
        defer { pending = [] }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Length of the longest prefix that does not end inside a (possibly still valid) UTF-8 sequence.
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        var i = bytes.count
        // Walk back over at most 3 continuation bytes to the last lead byte.
        var back = 0
        while i > 0 && back < 4 {
            let b = bytes[i - 1]
            if b & 0xC0 != 0x80 {  // lead byte or ASCII
                let needed = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1
                return back + 1 >= needed ? bytes.count : i - 1
            }
            i -= 1
            back += 1
        }
        return bytes.count
    }
}
