import Foundation

/// Batch-hard and soft-margin triplet losses (Hermans, Beyer and Leibe 2017, "In Defense of the Triplet Loss").
///
/// An anchor a counts when it has another sample of its label and a sample of another label. Its hardest
/// positive is argmax_{j ≠ a, same label} d_aj, its hardest negative argmin_{other label} d_aj; on equal distances
/// the first index wins (the gradient then flows through that one pair only). With x_a = d_ap − d_an:
///   batch-hard   L = mean over counted anchors of max(x_a + margin, 0), active only when x_a + margin > 0
///                (a hinge exactly at 0 has value 0 and gradient 0, as in batch-all);
///   soft-margin  L = mean over counted anchors of softplus(x_a) = log(1 + exp(x_a)), the margin unused.
/// No counted anchor (one class, or every label unique) gives loss 0 and a zero gradient.
extension TripletLoss {
    static func batchHard(_ d: [Double], labels: [Int32], margin: Double, soft: Bool,
                          distanceGradient: inout [Double]?) -> Double {
        let count = labels.count
        var anchors: [(positive: Int, negative: Int)] = []   // indices into d
        for a in 0..<count {
            var hardestPositive = -1, hardestNegative = -1
            for j in 0..<count where j != a {
                let index = a * count + j
                if labels[j] == labels[a] {
                    if hardestPositive < 0 || d[index] > d[hardestPositive] { hardestPositive = index }
                } else {
                    if hardestNegative < 0 || d[index] < d[hardestNegative] { hardestNegative = index }
                }
            }
            if hardestPositive >= 0, hardestNegative >= 0 { anchors.append((hardestPositive, hardestNegative)) }
        }
        guard !anchors.isEmpty else { return 0 }
        let scale = 1 / Double(anchors.count)   // dL/dvalue of each counted anchor
        var total = 0.0
        for (positive, negative) in anchors {
            let x = d[positive] - d[negative]
            let value: Double, slope: Double
            if soft {
                (value, slope) = (softplus(x), sigmoid(x))
            } else {
                let hinge = x + margin
                (value, slope) = hinge > 0 ? (hinge, 1) : (0, 0)
            }
            total += value
            distanceGradient?[positive] += slope * scale
            distanceGradient?[negative] -= slope * scale
        }
        return total / Double(anchors.count)
    }

    /// log(1 + exp(x)) = max(x, 0) + log1p(exp(−|x|)): no overflow for large x, no lost digits for very negative x.
    static func softplus(_ x: Double) -> Double { max(x, 0) + log1p(exp(-abs(x))) }

    /// softplus′(x) = 1 / (1 + exp(−x)), evaluated with exp of a non-positive number only.
    static func sigmoid(_ x: Double) -> Double {
        if x >= 0 { return 1 / (1 + exp(-x)) }
        let z = exp(x)
        return z / (1 + z)
    }
}
