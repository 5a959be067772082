import LinearAlgebra

extension LlamaModel {
    /// One decoding step for several independent sequences at once: row b is `tokens[b]`, the next
    /// token of the sequence whose keys and values are in `caches[b]` (at position `caches[b].count`,
    /// each cache at its own length). Every projection runs once over all rows, so the weights are
    /// read once per step for the whole batch; RoPE and attention run per row against that row's
    /// cache. Appends each row's key and value to its cache and advances it; the final-normed rows
    /// are left in the workspace (read them with `logits(workspace:rows: 0..<tokens.count)`).
    /// With one row it computes what `forward` does for that token (the same kernels).
    public func forwardBatch(_ tokens: [Int], caches: [KVCache], workspace ws: Workspace) {
        let c = configuration
        let b = tokens.count
        precondition(b > 0 && b == caches.count && b <= ws.rows, "\(b) rows with \(caches.count) caches in a workspace of \(ws.rows) rows")
        precondition(Set(caches.map { ObjectIdentifier($0) }).count == b, "each row needs its own cache")
        for cache in caches {
            precondition(cache.count < cache.capacity && cache.count < ws.contextCapacity,
                         "position \(cache.count) exceeds a cache (\(cache.capacity)) or the workspace (\(ws.contextCapacity))")
        }
        precondition(Parallel.workers <= ws.workers, "the worker count was raised after this workspace was sized")
        let h = c.hiddenSize, qw = c.queryWidth, kvw = c.keyValueWidth, inter = c.intermediateSize
        embed(tokens[...], workspace: ws)
        for l in layers.indices {
            let layer = layers[l]
            layer.attentionNorm.withUnsafeBufferPointer { w in
                for r in 0..<b {
                    VectorMath.rmsNorm(ws.hidden + r * h, weight: w.baseAddress!, epsilon: c.rmsNormEpsilon, count: h, into: ws.normed + r * h)
                }
            }
            layer.attentionInput.apply(ws.normed, rows: b, ldx: h, into: [ws.query, ws.newKeys, ws.newValues], ldy: [qw, kvw, kvw],
                                       scratch: ws.scratch)
            for (r, cache) in caches.enumerated() {
                let position = cache.count
                ws.rotary.rotate(ws.query + r * qw, rows: 1, heads: c.attentionHeads, firstPosition: position)
                ws.rotary.rotate(ws.newKeys + r * kvw, rows: 1, heads: c.keyValueHeads, firstPosition: position)
                cache.write(layer: l, positions: position..<(position + 1), keys: ws.newKeys + r * kvw, values: ws.newValues + r * kvw)
            }
            let workers = min(ws.scores.count, Parallel.activeWorkers)
            if b >= workers && workers > 1 {
                // At least one row per worker: each worker attends whole rows in its own buffer (one
                // region for the batch, rather than one per row).
                let box = UncheckedSendableBox((self, caches, ws))  // disjoint rows and score buffers per worker
                Parallel.forEach(workers) { w in
                    let (model, caches, ws) = box.value
                    for r in stride(from: w, to: b, by: workers) {
                        model.attendOne(layer: l, position: caches[r].count, cache: caches[r], query: ws.query + r * qw,
                                        into: ws.attention + r * qw, workspace: ws, buffer: w, serial: true)
                    }
                }
            } else {
                for (r, cache) in caches.enumerated() {
                    attendOne(layer: l, position: cache.count, cache: cache, query: ws.query + r * qw, into: ws.attention + r * qw, workspace: ws)
                }
            }
            layer.attentionOutput.apply(ws.attention, rows: b, ldx: qw, into: [ws.normed], ldy: [h], scratch: ws.scratch)
            VectorMath.add(ws.normed, into: ws.hidden, count: b * h)
            layer.mlpNorm.withUnsafeBufferPointer { w in
                for r in 0..<b {
                    VectorMath.rmsNorm(ws.hidden + r * h, weight: w.baseAddress!, epsilon: c.rmsNormEpsilon, count: h, into: ws.normed + r * h)
                }
            }
            layer.mlpInput.apply(ws.normed, rows: b, ldx: h, into: [ws.gate, ws.up], ldy: [inter, inter], scratch: ws.scratch)
            VectorMath.siluMultiply(ws.gate, ws.up, count: b * inter)
            layer.mlpHidden.apply(ws.gate, rows: b, ldx: inter, into: [ws.normed], ldy: [h], scratch: ws.scratch)
            VectorMath.add(ws.normed, into: ws.hidden, count: b * h)
        }
        for cache in caches { cache.advance(by: 1) }
        finalNorm.withUnsafeBufferPointer { w in
            for r in 0..<b {
                VectorMath.rmsNorm(ws.hidden + r * h, weight: w.baseAddress!, epsilon: c.rmsNormEpsilon, count: h, into: ws.normed + r * h)
            }
        }
    }
}
