import Dispatch
import Foundation

/// The reference experiment's tables: for each anchor count, the AUC over the test images and the
/// milliseconds per image end to end (embed + distances + nearest) at each batch size, and beside them
/// the AUCs of the raw-pixel and PCA baselines on the same anchors and test images (`Baselines`).
public struct Evaluation {
    public struct Row: Codable, Equatable {
        public var anchors: Int
        public var auc: Double
        /// Batch size → milliseconds per image (embedding time of that batch size + this row's k-NN time).
        public var msPerImage: [Int: Double]
        /// The baselines' AUCs with the same anchors (nil when they were not computed).
        public var baselines: Baselines.AUCs? = nil
    }

    public var rows: [Row]
    /// Scores of the test images with the largest anchor count (for the report).
    public var scores: [Double]
    public var labels: [Int]
    public var threshold: Double?
    public var k: Int
    /// The PCA baseline's requested components; nil when the baselines were not computed.
    public var pcaComponents: Int? = nil

    /// Embeds anchors and test images once, then scores with each anchor count (the first N anchors).
    /// Timing: each batch size embeds all test images once (median of the batches' per-image times
    /// would hide per-batch overhead, so total time / images is used), then each anchor count's k-NN
    /// is timed at the same batch size; their sum is the end-to-end time per image.
    /// With `baselinePCAComponents`, both baselines are computed at each anchor count too (not timed).
    public static func run(embedder: Embedder, anchors: ImageSet, test: ImageSet, anchorCounts: [Int], batches: [Int],
                           k: Int, fpr: Double?, baselinePCAComponents: Int? = nil,
                           progress: ((String) -> Void)? = nil) throws -> Evaluation {
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
            var row = Row(anchors: n, auc: try ROC.auc(scores: scores, labels: test.labels), msPerImage: timing)
            if let components = baselinePCAComponents {
                progress?("baselines at \(n) anchors: raw pixels, PCA-\(components)")
                do {
                    row.baselines = try Baselines.evaluate(anchors: anchors.prefix(n), test: test, k: k, pcaComponents: components,
                                                           threads: embedder.session.options.threads)
                } catch {
                    throw Baselines.Failure(anchors: n, reason: "\(error)")
                }
            }
            rows.append(row)
            if n == maxAnchors {
                finalScores = scores
                if let fpr {
                    // Threshold from normal images only: the anchors themselves, leave-one-out.
                    let normal = try index.scores(anchorEmbeddings, k: k, skipSelf: true)
                    threshold = try ROC.threshold(normalScores: normal, fpr: fpr)
                }
            }
        }
        return Evaluation(rows: rows, scores: finalScores, labels: test.labels, threshold: threshold, k: k,
                          pcaComponents: baselinePCAComponents)
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

    /// The PCA column's title, e.g. "PCA-64" (nil without baselines).
    public var pcaTitle: String? { pcaComponents.map { "PCA-\($0)" } }

    /// Whether a row's PCA used fewer components than asked (N − 1 for N anchors): its AUC is starred.
    public func pcaIsReduced(_ row: Row) -> Bool {
        guard let used = row.baselines?.pcaComponents, let asked = pcaComponents else { return false }
        return used < asked
    }

    /// What the baseline columns are, and the star's footnote when a row has one; empty without baselines.
    public var baselineNotes: [String] {
        guard let asked = pcaComponents, let title = pcaTitle else { return [] }
        var notes = ["Baselines on the same split, no model: raw pixels = mean Euclidean distance of the pixels / 255 to the "
                     + "k nearest anchor images; \(title) = reconstruction error (norm of the residual) with the anchors' "
                     + "\(asked) principal components."]
        let reduced = rows.filter(pcaIsReduced).map { "\($0.baselines!.pcaComponents) at \($0.anchors) anchors" }
        if !reduced.isEmpty {
            notes.append("* \(title) with N − 1 components where there are only N ≤ \(asked) anchors (N centred images span "
                         + "at most N − 1 dimensions): " + reduced.joined(separator: ", ") + ".")
        }
        return notes
    }

    public func table(batches: [Int]) -> String {
        func pad(_ s: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - s.count)) + s }
        var header = "anchors      AUC"
        // The star of a reduced PCA row hangs right of its column, so the numbers stay aligned.
        if let title = pcaTitle { header += pad("raw pixels", 12) + pad(title, 10) + " " }
        var lines = [header + batches.map { String(format: "  ms/img@b%-4d", $0) }.joined()]
        for r in rows {
            var line = String(format: "%7d   %.4f", r.anchors, r.auc)
            if pcaTitle != nil {
                let cells = r.baselines.map { (String(format: "%.4f", $0.rawPixels), String(format: "%.4f", $0.pca)) } ?? ("-", "-")
                line += pad(cells.0, 12) + pad(cells.1, 10) + (pcaIsReduced(r) ? "*" : " ")
            }
            lines.append(line + batches.map { String(format: "  %12.3f", r.msPerImage[$0] ?? .nan) }.joined())
        }
        return (lines + baselineNotes).joined(separator: "\n")
    }
}
