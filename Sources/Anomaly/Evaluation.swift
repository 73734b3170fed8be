import Dispatch
import Foundation

/// The reference experiment's tables: for each anchor count, the AUC over the test images and the
/// milliseconds per image end to end (embed + distances + nearest) at each batch size.
public struct Evaluation {
    public struct Row: Codable, Equatable {
        public var anchors: Int
        public var auc: Double
        /// Batch size → milliseconds per image (embedding time of that batch size + this row's k-NN time).
        public var msPerImage: [Int: Double]
    }

    public var rows: [Row]
    /// Scores of the test images with the largest anchor count (for the report).
    public var scores: [Double]
    public var labels: [Int]
    public var threshold: Double?
    public var k: Int

    /// Embeds anchors and test images once, then scores with each anchor count (the first N anchors).
    /// Timing: each batch size embeds all test images once (median of the batches' per-image times
    /// would hide per-batch overhead, so total time / images is used), then each anchor count's k-NN
    /// is timed at the same batch size; their sum is the end-to-end time per image.
    public static func run(embedder: Embedder, anchors: ImageSet, test: ImageSet, anchorCounts: [Int], batches: [Int],
                           k: Int, fpr: Double?, progress: ((String) -> Void)? = nil) throws -> Evaluation {
        guard let maxAnchors = anchorCounts.max(), maxAnchors <= anchors.count else {
            throw DataError(file: "", "anchor counts \(anchorCounts) need \(anchorCounts.max() ?? 0) anchor images; \(anchors.count) given")
        }
        progress?("embedding \(maxAnchors) anchors")
        let (anchorEmbeddings, dim) = try embedder.embed(anchors.prefix(maxAnchors), batchSize: 64)

        var embedMsPerImage: [Int: Double] = [:]
        var testEmbeddings: [Float] = []
        for b in batches {
            progress?("embedding \(test.count) test images at batch \(b)")
            let t0 = DispatchTime.now().uptimeNanoseconds
            let (values, _) = try embedder.embed(test, batchSize: b)
            embedMsPerImage[b] = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6 / Double(test.count)
            testEmbeddings = values
        }
        var rows: [Row] = []
        var finalScores: [Double] = []
        var threshold: Double?
        for n in anchorCounts {
            let index = try NearestNeighbors(anchors: Array(anchorEmbeddings.prefix(n * dim)), dim: dim, threads: embedder.session.options.threads)
            var timing: [Int: Double] = [:]
            var scores: [Double] = []
            for b in batches {
                let t0 = DispatchTime.now().uptimeNanoseconds
                var all: [Double] = []
                all.reserveCapacity(test.count)
                for start in stride(from: 0, to: test.count, by: b) {
                    let end = min(test.count, start + b)
                    all += try index.scores(Array(testEmbeddings[start * dim..<end * dim]), k: k)
                }
                let knnMs = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6 / Double(test.count)
                timing[b] = embedMsPerImage[b]! + knnMs
                scores = all
            }
            rows.append(Row(anchors: n, auc: try ROC.auc(scores: scores, labels: test.labels), msPerImage: timing))
            if n == maxAnchors {
                finalScores = scores
                if let fpr {
                    // Threshold from normal images only: the anchors themselves, leave-one-out.
                    let normal = try index.scores(anchorEmbeddings, k: k, skipSelf: true)
                    threshold = try ROC.threshold(normalScores: normal, fpr: fpr)
                }
            }
        }
        return Evaluation(rows: rows, scores: finalScores, labels: test.labels, threshold: threshold, k: k)
    }

    /// False- and true-positive rates of the rule score > threshold on the test images: anomalies above
    /// it over the anomaly count, normal images above it over the normal count. Nil without both classes.
    public func rates(threshold: Double) -> (fpr: Double, tpr: Double)? {
        var normal = 0, anomalous = 0, falsePositives = 0, truePositives = 0
        for (score, label) in zip(scores, labels) {
            if label == 1 {
                anomalous += 1
                if score > threshold { truePositives += 1 }
            } else {
                normal += 1
                if score > threshold { falsePositives += 1 }
            }
        }
        guard normal > 0, anomalous > 0 else { return nil }
        return (Double(falsePositives) / Double(normal), Double(truePositives) / Double(anomalous))
    }

    public func table(batches: [Int]) -> String {
        var lines = ["anchors      AUC" + batches.map { String(format: "  ms/img@b%-4d", $0) }.joined()]
        for r in rows {
            lines.append(String(format: "%7d   %.4f", r.anchors, r.auc) + batches.map { String(format: "  %12.3f", r.msPerImage[$0] ?? .nan) }.joined())
        }
        return lines.joined(separator: "\n")
    }
}
