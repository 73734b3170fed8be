import Foundation
import XCTest
@testable import Anomaly

/// The report renders in a real headless browser: its SVGs exist and every image decodes.
final class ReportTests: XCTestCase {
    /// 40 test images (every other one an anomaly) and an evaluation with two anchor counts. The scores
    /// belong to the largest anchor set (100), so the ROC's AUC label must be that row's, not 0.1234.
    func evaluation() throws -> Evaluation {
        var rng = SeededGenerator(seed: 5)
        let labels = (0..<40).map { $0 % 2 }
        let scores = labels.map { Double($0) + Double.random(in: 0...1.5, using: &rng) }
        return Evaluation(rows: [.init(anchors: 100, auc: try ROC.auc(scores: scores, labels: labels), msPerImage: [1: 1.5, 20: 1.2]),
                                 .init(anchors: 50, auc: 0.1234, msPerImage: [1: 1.4, 20: 1.1])],
                          scores: scores, labels: labels, threshold: 1.2, k: 1)
    }

    func makeReport() throws -> String {
        var rng = SeededGenerator(seed: 6)
        let result = try evaluation()
        let pixels = (0..<(result.labels.count * 28 * 28)).map { _ in Float.random(in: 0...1, using: &rng) }
        let test = ImageSet(height: 28, width: 28, pixels: pixels, labels: result.labels)
        return try Report(title: "test report", modelName: "m.onnx", evaluation: result, batches: [1, 20], test: test).html()
    }

    func testReportStructure() throws {
        let html = try makeReport()
        XCTAssertEqual(html.components(separatedBy: "<img src=\"data:image/png;base64,").count - 1, 16)
        XCTAssertTrue(html.contains("<svg id=\"roc\""))
        XCTAssertTrue(html.contains("<svg id=\"hist\""))
        XCTAssertTrue(html.contains("threshold 1.2"))
        let rocAUC = String(format: "AUC %.4f</text>", try evaluation().rows[0].auc)
        XCTAssertTrue(html.contains(rocAUC), "ROC label should show the largest anchor set's AUC")
        XCTAssertFalse(html.contains("AUC 0.1234</text>"))
    }

    /// With baselines, the table has their columns (a reduced PCA row starred) and the notes say what they are.
    func testBaselineColumns() throws {
        var result = try evaluation()
        result.pcaComponents = 64
        result.rows[0].baselines = .init(rawPixels: 0.9425, pca: 0.9484, pcaComponents: 64)
        result.rows[1].baselines = .init(rawPixels: 0.9487, pca: 0.9655, pcaComponents: 49)
        let test = ImageSet(height: 28, width: 28, pixels: [Float](repeating: 0.5, count: result.labels.count * 28 * 28), labels: result.labels)
        let html = try Report(title: "t", modelName: "m.onnx", evaluation: result, batches: [1], test: test).html()
        XCTAssertTrue(html.contains("<th>AUC model</th><th>AUC raw pixels</th><th>AUC PCA-64</th><th>ms / image, batch 1</th>"))
        XCTAssertTrue(html.contains("<td>100</td><td>\(String(format: "%.4f", result.rows[0].auc))</td><td>0.9425</td><td>0.9484</td>"))
        XCTAssertTrue(html.contains("<td>50</td><td>0.1234</td><td>0.9487</td><td>0.9655*</td>"))
        XCTAssertTrue(html.contains("raw pixels = mean Euclidean distance"))
        XCTAssertTrue(html.contains("49 at 50 anchors."))
        let table = result.table(batches: [1])
        XCTAssertTrue(table.contains("     50   0.1234      0.9487    0.9655*         1.400"), table)
        XCTAssertTrue(table.contains("    100   "), table)
    }

    func testRendersInHeadlessChromium() throws {
        guard let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("chromium not installed (make deps installs it)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kizuki-report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let page = dir.appendingPathComponent("report.html")
        try makeReport().write(to: page, atomically: true, encoding: .utf8)

        func chrome(_ args: [String]) throws -> String {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: chromium)
            p.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(dir.path)/profile",
                           "--virtual-time-budget=5000"] + args + [page.absoluteString]
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return String(decoding: data, as: UTF8.self)
        }
        let dom = try chrome(["--dump-dom"])
        XCTAssertTrue(dom.contains("data-images=\"16\""), "DOM after load: \(dom.prefix(400))")
        XCTAssertTrue(dom.contains("data-images-loaded=\"16\""), "not every image decoded")
        XCTAssertTrue(dom.contains("data-svgs=\"2\""))
        let shot = dir.appendingPathComponent("shot.png")
        _ = try chrome(["--screenshot=\(shot.path)", "--window-size=1000,1600"])
        let (h, w, pixels) = try PNG.readGray(shot)
        XCTAssertEqual(w, 1000)
        XCTAssertEqual(h, 1600)
        // A blank page would be one colour; the rendered one has text, bars and images.
        XCTAssertGreaterThan(Set(pixels).count, 20)
        // Keep the screenshot where `make test` can show it.
        let keep = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".cache/report-screenshot.png")
        try? FileManager.default.removeItem(at: keep)
        try? FileManager.default.copyItem(at: shot, to: keep)
    }
}

final class EvaluationRatesTests: XCTestCase {
    /// 3 normal and 5 anomalous images: each rate is over its own class's count.
    func testRatesAreOverTheLabelCounts() throws {
        let evaluation = Evaluation(rows: [], scores: [0.1, 0.9, 0.2, 0.8, 0.7, 0.3, 0.6, 0.05],
                                    labels: [0, 1, 0, 1, 1, 1, 1, 0], threshold: 0.25, k: 1)
        let rates = try XCTUnwrap(evaluation.rates(threshold: 0.25))
        XCTAssertEqual(rates.fpr, 0.0)  // normal scores 0.1, 0.2, 0.05: none above
        XCTAssertEqual(rates.tpr, 1.0)  // anomalies 0.9, 0.8, 0.7, 0.3, 0.6: all five above
        let tighter = try XCTUnwrap(evaluation.rates(threshold: 0.15))
        XCTAssertEqual(tighter.fpr, 1.0 / 3.0)  // 0.2 of three normal images
        XCTAssertEqual(tighter.tpr, 1.0)
        let loose = try XCTUnwrap(evaluation.rates(threshold: 0.75))
        XCTAssertEqual(loose.fpr, 0)
        XCTAssertEqual(loose.tpr, 2.0 / 5.0)  // 0.9, 0.8
        XCTAssertNil(Evaluation(rows: [], scores: [1, 2], labels: [1, 1], threshold: nil, k: 1).rates(threshold: 0))
    }
}
