/// A run of rows in one forward pass with its own attention pattern: the rows see a fixed range of
/// cache slots in full (a shared context) and, causally, each other — never the other segments.
/// This packs independent sequences, or several continuations of one context, into one pass so the
/// weights are read once for all of them (multiple-choice scoring).
public struct AttentionSegment: Sendable, Equatable {
    /// Workspace rows `[rows.count × …]`; their keys and values go to cache slots
    /// `cache.count + rows.lowerBound ..< cache.count + rows.upperBound`.
    public var rows: Range<Int>
    /// The RoPE position of the first row (the next rows follow on).
    public var firstPosition: Int
    /// Cache slots every row attends to in full, before its own segment's keys. Empty for a
    /// sequence that starts at position 0.
    public var prefix: Range<Int>

    public init(rows: Range<Int>, firstPosition: Int, prefix: Range<Int>) {
        precondition(!rows.isEmpty, "a segment needs at least one row")
        self.rows = rows
        self.firstPosition = firstPosition
        self.prefix = prefix
    }
}
