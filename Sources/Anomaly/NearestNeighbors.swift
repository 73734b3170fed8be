import CBLAS
import Foundation

/// Exact k-nearest-neighbour distances to a set of anchors.
///
/// Distances use ‖q−a‖² = ‖q‖² + ‖a‖² − 2 q·a with one dgemm. Embeddings can share a large common
/// offset with tiny variations (early checkpoints sit around one vector of norm 3–5 with a spread of
/// 1e-6..1e-5): the expansion would cancel to zero in float32. So both sides are centred on the
/// anchor mean first and everything is accumulated in float64.
public struct NearestNeighbors {
    public let dim: Int
    public let count: Int
    /// Anchor mean (float64) and centred anchors, row-major [count, dim].
    let mean: [Double]
    let anchors: [Double]
    let anchorNorms: [Double]

    public init(anchors values: [Float], dim: Int) throws {
        guard dim > 0, values.count % dim == 0, values.count > 0 else {
            throw DataError(file: "", "anchor embeddings: \(values.count) values do not form rows of \(dim)")
        }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw DataError(file: "", "anchor embedding \(bad / dim) contains \(values[bad])")
        }
        self.dim = dim
        count = values.count / dim
        var mean = [Double](repeating: 0, count: dim)
        for r in 0..<count { for j in 0..<dim { mean[j] += Double(values[r * dim + j]) } }
        for j in 0..<dim { mean[j] /= Double(count) }
        var centred = [Double](repeating: 0, count: values.count)
        var norms = [Double](repeating: 0, count: count)
        for r in 0..<count {
            var s = 0.0
            for j in 0..<dim {
                let v = Double(values[r * dim + j]) - mean[j]
                centred[r * dim + j] = v
                s += v * v
            }
            norms[r] = s
        }
        self.mean = mean
        anchors = centred
        anchorNorms = norms
    }

    /// For each query row: the mean distance to its `k` nearest anchors (k = 1: the nearest).
    public func scores(_ queries: [Float], k: Int = 1, skipSelf: Bool = false) throws -> [Double] {
        guard k >= 1, k + (skipSelf ? 1 : 0) <= count else {
            throw DataError(file: "", "k = \(k) needs at least \(k + (skipSelf ? 1 : 0)) anchors; the index has \(count)")
        }
        guard queries.count % dim == 0 else {
            throw DataError(file: "", "query embeddings have \(queries.count) values, not rows of \(dim) (index dimension)")
        }
        if let bad = queries.firstIndex(where: { !$0.isFinite }) {
            throw DataError(file: "", "query embedding \(bad / dim) contains \(queries[bad])")
        }
        let m = queries.count / dim
        var scores = [Double](repeating: 0, count: m)
        // Blocks of queries keep the distance matrix small.
        let block = 256
        var q = [Double](repeating: 0, count: block * dim)
        var dots = [Double](repeating: 0, count: block * count)
        var best = [Double](repeating: 0, count: k + 1)
        for start in stride(from: 0, to: m, by: block) {
            let rows = min(block, m - start)
            var qNorms = [Double](repeating: 0, count: rows)
            for r in 0..<rows {
                var s = 0.0
                for j in 0..<dim {
                    let v = Double(queries[(start + r) * dim + j]) - mean[j]
                    q[r * dim + j] = v
                    s += v * v
                }
                qNorms[r] = s
            }
            // dots[rows, count] = q[rows, dim] · anchorsᵀ
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(count), Int32(dim),
                        1, q, Int32(dim), anchors, Int32(dim), 0, &dots, Int32(count))
            for r in 0..<rows {
                // Keep the k (+1 when skipping the query's own anchor) smallest squared distances.
                let keep = k + (skipSelf ? 1 : 0)
                var filled = 0
                for a in 0..<count {
                    let d2 = max(0, qNorms[r] + anchorNorms[a] - 2 * dots[r * count + a])
                    if filled < keep {
                        var i = filled
                        while i > 0 && best[i - 1] > d2 { best[i] = best[i - 1]; i -= 1 }
                        best[i] = d2
                        filled += 1
                    } else if d2 < best[keep - 1] {
                        var i = keep - 1
                        while i > 0 && best[i - 1] > d2 { best[i] = best[i - 1]; i -= 1 }
                        best[i] = d2
                    }
                }
                let chosen = skipSelf ? Array(best[1..<keep]) : Array(best[0..<k])
                scores[start + r] = chosen.reduce(0) { $0 + $1.squareRoot() } / Double(k)
            }
        }
        return scores
    }
}
