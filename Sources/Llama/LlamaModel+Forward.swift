import LinearAlgebra

extension LlamaModel {
    /// Runs `tokens` at positions `cache.count ..< cache.count + tokens.count`: appends their keys
    /// and values to `cache` and leaves the final-normed hidden states in the workspace
    /// (`[tokens × hidden]`, read them with `logits`). Reads like the paper: embedding, then per
    /// layer RMSNorm → q/k/v → RoPE → causal GQA attention → o → residual, RMSNorm → SwiGLU → residual.
    public func forward(_ tokens: ArraySlice<Int>, cache: KVCache, workspace ws: Workspace,
                        observer: (any ForwardObserver)? = nil) {
        let c = configuration
        let t = tokens.count
        let start = cache.count
        precondition(t > 0 && t <= ws.rows, "\(t) tokens do not fit a workspace of \(ws.rows) rows")
        precondition(start + t <= cache.capacity && start + t <= ws.contextCapacity,
                     "positions up to \(start + t) exceed the cache (\(cache.capacity)) or workspace (\(ws.contextCapacity))")
        embed(tokens, workspace: ws)
        report(.embedding, ws.hidden, t, c.hiddenSize, observer)
        forwardSuffix(from: 0, rows: t, cache: cache, workspace: ws, observer: observer)
    }

    /// Runs a whole prompt in passes of at most `ws.rows` rows (one `forward` each) and returns the
    /// workspace row that holds its last position's final-normed state (read it with `logits`).
    @discardableResult
    public func prefill(_ prompt: [Int], cache: KVCache, workspace ws: Workspace) -> Int {
        precondition(!prompt.isEmpty, "the prompt must have at least one token")
        var start = 0
        while start < prompt.count {
            let rows = min(ws.rows, prompt.count - start)
            forward(prompt[start..<(start + rows)], cache: cache, workspace: ws)
            start += rows
        }
        return (prompt.count - 1) % ws.rows
    }

    /// Runs layers `first ..< layerCount` on the residual stream already in the workspace
    /// (`[rows × hidden]`, positions from `cache.count`), advances the cache, and applies the final
    /// norm: `forward` after its embedding. Re-running only a model's suffix from a saved stream is
    /// what ASVD's sensitivity search does for every projection it probes.
    public func forwardSuffix(from first: Int, rows t: Int, cache: KVCache, workspace ws: Workspace,
                              observer: (any ForwardObserver)? = nil) {
        let c = configuration
        let h = c.hiddenSize
        for l in first..<layers.count {
            forwardLayer(l, rows: t, cache: cache, workspace: ws, observer: observer)
        }
        cache.advance(by: t)
        finalNorm.withUnsafeBufferPointer { w in
            for r in 0..<t {
                VectorMath.rmsNorm(ws.hidden + r * h, weight: w.baseAddress!, epsilon: c.rmsNormEpsilon, count: h, into: ws.normed + r * h)
            }
        }
        report(.finalNorm, ws.normed, t, h, observer)
    }

    /// The token embeddings of `tokens` into `ws.hidden` `[tokens × hidden]`.
    public func embed(_ tokens: ArraySlice<Int>, workspace ws: Workspace) {
        let c = configuration
        let h = c.hiddenSize
        precondition(tokens.count <= ws.rows, "\(tokens.count) tokens do not fit a workspace of \(ws.rows) rows")
        for (r, token) in tokens.enumerated() {
            precondition(token >= 0 && token < c.vocabularySize, "token id \(token) is outside the vocabulary")
            tokenEmbedding.widenRow(token, into: ws.hidden + r * h)
        }
    }

    /// Runs decoder layer `l` on the residual stream `ws.hidden` `[rows × hidden]` in place, for
    /// positions `cache.count ..< cache.count + rows`: writes that layer's keys and values into the
    /// cache but does not advance it (`forward` advances once after the last layer). Calibration
    /// calls it layer by layer so only one layer's statistics are alive at a time.
    ///
    /// `segments` replaces the single causal sequence by independent runs of rows, each with its own
    /// positions and visible prefix (see `forwardPacked`).
    public func forwardLayer(_ l: Int, rows t: Int, cache: KVCache, workspace ws: Workspace, observer: (any ForwardObserver)? = nil,
                             segments: [AttentionSegment]? = nil) {
        let c = configuration
        let start = cache.count
        precondition(t > 0 && t <= ws.rows && start + t <= cache.capacity && start + t <= ws.contextCapacity,
                     "rows \(t) at position \(start) do not fit the cache (\(cache.capacity)) or workspace (\(ws.rows) rows, \(ws.contextCapacity) positions)")
        precondition(Parallel.workers <= ws.workers,
                     "the worker count was raised to \(Parallel.workers) after this workspace was sized for \(ws.workers): set it before creating workspaces")
        let h = c.hiddenSize, qw = c.queryWidth, kvw = c.keyValueWidth, inter = c.intermediateSize
        let layer = layers[l]
        // New rows are computed position-major in `ws.newKeys`/`ws.newValues`; `write` stores them
        // head-major (rounded, for a half cache), and attention reads them from the cache.
        let keys = ws.newKeys, values = ws.newValues

        // Attention block.
        normRows(t, weight: layer.attentionNorm, workspace: ws)
        report(.projectionInput(layer: l, site: .attentionInput), ws.normed, t, h, observer)
        layer.attentionInput.apply(ws.normed, rows: t, ldx: h, into: [ws.query, keys, values], ldy: [qw, kvw, kvw], scratch: ws.scratch)
        if let segments {
            for s in segments {
                applyRotary(ws.query + s.rows.lowerBound * qw, rows: s.rows.count, heads: c.attentionHeads, firstPosition: s.firstPosition,
                            table: ws.rotary)
                applyRotary(keys + s.rows.lowerBound * kvw, rows: s.rows.count, heads: c.keyValueHeads, firstPosition: s.firstPosition,
                            table: ws.rotary)
            }
            cache.write(layer: l, positions: start..<(start + t), keys: keys, values: values)
            let stored = cache.floatLayer(l, positions: 0..<(start + t))
            attendSegments(keys: stored.keys, values: stored.values, headStride: cache.headStride, segments: segments, start: start,
                           workspace: ws)
        } else {
            applyRotary(ws.query, rows: t, heads: c.attentionHeads, firstPosition: start, table: ws.rotary)
            applyRotary(keys, rows: t, heads: c.keyValueHeads, firstPosition: start, table: ws.rotary)
            cache.write(layer: l, positions: start..<(start + t), keys: keys, values: values)
            if t == 1 {
                attendOne(layer: l, position: start, cache: cache, query: ws.query, into: ws.attention, workspace: ws)
            } else {
                let stored = cache.floatLayer(l, positions: 0..<(start + t))
                attend(keys: stored.keys, values: stored.values, headStride: cache.headStride, rows: t, firstPosition: start, workspace: ws)
            }
        }
        report(.projectionInput(layer: l, site: .attentionOutput), ws.attention, t, qw, observer)
        layer.attentionOutput.apply(ws.attention, rows: t, ldx: qw, into: [ws.normed], ldy: [h], scratch: ws.scratch)

        // MLP block (the attention block's residual add and the MLP norm in one pass over each row).
        normRows(t, weight: layer.mlpNorm, workspace: ws, addingFirst: true)
        report(.projectionInput(layer: l, site: .mlpInput), ws.normed, t, h, observer)
        layer.mlpInput.apply(ws.normed, rows: t, ldx: h, into: [ws.gate, ws.up], ldy: [inter, inter], scratch: ws.scratch)
        let box = UncheckedSendableBox(ws)  // disjoint rows per part
        Parallel.forEachPart(t, minimum: Self.elementwiseRows) { rows in
            let ws = box.value
            VectorMath.siluMultiply(ws.gate + rows.lowerBound * inter, ws.up + rows.lowerBound * inter, count: rows.count * inter)
        }
        report(.projectionInput(layer: l, site: .mlpHidden), ws.gate, t, inter, observer)
        layer.mlpHidden.apply(ws.gate, rows: t, ldx: inter, into: [ws.normed], ldy: [h], scratch: ws.scratch)
        Parallel.forEachPart(t, minimum: Self.elementwiseRows) { rows in
            let ws = box.value
            VectorMath.add(ws.normed + rows.lowerBound * h, into: ws.hidden + rows.lowerBound * h, count: rows.count * h)
        }
        report(.layerOutput(layer: l), ws.hidden, t, h, observer)
    }

    /// Runs `tokens` as independent segments in one pass: row r's keys and values go to cache slot
    /// `cache.count + r`, and each segment attends only to its prefix slots and causally to itself.
    /// Segments must cover the rows in order without gaps; a segment's prefix must be slots already
    /// in the cache or rows of an earlier segment (their keys are computed layer by layer, before
    /// attention). The final-normed rows are left in the workspace (read them with `logits`); the
    /// cache is not advanced.
    public func forwardPacked(_ tokens: ArraySlice<Int>, segments: [AttentionSegment], cache: KVCache, workspace ws: Workspace) {
        let c = configuration
        let h = c.hiddenSize
        let t = tokens.count
        var expected = 0
        for s in segments {
            precondition(s.rows.lowerBound == expected, "segments must cover the rows in order, without gaps")
            precondition(s.prefix.upperBound <= cache.count + s.rows.lowerBound,
                         "a segment's prefix must come before its own rows")
            precondition(s.firstPosition + s.rows.count <= ws.contextCapacity,
                         "positions up to \(s.firstPosition + s.rows.count) exceed the workspace (\(ws.contextCapacity))")
            expected = s.rows.upperBound
        }
        precondition(expected == t, "segments cover \(expected) rows of \(t)")
        precondition(t <= ws.rows && cache.count + t <= cache.capacity && cache.count + t <= ws.contextCapacity,
                     "\(t) packed rows after \(cache.count) cached positions do not fit the cache or workspace")
        embed(tokens, workspace: ws)
        for l in layers.indices { forwardLayer(l, rows: t, cache: cache, workspace: ws, segments: segments) }
        finalNorm.withUnsafeBufferPointer { w in
            for r in 0..<t {
                VectorMath.rmsNorm(ws.hidden + r * h, weight: w.baseAddress!, epsilon: c.rmsNormEpsilon, count: h, into: ws.normed + r * h)
            }
        }
    }

    /// Logits of workspace rows `rows` (after `forward`) into `out` `[rows.count × vocabulary]`.
    public func logits(workspace ws: Workspace, rows: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        let h = configuration.hiddenSize
        outputHead.apply(ws.normed + rows.lowerBound * h, rows: rows.count, ldx: h, into: out,
                         ldy: configuration.vocabularySize, scratch: ws.scratch)
    }

    @inline(__always)
    private func report(_ point: ObservationPoint, _ values: UnsafePointer<Float>, _ rows: Int, _ columns: Int,
                        _ observer: (any ForwardObserver)?) {
        if let observer, observer.wants(point) { observer.observe(point, values: values, rows: rows, columns: columns) }
    }

    /// Rows per part of the element-wise passes of `forwardLayer` (norms, SwiGLU, residual adds):
    /// a prefill's 512 rows run on every worker, a decoded row (or a few) on the caller.
    static let elementwiseRows = 32

    /// `ws.normed[r] = RMSNorm(ws.hidden[r]) ⊙ weight` for rows `0..<t` (`[t × hidden]`), split
    /// over the workers by rows. `addingFirst`: `ws.hidden[r] += ws.normed[r]` before the norm
    /// (the residual add of the projection whose output is in `ws.normed`), in the same pass.
    private func normRows(_ t: Int, weight: [Float], workspace ws: Workspace, addingFirst: Bool = false) {
        let h = configuration.hiddenSize, epsilon = configuration.rmsNormEpsilon
        weight.withUnsafeBufferPointer { w in
            let box = UncheckedSendableBox((ws, w.baseAddress!))  // disjoint rows per part
            Parallel.forEachPart(t, minimum: Self.elementwiseRows) { rows in
                let (ws, w) = box.value
                for r in rows {
                    if addingFirst { VectorMath.add(ws.normed + r * h, into: ws.hidden + r * h, count: h) }
                    VectorMath.rmsNorm(ws.hidden + r * h, weight: w, epsilon: epsilon, count: h, into: ws.normed + r * h)
                }
            }
        }
    }

    private func applyRotary(_ x: UnsafeMutablePointer<Float>, rows: Int, heads: Int, firstPosition: Int, table: RotaryTable) {
        table.rotate(x, rows: rows, heads: heads, firstPosition: firstPosition)
    }

    /// Attention for packed segments: the rows of segment s (cache slots `start + s.rows`) attend to
    /// the slots `s.prefix` and, causally, to their own segment's keys. Scores for the two key
    /// ranges sit side by side in one row, so one softmax covers both.
    /// `keys` and `values`: the layer's Float32 cache `[kvHeads × positions × d]`, key heads `headStride` apart.
    private func attendSegments(keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>, headStride: Int,
                                segments: [AttentionSegment], start: Int, workspace ws: Workspace) {
        let c = configuration
        let d = c.headDimension, qw = c.queryWidth
        let group = c.attentionHeads / c.keyValueHeads
        let scale = 1 / Float(d).squareRoot()
        let workers = ws.scores.count
        let box = UncheckedSendableBox((ws, keys, values))  // each worker owns its heads and score buffer
        Parallel.forEach(workers) { worker in
            let (ws, keys, values) = box.value
            let scores = ws.scores[worker]
            var head = worker
            while head < c.attentionHeads {
                let kvHead = head / group
                for s in segments {
                    let prefix = s.prefix.count
                    let headKeys = keys + kvHead * headStride, headValues = values + kvHead * headStride
                    let prefixKeys = headKeys + s.prefix.lowerBound * d
                    let prefixValues = headValues + s.prefix.lowerBound * d
                    let ownKeys = headKeys + (start + s.rows.lowerBound) * d
                    let ownValues = headValues + (start + s.rows.lowerBound) * d
                    var blockStart = s.rows.lowerBound
                    while blockStart < s.rows.upperBound {
                        let blockRows = min(Workspace.attentionBlock, s.rows.upperBound - blockStart)
                        let own = blockStart + blockRows - s.rows.lowerBound  // own keys seen by the block's last row
                        let width = prefix + own
                        let q = ws.query + blockStart * qw + head * d
                        let out = ws.attention + blockStart * qw + head * d
                        if prefix > 0 {
                            BLAS.gemmNT(m: blockRows, n: prefix, k: d, alpha: scale, a: q, lda: qw, b: prefixKeys, ldb: d,
                                        c: scores, ldc: width)
                        }
                        BLAS.gemmNT(m: blockRows, n: own, k: d, alpha: scale, a: q, lda: qw, b: ownKeys, ldb: d,
                                    c: scores + prefix, ldc: width)
                        for r in 0..<blockRows {
                            let rowScores = scores + r * width
                            let seen = prefix + (blockStart - s.rows.lowerBound) + r + 1
                            VectorMath.softmax(rowScores, count: seen)
                            if seen < width { (rowScores + seen).update(repeating: 0, count: width - seen) }
                        }
                        if prefix > 0 {
                            BLAS.gemmNN(m: blockRows, n: d, k: prefix, a: scores, lda: width, b: prefixValues, ldb: d, c: out, ldc: qw)
                        }
                        BLAS.gemmNN(m: blockRows, n: d, k: own, a: scores + prefix, lda: width, b: ownValues, ldb: d,
                                    beta: prefix > 0 ? 1 : 0, c: out, ldc: qw)
                        blockStart += blockRows
                    }
                }
                head += workers
            }
        }
    }

    /// Causal grouped-query attention for `rows` new queries at positions `firstPosition...`,
    /// against cached keys/values `0 ..< firstPosition + rows`; writes `[rows × heads·d]` to
    /// `ws.attention`. Query head h reads KV head h / (heads / kvHeads) (Hugging Face `repeat_kv`).
    /// Scores use sgemm/sgemv in blocks of queries, each block only against the keys it can see.
    /// `keys` and `values`: the layer's Float32 cache `[kvHeads × positions × d]`, key heads `headStride` apart.
    private func attend(keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>, headStride: Int, rows: Int,
                        firstPosition: Int, workspace ws: Workspace) {
        let c = configuration
        let d = c.headDimension, qw = c.queryWidth
        let group = c.attentionHeads / c.keyValueHeads
        let scale = 1 / Float(d).squareRoot()
        let workers = ws.scores.count
        // Work units: (head, block of query rows), each costing rows × visible keys. Heads taken in
        // turn left one worker 5 of SmolLM2's 9 heads and the other 4; the longest units first,
        // each to the least loaded worker, balance them (each unit writes its own outputs, so
        // the assignment does not change any value).
        var units: [(head: Int, start: Int, rows: Int, visible: Int)] = []
        for head in 0..<c.attentionHeads {
            var blockStart = 0
            while blockStart < rows {
                let blockRows = min(Workspace.attentionBlock, rows - blockStart)
                units.append((head, blockStart, blockRows, firstPosition + blockStart + blockRows))
                blockStart += blockRows
            }
        }
        units.sort { $0.rows * $0.visible > $1.rows * $1.visible }
        var assigned = [[(head: Int, start: Int, rows: Int, visible: Int)]](repeating: [], count: workers)
        var load = [Int](repeating: 0, count: workers)
        for u in units {
            let w = load.indices.min { load[$0] < load[$1] }!
            assigned[w].append(u)
            load[w] += u.rows * u.visible
        }
        let box = UncheckedSendableBox((ws, keys, values, assigned))  // each worker owns its units and score buffer
        Parallel.forEach(workers) { worker in
            let (ws, keys, values, assigned) = box.value
            let scores = ws.scores[worker]
            for u in assigned[worker] {
                let kvHead = u.head / group
                let k = keys + kvHead * headStride, v = values + kvHead * headStride
                let q = ws.query + u.start * qw + u.head * d
                let out = ws.attention + u.start * qw + u.head * d
                BLAS.gemmNT(m: u.rows, n: u.visible, k: d, alpha: scale, a: q, lda: qw, b: k, ldb: d, c: scores, ldc: u.visible)
                for r in 0..<u.rows {
                    let row = scores + r * u.visible
                    let seen = firstPosition + u.start + r + 1
                    VectorMath.softmax(row, count: seen)
                    if seen < u.visible { (row + seen).update(repeating: 0, count: u.visible - seen) }
                }
                BLAS.gemmNN(m: u.rows, n: d, k: u.visible, a: scores, lda: u.visible, b: v, ldb: d, c: out, ldc: qw)
            }
        }
    }

    /// Attention of one new query row (decoding) at `position`, reading the cache as stored (Float32
    /// or half, `KVCache.rows`; each key head's rows contiguous). Each cached key and value row is
    /// read once per token: the query heads that share a key/value head are scored and weighted
    /// together (OpenBLAS's sgemv ran these 64-wide shapes at a third of the memory bandwidth, and
    /// one head at a time read every row `group` times). The positions are split between workers, each
    /// keeping an unnormalised softmax state per query head (maximum m, Σ e^(s − m), Σ e^(s − m)·v),
    /// merged after as in flash-decoding (Dao et al. 2023), so two workers share even 3 key heads evenly.
    /// `query` `[heads·d]` in, `output` `[heads·d]` out (rows of the workspace's query and attention
    /// buffers; a batched step passes each sequence's row).
    /// `buffer` and `serial`: a batched step that gives each worker whole rows runs this with one
    /// part, in that worker's score buffer.
    func attendOne(layer l: Int, position: Int, cache: KVCache, query: UnsafeMutablePointer<Float>, into output: UnsafeMutablePointer<Float>,
                   workspace ws: Workspace, buffer first: Int = 0, serial: Bool = false) {
        let c = configuration
        let d = c.headDimension, heads = c.attentionHeads, kvHeads = c.keyValueHeads, headStride = cache.headStride
        let group = heads / kvHeads
        let scale = 1 / Float(d).squareRoot()
        let visible = position + 1
        // Fewer than 64 positions per worker are not worth a parallel region.
        let parts = serial ? 1 : min(ws.scores.count, Parallel.partCount(visible, minimum: 64))
        let stored = cache.rows(layer: l)
        // Per part p, in ws.scores[p]: scaled queries [heads × d] | weighted values [heads × d] |
        // maxima [heads] | sums [heads] | one group's scores [group × positions].
        let weightedAt = heads * d, maximaAt = 2 * heads * d, sumsAt = maximaAt + heads, scoresAt = sumsAt + heads
        let box = UncheckedSendableBox((ws, stored, query))
        Parallel.forEach(parts) { p in
            let (ws, stored, query) = box.value
            let positions = Parallel.part(p, of: parts, count: visible)
            let n = positions.count
            let q = ws.scores[first + p], weighted = q + weightedAt, maxima = q + maximaAt, sums = q + sumsAt, scores = q + scoresAt
            for i in 0..<(heads * d) { q[i] = query[i] * scale }
            // Over a half cache each kernel prefetches the rows the next one reads (this head's values
            // while its keys are scored, the next head's keys while the values are summed): the rows
            // are cold after a layer's weights streamed through, and a worker's share of a head is a
            // short stream that pays the memory's latency before the hardware prefetcher catches up.
            // Measured (docs/BENCHMARKS.md, AMD EPYC Zen 3): a half cache's attention 0.9 → 0.8 ms per
            // token; a Float32 cache, twice the bytes and bound by bandwidth rather than latency, was
            // 0.965× as fast with it, so it reads without.
            for kvHead in 0..<kvHeads {
                let first = kvHead * group  // query heads first ..< first + group read this key head
                let at = kvHead * headStride, nextAt = kvHead + 1 < kvHeads ? at + headStride : nil
                switch stored {
                case .float32(let keys, _):
                    DecodeKernels.attentionScores(keys: keys + at, ld: d, queries: q + first * d, group: group, headSize: d,
                                                  positions: positions, into: scores, stride: n)
                case .float16(let keys, let values):
                    DecodeKernels.attentionScores(keys: keys + at, ld: d, queries: q + first * d, group: group, headSize: d,
                                                  positions: positions, into: scores, stride: n, prefetching: values + at)
                }
                for g in 0..<group {
                    let row = scores + g * n
                    let m = VectorMath.maximum(row, count: n)
                    maxima[first + g] = m
                    sums[first + g] = VectorMath.exponentiate(row, count: n, shift: m)
                }
                switch stored {
                case .float32(_, let values):
                    DecodeKernels.attentionValues(values: values + at, ld: d, weights: scores, stride: n, group: group,
                                                  headSize: d, positions: positions, into: weighted + first * d)
                case .float16(let keys, let values):
                    DecodeKernels.attentionValues(values: values + at, ld: d, weights: scores, stride: n, group: group,
                                                  headSize: d, positions: positions, into: weighted + first * d,
                                                  prefetching: nextAt.map { UnsafePointer(keys + $0) })
                }
            }
        }
        for head in 0..<heads {
            var m = -Float.infinity
            for p in 0..<parts { m = max(m, ws.scores[first + p][maximaAt + head]) }
            var total: Float = 0
            let out = output + head * d
            for p in 0..<parts {
                let state = ws.scores[first + p]
                let factor = parts == 1 ? 1 : VectorMath.exp(state[maximaAt + head] - m)
                total += factor * state[sumsAt + head]
                let weighted = state + weightedAt + head * d
                if p == 0 {
                    for j in 0..<d { out[j] = factor * weighted[j] }
                } else {
                    for j in 0..<d { out[j] += factor * weighted[j] }
                }
            }
            let inverse = 1 / total
            for j in 0..<d { out[j] *= inverse }
        }
    }
}
