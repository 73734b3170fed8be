import Engine
import Foundation

/// Exact k-nearest-neighbour distances to a set of anchors.
///
/// Candidates come from one sgemm, ‖q−a‖² = ‖q‖² + ‖a‖² − 2 q·a. Embeddings can share a large common
/// offset with tiny variations (early checkpoints sit around one vector of norm 3–5 with a spread of
/// 1e-6..1e-5): the expansion would cancel to zero in float32. So both sides are centred on the anchor
/// mean (computed in float64) before the expansion, and the norms are accumulated in float64.
/// The few best candidates of each query are then measured again directly, Σ(q−a)² in float64 on the
/// original values, so the scores are the exact distances whatever the rounding of the expansion.
public struct NearestNeighbors {
    public let dim: Int
    public let count: Int
    /// Threads for the distance GEMM (the commands pass `--threads`).
    public let threads: Int
    /// Anchor mean (float64), centred anchors (float32, for the sgemm) and their norms (float64).
    let mean: [Double]
    let centred: [Float]
    let centredNorms: [Double]
    /// The anchors as given, for the exact distances.
    let anchors: [Float]
    /// Candidates re-measured per query beyond the k needed: a margin for the expansion's rounding.
    static let extraCandidates = 8

    public init(anchors values: [Float], dim: Int, threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws {
        guard dim > 0, values.count % dim == 0, values.count > 0 else {
            throw DataError(file: "", "anchor embeddings: \(values.count) values do not form rows of \(dim)")
        }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw DataError(file: "", "anchor embedding \(bad / dim) contains \(values[bad])")
        }
        self.dim = dim
        self.threads = max(1, threads)
        count = values.count / dim
        let mean = Self.columnMeans(values, dim: dim)
        var centred = [Float](repeating: 0, count: values.count)
        var norms = [Double](repeating: 0, count: count)
        for r in 0..<count {
            var s = 0.0
            for j in 0..<dim {
                let v = Float(Double(values[r * dim + j]) - mean[j])
                centred[r * dim + j] = v
                s += Double(v) * Double(v)
            }
            norms[r] = s
        }
        self.mean = mean
        self.centred = centred
        centredNorms = norms
        anchors = values
    }

    /// The mean of the rows of `values` (row-major, `dim` wide), accumulated in float64.
    static func columnMeans(_ values: [Float], dim: Int) -> [Double] {
        let count = values.count / dim
        var mean = [Double](repeating: 0, count: dim)
        for r in 0..<count { for j in 0..<dim { mean[j] += Double(values[r * dim + j]) } }
        for j in 0..<dim { mean[j] /= Double(count) }
        return mean
    }

    /// For each query row: the mean distance to its `k` nearest anchors (k = 1: the nearest).
    /// With `skipSelf`, each query is one of the anchors and its own (zero) distance is left out.
    public func scores(_ queries: [Float], k: Int = 1, skipSelf: Bool = false) throws -> [Double] {
        // Compared without computing k + 1, which overflows for k = Int.max.
        guard k >= 1, k <= count - (skipSelf ? 1 : 0) else {
            throw DataError(file: "", "k = \(k) needs at least \(skipSelf ? "k + 1" : "k") anchors; the index has \(count)")
        }
        let needed = k + (skipSelf ? 1 : 0)
        guard queries.count % dim == 0 else {
            throw DataError(file: "", "query embeddings have \(queries.count) values, not rows of \(dim) (index dimension)")
        }
        if let bad = queries.firstIndex(where: { !$0.isFinite }) {
            throw DataError(file: "", "query embedding \(bad / dim) contains \(queries[bad])")
        }
        let m = queries.count / dim
        let keep = min(count, needed + NearestNeighbors.extraCandidates)
        var scores = [Double](repeating: 0, count: m)
        // Blocks of queries keep the distance matrix small.
        let block = 256
        var q = [Float](repeating: 0, count: block * dim)
        var dots = [Float](repeating: 0, count: block * count)
        var bestD2 = [Double](repeating: 0, count: keep)
        var bestIndex = [Int](repeating: 0, count: keep)
        var exact = [Double](repeating: 0, count: keep)
        for start in stride(from: 0, to: m, by: block) {
            let rows = min(block, m - start)
            var qNorms = [Double](repeating: 0, count: rows)
            for r in 0..<rows {
                var s = 0.0
                for j in 0..<dim {
                    let v = Float(Double(queries[(start + r) * dim + j]) - mean[j])
                    q[r * dim + j] = v
                    s += Double(v) * Double(v)
                }
                qNorms[r] = s
            }
            // dots[rows, count] = q[rows, dim] · centredᵀ
            try BLAS.sgemm(threads: threads, transB: true, m: rows, n: count, k: dim,
                           a: q, lda: dim, b: centred, ldb: dim, c: &dots, ldc: count)
            for r in 0..<rows {
                // The `keep` smallest approximate squared distances, by insertion.
                var filled = 0
                for a in 0..<count {
                    let d2 = qNorms[r] + centredNorms[a] - 2 * Double(dots[r * count + a])
                    if filled < keep || d2 < bestD2[keep - 1] {
                        var i = min(filled, keep - 1)
                        while i > 0 && bestD2[i - 1] > d2 {
                            bestD2[i] = bestD2[i - 1]
                            bestIndex[i] = bestIndex[i - 1]
                            i -= 1
                        }
                        bestD2[i] = d2
                        bestIndex[i] = a
                        filled = min(filled + 1, keep)
                    }
                }
                // Exact distances of the candidates, on the original values.
                let query = (start + r) * dim
                for c in 0..<keep {
                    let anchor = bestIndex[c] * dim
                    var s = 0.0
                    for j in 0..<dim {
                        let t = Double(queries[query + j]) - Double(anchors[anchor + j])
                        s += t * t
                    }
                    exact[c] = s.squareRoot()
                }
                exact.sort()
                let chosen = skipSelf ? exact[1...k] : exact[0..<k]
                scores[start + r] = chosen.reduce(0, +) / Double(k)
            }
        }
        return scores
    }
}
