/// How a projection group's decode work is cut into chunks that the workers of one region claim.
///
/// The members' work units (a dense member's output rows, a low-rank member's active ranks: one
/// row of the right factor and one of `Bᵀ` each) are cut into fixed chunks, member by member in
/// order. The workers of a region start on one contiguous run of chunks each (`boundaries`, equal
/// bytes) and a worker that finishes its run takes chunks from the far end of another's
/// (`StealingSegments`). The static cut into equal bytes left one worker waiting for the other
/// 1–2.6 ms per decoded token on a shared 2-vCPU host (10–15% of the token; which worker lagged
/// changed from run to run), docs/BENCHMARKS.md.
///
/// The chunks do not depend on the worker count or on which worker runs a chunk, so neither do
/// the results: a dense chunk writes its own output rows; a low-rank chunk computes z over its
/// ranks and then `Bᵀ[ranks] · z[ranks]` into its own slot: the member's output for the chunk
/// holding rank 0, a partial output otherwise, added into the output in slot order by the worker
/// that finishes the member's last chunk (`ChunkCountdowns`), inside the region. A low-rank
/// member is cut into about four chunks (`lowRankChunkBytes`), at most `maximumLowRankChunks`, so
/// its partial sums cost at most that many additions of its output per row.
public struct GroupChunks: Sendable, Equatable {
    /// One member's work: its units (output rows or active ranks), the bytes each reads, and
    /// whether it is low-rank (its chunks then write slots).
    public struct Member: Sendable, Equatable {
        public let units: Int
        public let unitBytes: Int
        public let lowRank: Bool
        public init(units: Int, unitBytes: Int, lowRank: Bool) {
            self.units = units
            self.unitBytes = unitBytes
            self.lowRank = lowRank
        }
    }

    /// A run of one member's units. `slot` 0 writes the member's output; a low-rank member's
    /// chunk `s > 0` writes its partial output `s`.
    public struct Chunk: Sendable, Equatable {
        public let member: Int
        public let units: Range<Int>
        public let slot: Int
    }

    /// Bytes of a dense member's chunk at most: the output head's stealing chunk
    /// (`WeightMatrix.stealChunkBytes`). Low-rank chunks are larger (`lowRankChunkBytes`).
    public static let chunkBytes = 64 * 1024
    /// Low-rank chunks per member at most: each past the first costs one addition of the member's
    /// output per row (by the worker that finishes the member's last chunk).
    public static let maximumLowRankChunks = 8
    /// Bytes of a low-rank chunk: a quarter of its member, within this range (at most
    /// `maximumLowRankChunks` chunks). A low-rank chunk costs more than a dense one: a second
    /// stream (its rows of A, then of `Bᵀ`), a partial output to write and add, and the kernels
    /// starting over. Cut into 64 KB chunks like dense rows (8 per member at most), SmolLM2's
    /// SVD-LLM checkpoints streamed their groups 3–5% slower with two workers and 3–13% slower
    /// with one than cut this way, where two copies of one cut differed by 0–2% (means over 3
    /// processes of the medians of 40 interleaved passes; 20% and 40%, f16 and f32; AMD EPYC;
    /// docs/BENCHMARKS.md). Larger chunks still (512 KB) were slower with two workers in three of
    /// those four cases, since the workers balance by stealing whole chunks; so were 2 chunks per
    /// member for f32 at 20%.
    public static let lowRankChunkBytes = 64 * 1024 ... 256 * 1024
    /// Part counts whose boundaries are made in advance (more are made on demand).
    static let cachedParts = 8

    public let chunks: [Chunk]
    /// Per member: its slots (1 for a dense member; a low-rank member's chunk count).
    public let slots: [Int]
    /// Bytes before each chunk, and the total at the end (`chunks.count + 1` values).
    private let offsets: [Int]
    private let cachedBoundaries: [[Int]]

    public init(members: [Member]) {
        var chunks: [Chunk] = [], slots: [Int] = [], offsets = [0]
        for (i, m) in members.enumerated() {
            let bytes = max(1, m.unitBytes)
            // Multiples of 16 units where a chunk holds more (the row kernels take 16 rows at a
            // time): rounded up for a low-rank member (at most its chunk count), down for a dense
            // one (at most `chunkBytes`).
            let size: Int
            if m.lowRank {
                let total = m.units * bytes
                let target = min(max(total / 4, Self.lowRankChunkBytes.lowerBound), Self.lowRankChunkBytes.upperBound)
                let count = min(Self.maximumLowRankChunks, max(1, total / target))
                let even = (m.units + count - 1) / count
                size = even >= 16 ? (even + 15) / 16 * 16 : max(1, even)
            } else {
                let fit = Self.chunkBytes / bytes
                size = fit >= 32 ? fit / 16 * 16 : max(1, fit)
            }
            var start = 0, slot = 0
            while start < m.units {
                let end = min(m.units, start + size)
                chunks.append(Chunk(member: i, units: start..<end, slot: m.lowRank ? slot : 0))
                offsets.append(offsets.last! + (end - start) * bytes)
                if m.lowRank { slot += 1 }
                start = end
            }
            slots.append(max(1, slot))
        }
        self.chunks = chunks
        self.slots = slots
        self.offsets = offsets
        cachedBoundaries = (1...Self.cachedParts).map { Self.boundaries(offsets: offsets, parts: $0) }
    }

    /// The first chunk of each of `parts` runs of about equal bytes, and the chunk count at the end
    /// (`parts + 1` values): run p is chunks `b[p] ..< b[p + 1]`.
    public func boundaries(parts: Int) -> [Int] {
        parts <= cachedBoundaries.count ? cachedBoundaries[parts - 1] : Self.boundaries(offsets: offsets, parts: parts)
    }

    /// The chunk whose start is nearest each even cut of the bytes.
    private static func boundaries(offsets: [Int], parts: Int) -> [Int] {
        precondition(parts >= 1, "a split needs at least one part")
        let count = offsets.count - 1, total = offsets[count]
        var result = [0]
        for p in 1..<parts {
            let cut = total * p / parts
            var c = result.last!
            while c < count && offsets[c + 1] <= cut { c += 1 }
            if c < count && offsets[c + 1] - cut < cut - offsets[c] { c += 1 }
            result.append(c)
        }
        result.append(count)
        return result
    }
}
