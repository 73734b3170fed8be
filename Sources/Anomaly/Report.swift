import Foundation

/// One self-contained HTML page: the table, an SVG ROC curve, score histograms with the
/// threshold, and the reference's figure (the anomalies least and most like the normal class).
public struct Report {
    public var title: String
    public var modelName: String
    public var evaluation: Evaluation
    public var batches: [Int]
    public var test: ImageSet
    public var notes: [String] = []

    public init(title: String, modelName: String, evaluation: Evaluation, batches: [Int], test: ImageSet, notes: [String] = []) {
        self.title = title
        self.modelName = modelName
        self.evaluation = evaluation
        self.batches = batches
        self.test = test
        self.notes = notes
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    func rocSVG() -> String {
        let points = ROC.curve(scores: evaluation.scores, labels: evaluation.labels)
        let size = 300.0
        let path = points.map { String(format: "%.1f,%.1f", 40 + $0.fpr * size, 10 + (1 - $0.tpr) * size) }.joined(separator: " ")
        return """
        <svg id="roc" width="360" height="350" viewBox="0 0 360 350" xmlns="http://www.w3.org/2000/svg">
          <rect x="40" y="10" width="300" height="300" fill="none" stroke="#888"/>
          <line x1="40" y1="310" x2="340" y2="10" stroke="#ccc" stroke-dasharray="4"/>
          <polyline points="\(path)" fill="none" stroke="#c0392b" stroke-width="2"/>
          <text x="190" y="340" text-anchor="middle" font-size="12">false positive rate</text>
          <text x="14" y="160" text-anchor="middle" font-size="12" transform="rotate(-90 14 160)">true positive rate</text>
          <text x="330" y="300" text-anchor="end" font-size="13">AUC \(String(format: "%.4f", evaluation.rows.max { $0.anchors < $1.anchors }?.auc ?? .nan))</text>
        </svg>
        """
    }

    func histogramSVG() -> String {
        let scores = evaluation.scores, labels = evaluation.labels
        guard let lo = scores.min(), let hi = scores.max(), hi > lo else { return "<svg id=\"hist\"></svg>" }
        let bins = 40
        var normal = [Int](repeating: 0, count: bins), anomaly = [Int](repeating: 0, count: bins)
        for (s, l) in zip(scores, labels) {
            let b = min(bins - 1, Int((s - lo) / (hi - lo) * Double(bins)))
            if l == 1 { anomaly[b] += 1 } else { normal[b] += 1 }
        }
        let peak = Double(max(normal.max() ?? 1, anomaly.max() ?? 1))
        let (w, h) = (600.0, 220.0), barW = w / Double(bins)
        var bars = ""
        for b in 0..<bins {
            let x = 40 + Double(b) * barW
            let hn = Double(normal[b]) / peak * h, ha = Double(anomaly[b]) / peak * h
            bars += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#2e86c1\" fill-opacity=\"0.6\"/>", x, 10 + h - hn, barW, hn)
            bars += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#c0392b\" fill-opacity=\"0.6\"/>", x, 10 + h - ha, barW, ha)
        }
        var thresholdLine = ""
        if let t = evaluation.threshold {
            let x = 40 + (t - lo) / (hi - lo) * w
            thresholdLine = String(format: "<line x1=\"%.1f\" y1=\"5\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\" stroke-width=\"2\" stroke-dasharray=\"6 3\"/><text x=\"%.1f\" y=\"14\" font-size=\"12\">threshold %.4g</text>", x, x, 10 + h, x + 4, t)
        }
        return """
        <svg id="hist" width="680" height="290" viewBox="0 0 680 290" xmlns="http://www.w3.org/2000/svg">
          \(bars)
          \(thresholdLine)
          <line x1="40" y1="\(10 + h)" x2="\(40 + w)" y2="\(10 + h)" stroke="#888"/>
          <text x="40" y="\(30 + h)" font-size="12">\(String(format: "%.4g", lo))</text>
          <text x="\(40 + w)" y="\(30 + h)" font-size="12" text-anchor="end">\(String(format: "%.4g", hi))</text>
          <text x="340" y="\(50 + h)" font-size="12" text-anchor="middle">anomaly score (distance to the nearest anchor); blue: normal, red: anomaly</text>
        </svg>
        """
    }

    func figure(_ indices: [Int]) throws -> String {
        try indices.map { i in
            let png = try PNG.encodeGray(height: test.height, width: test.width, pixels: test.bytes(of: i))
            return """
            <figure><img src="data:image/png;base64,\(png.base64EncodedString())" width="84" height="84" alt="test image \(i)"><figcaption>\(String(format: "%.4f", evaluation.scores[i]))</figcaption></figure>
            """
        }.joined(separator: "\n")
    }

    public func html() throws -> String {
        let anomalies = evaluation.labels.indices.filter { evaluation.labels[$0] == 1 }.sorted { evaluation.scores[$0] > evaluation.scores[$1] }
        let least = Array(anomalies.prefix(8)), most = Array(anomalies.suffix(8).reversed())
        let pcaTitle = evaluation.pcaTitle
        let baselineHeader = pcaTitle.map { "<th>AUC raw pixels</th><th>AUC \(Report.escape($0))</th>" } ?? ""
        let header = "<tr><th>anchors</th><th>AUC model</th>\(baselineHeader)" + batches.map { "<th>ms / image, batch \($0)</th>" }.joined() + "</tr>"
        let rows = evaluation.rows.map { r in
            var baselineCells = ""
            if pcaTitle != nil {
                baselineCells = r.baselines.map {
                    String(format: "<td>%.4f</td><td>%.4f", $0.rawPixels, $0.pca) + (evaluation.pcaIsReduced(r) ? "*" : "") + "</td>"
                } ?? "<td>-</td><td>-</td>"
            }
            return "<tr><td>\(r.anchors)</td><td>\(String(format: "%.4f", r.auc))</td>\(baselineCells)"
                + batches.map { String(format: "<td>%.3f</td>", r.msPerImage[$0] ?? .nan) }.joined() + "</tr>"
        }.joined(separator: "\n")
        let baselineNotes = evaluation.baselineNotes.map { "<p class=\"note\">\(Report.escape($0))</p>" }.joined(separator: "\n")
        return """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>\(Report.escape(title))</title>
        <style>
        body { font-family: sans-serif; margin: 2em; color: #222; }
        table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
        .row { display: flex; flex-wrap: wrap; gap: 8px; } figure { margin: 0; text-align: center; font-size: 12px; }
        img { image-rendering: pixelated; border: 1px solid #ddd; }
        .note { font-size: 13px; color: #555; max-width: 60em; }
        </style></head>
        <body>
        <h1>\(Report.escape(title))</h1>
        <p>Model: <code>\(Report.escape(modelName))</code>. k = \(evaluation.k). \(notes.map(Report.escape).joined(separator: " "))</p>
        <h2>AUC and time per image</h2>
        <table id="auc">\(header)
        \(rows)
        </table>
        \(baselineNotes)
        <h2>ROC curve (largest anchor set)</h2>
        \(rocSVG())
        <h2>Score histograms</h2>
        \(histogramSVG())
        <h2>The 8 anomalies least like the normal class (highest scores)</h2>
        <div class="row" id="least">\(try figure(least))</div>
        <h2>The 8 anomalies most like the normal class (lowest scores)</h2>
        <div class="row" id="most">\(try figure(most))</div>
        <script>
        // Lets a headless browser check the page: how many images decoded, and whether the SVGs exist.
        window.addEventListener('load', function () {
          var imgs = Array.from(document.images);
          var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
          document.body.setAttribute('data-images', imgs.length);
          document.body.setAttribute('data-images-loaded', ok);
          document.body.setAttribute('data-svgs', document.querySelectorAll('svg').length);
        });
        </script>
        </body></html>
        """
    }
}
