import Foundation

/// ROC analysis of anomaly scores: label 1 = anomaly (the positive class), higher score = more anomalous.
public enum ROC {
    /// Area under the ROC curve, exactly, as the Mann–Whitney U statistic with ties counted half.
    public static func auc(scores: [Double], labels: [Int]) throws -> Double {
        guard scores.count == labels.count else { throw DataError(file: "", "\(scores.count) scores for \(labels.count) labels") }
        let positives = labels.filter { $0 == 1 }.count, negatives = labels.count - positives
        guard positives > 0, negatives > 0 else {
            throw DataError(file: "", "AUC needs both normal and anomalous images (\(negatives) normal, \(positives) anomalous)")
        }
        // Average ranks over groups of equal scores.
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var rankSum = 0.0
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            let averageRank = Double(i + j) / 2 + 1
            for t in i...j where labels[order[t]] == 1 { rankSum += averageRank }
            i = j + 1
        }
        let u = rankSum - Double(positives) * Double(positives + 1) / 2
        return u / (Double(positives) * Double(negatives))
    }

    /// (false positive rate, true positive rate) points from the highest threshold down.
    public static func curve(scores: [Double], labels: [Int]) -> [(fpr: Double, tpr: Double)] {
        let positives = Double(labels.filter { $0 == 1 }.count), negatives = Double(labels.count) - positives
        guard positives > 0, negatives > 0 else { return [] }
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        var points: [(Double, Double)] = [(0, 0)]
        var tp = 0.0, fp = 0.0
        var i = 0
        while i < order.count {
            let s = scores[order[i]]
            while i < order.count && scores[order[i]] == s {
                if labels[order[i]] == 1 { tp += 1 } else { fp += 1 }
                i += 1
            }
            points.append((fp / negatives, tp / positives))
        }
        return points
    }

    /// A threshold from normal scores only, so that at most `fpr` of them exceed it
    /// (rule: score > threshold ⇒ anomaly). Needs no anomalies at all.
    public static func threshold(normalScores: [Double], fpr: Double) throws -> Double {
        guard !normalScores.isEmpty else { throw DataError(file: "", "calibration needs at least one normal image") }
        guard fpr >= 0, fpr < 1 else { throw DataError(file: "", "--fpr must be in [0, 1), got \(fpr)") }
        let sorted = normalScores.sorted()
        let n = sorted.count
        // The smallest order statistic with at most floor(fpr·n) scores above it.
        let allowedAbove = Int((fpr * Double(n)).rounded(.down))
        return sorted[n - 1 - min(allowedAbove, n - 1)]
    }
}
