import LinearAlgebra

/// The row order of Q and K weights.
///
/// llama.cpp's HF→GGUF converter permutes the rows of `attn_q` and `attn_k` within each head so that
/// RoPE rotates adjacent pairs (2i, 2i+1) (Meta's original layout): GGUF row `2i + j` of a head is HF
/// row `j·(d/2) + i`. lowrank keeps the Hugging Face layout internally (rotate-half RoPE pairs i with
/// i + d/2), so GGUF Q/K are un-permuted on load and checkpoints stay HF-compatible.
public enum RoPEPermutation {
    /// GGUF (interleaved) → Hugging Face (half-split) row order. `matrix` is `[heads·d × inputs]`.
    public static func unpermute(_ matrix: Matrix<Float>, heads: Int) -> Matrix<Float> {
        reorder(matrix, heads: heads) { half, i, j in (2 * i + j, j * half + i) }
    }

    /// Hugging Face → GGUF row order (what the converter does), for writing GGUF files.
    public static func permute(_ matrix: Matrix<Float>, heads: Int) -> Matrix<Float> {
        reorder(matrix, heads: heads) { half, i, j in (j * half + i, 2 * i + j) }
    }

    /// `mapping(half, i, j)` gives (source row, destination row) within a head.
    private static func reorder(_ matrix: Matrix<Float>, heads: Int, _ mapping: (Int, Int, Int) -> (Int, Int)) -> Matrix<Float> {
        precondition(matrix.rows % heads == 0 && (matrix.rows / heads) % 2 == 0, "rows must split into heads of even size")
        let d = matrix.rows / heads
        let half = d / 2
        let n = matrix.columns
        var out = matrix
        matrix.storage.withUnsafeBufferPointer { src in
            out.storage.withUnsafeMutableBufferPointer { dst in
                for h in 0..<heads {
                    for i in 0..<half {
                        for j in 0..<2 {
                            let (from, to) = mapping(half, i, j)
                            let s = (h * d + from) * n
                            let t = (h * d + to) * n
                            for c in 0..<n { dst[t + c] = src[s + c] }
                        }
                    }
                }
            }
        }
        return out
    }
}
