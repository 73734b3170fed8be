/// The batch-all triplet loss of the reference recipe, without materialising the P×N matrix.
///
/// positives = every ordered pair (i, j) with label_i == label_j, i == j included (d_ii = 0);
/// negatives = every ordered pair with different labels;
/// L = 1/(P·N) Σ_p Σ_n max(d_p − d_n + margin, 0).
///
/// The negatives are sorted once; for a positive p, the hinge h = (d_p − d_n) + margin is non-increasing in d_n
/// (rounded subtraction and addition are monotone), so its active negatives are a prefix of the sorted list,
/// found by binary search on the very expression the brute force evaluates, and their hinges sum to
/// k·(d_p + margin) − (prefix sum of the first k d_n). O((P + N) log N) with P, N ≤ count².
///
/// Ties: a negative is active only when h > 0 strictly. A hinge exactly at 0 contributes 0 to the value and 0 to
/// the gradient (TensorFlow's relu has gradient 0 at 0), and equal distances always fall on the same side.
///
/// Gradient: dL/dd_p = (#active n for p)/(P·N); dL/dd_n = −(#p for which n is active)/(P·N). The negative at
/// sorted position r is active for p exactly when r < k_p, so its count is #{p : k_p > r}: a suffix sum of the
/// histogram of the k_p.
///
/// P = 0 cannot happen for a non-empty batch (the (i, i) pairs); N = 0 (one class) gives loss 0, zero gradient.
extension TripletLoss {
    static func batchAll(_ d: [Double], labels: [Int32], margin: Double, distanceGradient: inout [Double]?) -> Double {
        let count = labels.count
        var positives: [Int] = []       // index i·count + j into d
        var negatives: [Int] = []
        for i in 0..<count {
            for j in 0..<count {
                if labels[i] == labels[j] { positives.append(i * count + j) } else { negatives.append(i * count + j) }
            }
        }
        let p = positives.count, n = negatives.count
        guard p > 0, n > 0 else { return 0 }
        negatives.sort { d[$0] < d[$1] }
        let sorted = negatives.map { d[$0] }
        // prefix[k] = Σ of the k smallest negative distances.
        var prefix = [Double](repeating: 0, count: n + 1)
        for r in 0..<n { prefix[r + 1] = prefix[r] + sorted[r] }

        let combinations = Double(p) * Double(n)
        var total = 0.0
        // activeCounts[k] = how many positives have exactly k active negatives.
        var activeCounts = [Int](repeating: 0, count: n + 1)
        for index in positives {
            let dp = d[index]
            var lo = 0, hi = n
            while lo < hi {
                let mid = (lo + hi) / 2
                if dp - sorted[mid] + margin > 0 { lo = mid + 1 } else { hi = mid }
            }
            total += Double(lo) * (dp + margin) - prefix[lo]
            activeCounts[lo] += 1
            distanceGradient?[index] = Double(lo) / combinations
        }
        if distanceGradient != nil {
            var activeFor = p - activeCounts[0]     // #{p : k_p > r}, starting at r = 0
            for r in 0..<n {
                distanceGradient![negatives[r]] = -Double(activeFor) / combinations
                activeFor -= activeCounts[r + 1]
            }
        }
        return total / combinations
    }
}
