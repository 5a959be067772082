import Synchronization

/// Byte-level BPE as GPT-2, SmolLM2 and Llama-3 use it: added (special) tokens are matched
/// literally first (leftmost, longest), the rest is cut by the pre-tokenizer, each piece is mapped
/// to its byte-level string and merged by rank.
public final class BPETokenizer: Sendable {
    /// Token strings by id (byte-level form for ordinary tokens, literal text for added tokens).
    public let tokens: [String]
    public let preTokenizer: PreTokenizer
    /// Ids of tokens matched literally in text before pre-tokenization (GGUF CONTROL and
    /// USER_DEFINED tokens; `added_tokens` of tokenizer.json).
    public let addedTokenIDs: Set<Int>
    public let bosTokenID: Int?
    public let eosTokenID: Int?
    public let addBOS: Bool
    /// Llama-3's `ignore_merges`: a piece that is itself a token is not merged from bytes.
    public let ignoreMerges: Bool
    /// Prepend a space to text that does not start with one (ByteLevel `add_prefix_space`).
    public let addPrefixSpace: Bool
    /// Merges in priority order (rank = index).
    public let merges: [(String, String)]
    public var mergeCount: Int { merges.count }
    /// Byte values that have no single-byte token (skipped when encoding).
    public let missingBytes: [UInt8]

    private let ids: [String: Int]
    /// (left id << 32 | right id) → (rank, merged id).
    private let mergeTable: [UInt64: (rank: Int32, merged: Int32)]
    /// Byte value → id of its single-byte token.
    private let byteTokens: [Int32]
    /// Added tokens grouped by first scalar, longest first, for leftmost-longest matching.
    private let addedByFirstScalar: [Unicode.Scalar: [(scalars: [Unicode.Scalar], id: Int)]]
    private let cache = Mutex<[String: (ids: [Int32], skipped: Int)]>([:])

    /// - Parameters:
    ///   - merges: pairs of token strings in priority order (rank = index).
    public init(
        tokens: [String], merges: [(String, String)], addedTokenIDs: Set<Int>, preTokenizer: PreTokenizer,
        bosTokenID: Int?, eosTokenID: Int?, addBOS: Bool = false, ignoreMerges: Bool = false,
        addPrefixSpace: Bool = false, source: String
    ) throws(TokenizationError) {
        self.tokens = tokens
        self.preTokenizer = preTokenizer
        self.addedTokenIDs = addedTokenIDs
        self.bosTokenID = bosTokenID
        self.eosTokenID = eosTokenID
        self.addBOS = addBOS
        self.ignoreMerges = ignoreMerges
        self.addPrefixSpace = addPrefixSpace
        self.merges = merges

        var ids: [String: Int] = [:]
        ids.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() where ids[token] == nil { ids[token] = id }
        self.ids = ids

        // Some vocabularies lack a few single-byte tokens (SmolLM2 has no token for 0x04, 0xC0,
        // 0xF5...0xFF and a few more). Such bytes are skipped during encoding, as Hugging Face's BPE
        // does without an unknown token, and counted (`Encoding.skippedBytes`).
        var byteTokens = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            if let id = ids[String(ByteLevel.characterOf[b])] { byteTokens[b] = Int32(id) }
        }
        self.byteTokens = byteTokens
        self.missingBytes = (0..<256).filter { byteTokens[$0] < 0 }.map(UInt8.init)

        var table: [UInt64: (rank: Int32, merged: Int32)] = [:]
        table.reserveCapacity(merges.count)
        for (rank, (left, right)) in merges.enumerated() {
            guard let l = ids[left], let r = ids[right], let m = ids[left + right] else {
                throw .inconsistent(source: source, reason: "merge #\(rank) '\(left) \(right)' uses a string that is not a token")
            }
            let key = UInt64(l) << 32 | UInt64(r)
            if table[key] == nil { table[key] = (Int32(rank), Int32(m)) }
        }
        self.mergeTable = table

        var added: [Unicode.Scalar: [(scalars: [Unicode.Scalar], id: Int)]] = [:]
        for id in addedTokenIDs {
            guard id >= 0, id < tokens.count else {
                throw .inconsistent(source: source, reason: "added token id \(id) is outside the vocabulary")
            }
            let scalars = Array(tokens[id].unicodeScalars)
            guard let first = scalars.first else { continue }
            added[first, default: []].append((scalars, id))
        }
        for key in added.keys { added[key]!.sort { ($0.scalars.count, $1.id) > ($1.scalars.count, $0.id) } }
        self.addedByFirstScalar = added
    }

    public var vocabularySize: Int { tokens.count }

    public func id(of token: String) -> Int? { ids[token] }

    // MARK: - Encoding

    /// Token ids of `text`. Added tokens written in the text map to their ids; a BOS token is
    /// prepended only if the model asks for it and `addSpecialTokens` is true.
    public func encode(_ text: String, addSpecialTokens: Bool = false) -> [Int] {
        encodeCounting(text, addSpecialTokens: addSpecialTokens).ids
    }

    /// Token ids and the number of bytes skipped because the vocabulary has no token for them.
    public struct Encoding: Sendable, Equatable {
        public var ids: [Int]
        public var skippedBytes: Int
    }

    public func encodeCounting(_ text: String, addSpecialTokens: Bool = false) -> Encoding {
        var out: [Int] = []
        var skipped = 0
        if addSpecialTokens, addBOS, let bos = bosTokenID { out.append(bos) }
        let scalars = Array(text.unicodeScalars)
        var segmentStart = 0
        var i = 0
        while i < scalars.count {
            if let candidates = addedByFirstScalar[scalars[i]],
               let match = candidates.first(where: { scalars.count - i >= $0.scalars.count && Array(scalars[i..<(i + $0.scalars.count)]) == $0.scalars }) {
                if segmentStart < i { skipped += encodeOrdinary(scalars[segmentStart..<i], into: &out) }
                out.append(match.id)
                i += match.scalars.count
                segmentStart = i
            } else {
                i += 1
            }
        }
        if segmentStart < scalars.count { skipped += encodeOrdinary(scalars[segmentStart..<scalars.count], into: &out) }
        return Encoding(ids: out, skippedBytes: skipped)
    }

    /// Appends the ids of text without added tokens; returns the number of skipped bytes.
    private func encodeOrdinary(_ scalars: ArraySlice<Unicode.Scalar>, into out: inout [Int]) -> Int {
        var view = String.UnicodeScalarView()
        if addPrefixSpace, scalars.first != " " { view.append(" ") }
        view.append(contentsOf: scalars)
        var skipped = 0
        for piece in preTokenizer.split(String(view)) {
            let (ids, missing) = encodePiece(piece)
            for id in ids { out.append(Int(id)) }
            skipped += missing
        }
        return skipped
    }

    /// BPE on one pre-token: start from single bytes, repeatedly merge the adjacent pair of lowest
    /// rank (leftmost on ties) until no pair has a merge.
    func encodePiece(_ piece: String) -> (ids: [Int32], skipped: Int) {
        if let cached = cache.withLock({ $0[piece] }) { return cached }
        let bytes = Array(piece.utf8)
        if ignoreMerges, let whole = ids[ByteLevel.encode(bytes)] { return ([Int32(whole)], 0) }
        var symbols = bytes.map { byteTokens[Int($0)] }.filter { $0 >= 0 }
        let skipped = bytes.count - symbols.count
        while symbols.count > 1 {
            var bestRank = Int32.max
            var bestIndex = -1
            var bestMerged: Int32 = 0
            for k in 0..<(symbols.count - 1) {
                let key = UInt64(UInt32(symbols[k])) << 32 | UInt64(UInt32(symbols[k + 1]))
                if let merge = mergeTable[key], merge.rank < bestRank {
                    bestRank = merge.rank
                    bestIndex = k
                    bestMerged = merge.merged
                }
            }
            if bestIndex < 0 { break }
            // Merge every non-overlapping occurrence of the best pair, left to right.
            let left = symbols[bestIndex], right = symbols[bestIndex + 1]
            var merged: [Int32] = []
            merged.reserveCapacity(symbols.count)
            var k = 0
            while k < symbols.count {
                if k + 1 < symbols.count, symbols[k] == left, symbols[k + 1] == right {
                    merged.append(bestMerged)
                    k += 2
                } else {
                    merged.append(symbols[k])
                    k += 1
                }
            }
            symbols = merged
        }
        cache.withLock { cache in
            if cache.count > 100_000 { cache.removeAll(keepingCapacity: true) }
            cache[piece] = (symbols, skipped)
        }
        return (symbols, skipped)
    }

    // MARK: - Decoding

    /// The bytes that token `id` stands for.
    public func bytes(of id: Int) throws(TokenizationError) -> [UInt8] {
        guard id >= 0, id < tokens.count else { throw .unknownTokenID(id, vocabularySize: tokens.count) }
        if addedTokenIDs.contains(id) { return Array(tokens[id].utf8) }
        return ByteLevel.decode(tokens[id]) ?? Array(tokens[id].utf8)
    }

    /// Text of `ids`; invalid UTF-8 (a token sequence cut inside a character) becomes U+FFFD.
    public func decode(_ ids: [Int]) throws(TokenizationError) -> String {
        var bytes: [UInt8] = []
        for id in ids { bytes += try self.bytes(of: id) }
        return String(decoding: bytes, as: UTF8.self)
    }
}
