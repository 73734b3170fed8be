import Foundation

/// Float64 triplet losses written straight from their definitions (the batch-all one literally over the P×N
/// matrix), sharing no code with Training's fast implementation. Each also reports how far the input is from a
/// kink (a hinge at 0, or a tie for the hardest positive or negative), so finite differences can stay away from them.
enum TripletReference {
    struct Result {
        var loss: Double
        var gradient: [Double]      // dL/de [count, dim]
        var kinkGap: Double         // smallest |hinge| or argmax/argmin gap; .infinity when there is none
        var zeroHinges: Int         // hinges exactly at 0
    }

    /// d[i][j] = Σ_k (e_ik − e_jk)², every ordered pair computed on its own.
    static func distances(_ e: [Double], count: Int, dim: Int) -> [[Double]] {
        (0..<count).map { i in
            (0..<count).map { j in (0..<dim).reduce(0.0) { s, k in s + (e[i * dim + k] - e[j * dim + k]) * (e[i * dim + k] - e[j * dim + k]) } }
        }
    }

    /// dL/de from dL/dd per ordered pair: d_ij changes e_i by 2(e_i − e_j) and e_j by −2(e_i − e_j).
    static func embeddingGradient(_ gd: [[Double]], _ e: [Double], count: Int, dim: Int) -> [Double] {
        var g = [Double](repeating: 0, count: count * dim)
        for i in 0..<count {
            for j in 0..<count where gd[i][j] != 0 {
                for k in 0..<dim {
                    let t = 2 * gd[i][j] * (e[i * dim + k] - e[j * dim + k])
                    g[i * dim + k] += t
                    g[j * dim + k] -= t
                }
            }
        }
        return g
    }

    /// Mean over every (positive pair, negative pair) of max(d_p − d_n + margin, 0); active when the hinge is
    /// > 0 (or ≥ 0 with `inclusive`, the wrong tie rule, to show that the tests can tell the two apart).
    static func batchAll(_ e: [Double], labels: [Int32], dim: Int, margin: Double, inclusive: Bool = false) -> Result {
        let count = labels.count
        let d = distances(e, count: count, dim: dim)
        var positives: [(Int, Int)] = [], negatives: [(Int, Int)] = []
        for i in 0..<count {
            for j in 0..<count {
                if labels[i] == labels[j] { positives.append((i, j)) } else { negatives.append((i, j)) }
            }
        }
        guard !positives.isEmpty, !negatives.isEmpty else {
            return Result(loss: 0, gradient: [Double](repeating: 0, count: count * dim), kinkGap: .infinity, zeroHinges: 0)
        }
        let dp = positives.map { d[$0.0][$0.1] }, dn = negatives.map { d[$0.0][$0.1] }
        var loss = 0.0, gap = Double.infinity, zeros = 0
        var activeNegatives = [Double](repeating: 0, count: dp.count)
        var activePositives = [Double](repeating: 0, count: dn.count)
        dp.withUnsafeBufferPointer { dp in
            dn.withUnsafeBufferPointer { dn in
                for a in 0..<dp.count {
                    for b in 0..<dn.count {
                        let h = dp[a] - dn[b] + margin
                        gap = min(gap, abs(h))
                        if h == 0 { zeros += 1 }
                        if h > 0 || (inclusive && h == 0) {
                            loss += h
                            activeNegatives[a] += 1
                            activePositives[b] += 1
                        }
                    }
                }
            }
        }
        let pn = Double(dp.count) * Double(dn.count)
        var gd = [[Double]](repeating: [Double](repeating: 0, count: count), count: count)
        for (a, (i, j)) in positives.enumerated() { gd[i][j] += activeNegatives[a] / pn }
        for (b, (i, j)) in negatives.enumerated() { gd[i][j] -= activePositives[b] / pn }
        return Result(loss: loss / pn, gradient: embeddingGradient(gd, e, count: count, dim: dim), kinkGap: gap, zeroHinges: zeros)
    }

    /// Hermans et al.: per anchor with another positive and a negative, the farthest positive (first on ties)
    /// against the nearest negative (first on ties); hinge at the margin, or softplus without a margin.
    static func batchHard(_ e: [Double], labels: [Int32], dim: Int, margin: Double, soft: Bool) -> Result {
        let count = labels.count
        let d = distances(e, count: count, dim: dim)
        var gd = [[Double]](repeating: [Double](repeating: 0, count: count), count: count)
        var terms: [(a: Int, p: Int, n: Int)] = []
        var gap = Double.infinity, zeros = 0
        for a in 0..<count {
            let same = (0..<count).filter { $0 != a && labels[$0] == labels[a] }
            let other = (0..<count).filter { labels[$0] != labels[a] }
            guard let p = same.max(by: { d[a][$0] < d[a][$1] }), let n = other.min(by: { d[a][$0] < d[a][$1] }) else { continue }
            for j in same where j != p { gap = min(gap, d[a][p] - d[a][j]) }
            for j in other where j != n { gap = min(gap, d[a][j] - d[a][n]) }
            terms.append((a, p, n))
        }
        guard !terms.isEmpty else {
            return Result(loss: 0, gradient: [Double](repeating: 0, count: count * dim), kinkGap: .infinity, zeroHinges: 0)
        }
        var loss = 0.0
        for (a, p, n) in terms {
            let x = d[a][p] - d[a][n]
            let value: Double, slope: Double
            if soft {
                value = log1p(exp(x))
                slope = 1 / (1 + exp(-x))
            } else {
                let h = x + margin
                gap = min(gap, abs(h))
                if h == 0 { zeros += 1 }
                (value, slope) = h > 0 ? (h, 1) : (0, 0)
            }
            loss += value
            gd[a][p] += slope / Double(terms.count)
            gd[a][n] -= slope / Double(terms.count)
        }
        return Result(loss: loss / Double(terms.count), gradient: embeddingGradient(gd, e, count: count, dim: dim),
                      kinkGap: gap, zeroHinges: zeros)
    }
}
