import Foundation
import XCTest
@testable import Anomaly

final class NearestNeighborTests: XCTestCase {
    /// Direct float64 distances, no expansion: the independent reference.
    func direct(_ q: [Float], _ a: [Float], dim: Int, k: Int) -> [Double] {
        let n = a.count / dim
        return stride(from: 0, to: q.count, by: dim).map { qs in
            var d = (0..<n).map { r -> Double in
                var s = 0.0
                for j in 0..<dim { let t = Double(q[qs + j]) - Double(a[r * dim + j]); s += t * t }
                return s.squareRoot()
            }
            d.sort()
            return d.prefix(k).reduce(0, +) / Double(k)
        }
    }

    /// Embeddings around one vector of norm ~4 with a spread of 1e-6..1e-5, as early checkpoints give:
    /// the plain float32 expansion cancels to zero here; the index must not.
    func testLargeCommonOffsetTinySpread() throws {
        var rng = SeededGenerator(seed: 1)
        let dim = 128
        let offset = (0..<dim).map { _ in Float.random(in: -0.6...0.6, using: &rng) }
        func sample(_ n: Int) -> [Float] {
            (0..<n).flatMap { _ in offset.map { $0 + Float.random(in: -1e-5...1e-5, using: &rng) } }
        }
        let anchors = sample(300), queries = sample(50)
        let knn = try NearestNeighbors(anchors: anchors, dim: dim)
        for k in [1, 3] {
            let got = try knn.scores(queries, k: k)
            let want = direct(queries, anchors, dim: dim, k: k)
            for (g, w) in zip(got, want) {
                XCTAssertGreaterThan(w, 0)
                XCTAssertEqual(g, w, accuracy: 1e-4 * w, "k=\(k)")
            }
            XCTAssertGreaterThan(Set(got).count, 45, "scores must not tie")
        }
    }

    func testLeaveOneOutAndErrors() throws {
        var rng = SeededGenerator(seed: 2)
        let dim = 8
        let anchors = (0..<40 * dim).map { _ in Float.random(in: -1...1, using: &rng) }
        let knn = try NearestNeighbors(anchors: anchors, dim: dim)
        let self1 = try knn.scores(anchors, k: 1)
        XCTAssertEqual(self1.max()!, 0, accuracy: 1e-6)  // each anchor is its own nearest
        let loo = try knn.scores(anchors, k: 1, skipSelf: true)
        for (i, s) in loo.enumerated() {
            var others = anchors
            others.removeSubrange(i * dim..<(i + 1) * dim)
            XCTAssertEqual(s, direct(Array(anchors[i * dim..<(i + 1) * dim]), others, dim: dim, k: 1)[0], accuracy: 1e-9)
        }
        XCTAssertThrowsError(try knn.scores(anchors, k: 41)) { XCTAssertTrue("\($0)".contains("k = 41"), "\($0)") }
        XCTAssertThrowsError(try knn.scores(anchors, k: 40, skipSelf: true)) { XCTAssertTrue("\($0)".contains("k = 40"), "\($0)") }
        XCTAssertThrowsError(try knn.scores(anchors, k: Int.max, skipSelf: true)) { XCTAssertTrue("\($0)".contains("k = \(Int.max)"), "\($0)") }
        var bad = anchors
        bad[5] = .nan
        XCTAssertThrowsError(try NearestNeighbors(anchors: bad, dim: dim)) { XCTAssertTrue("\($0)".contains("nan"), "\($0)") }
        XCTAssertThrowsError(try knn.scores(bad, k: 1)) { XCTAssertTrue("\($0)".contains("query embedding 0"), "\($0)") }
    }
}

final class ROCTests: XCTestCase {
    /// Brute force: over all (anomaly, normal) pairs, 1 if the anomaly scores higher, 1/2 on a tie.
    func pairCount(_ s: [Double], _ l: [Int]) -> Double {
        var total = 0.0, pairs = 0.0
        for i in s.indices where l[i] == 1 {
            for j in s.indices where l[j] == 0 {
                total += s[i] > s[j] ? 1 : s[i] == s[j] ? 0.5 : 0
                pairs += 1
            }
        }
        return total / pairs
    }

    func testAUCMatchesPairCountWithTies() throws {
        var rng = SeededGenerator(seed: 3)
        for trial in 0..<20 {
            let n = 50 + trial * 7
            // Rounded scores make many ties.
            let scores = (0..<n).map { _ in (Double.random(in: 0...1, using: &rng) * 10).rounded() / 10 }
            let labels = (0..<n).map { i in i < 3 ? i % 2 : Int.random(in: 0...1, using: &rng) }
            XCTAssertEqual(try ROC.auc(scores: scores, labels: labels), pairCount(scores, labels), accuracy: 1e-12)
        }
        XCTAssertEqual(try ROC.auc(scores: [1, 2, 3, 4], labels: [0, 0, 1, 1]), 1)
        XCTAssertEqual(try ROC.auc(scores: [1, 1, 1, 1], labels: [0, 1, 0, 1]), 0.5)
        XCTAssertThrowsError(try ROC.auc(scores: [1, 2], labels: [0, 0]))
    }

    /// scikit-learn's roc_auc_score on the same scores, through the test venv (set by `make test`).
    func testAUCMatchesScikitLearn() throws {
        guard let python = ProcessInfo.processInfo.environment["KIZUKI_PYTHON"] else {
            throw XCTSkip("KIZUKI_PYTHON not set (make test sets it to the venv with scikit-learn)")
        }
        var rng = SeededGenerator(seed: 4)
        let scores = (0..<500).map { _ in (Double.random(in: 0...1, using: &rng) * 50).rounded() / 50 }
        let labels = (0..<500).map { _ in Int.random(in: 0...1, using: &rng) }
        let script = "import sys,json; from sklearn.metrics import roc_auc_score; d=json.load(sys.stdin); print(repr(roc_auc_score(d['l'], d['s'])))"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["-c", script]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try p.run()
        input.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: ["s": scores, "l": labels]))
        try input.fileHandleForWriting.close()
        p.waitUntilExit()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let sklearn = try XCTUnwrap(Double(text.trimmingCharacters(in: .whitespacesAndNewlines)), text)
        XCTAssertEqual(try ROC.auc(scores: scores, labels: labels), sklearn, accuracy: 1e-12)
    }

    func testThresholdFromNormalsOnly() throws {
        let normal = (1...200).map(Double.init)
        let t = try ROC.threshold(normalScores: normal, fpr: 0.01)
        XCTAssertEqual(normal.filter { $0 > t }.count, 2)
        XCTAssertEqual(try ROC.threshold(normalScores: normal, fpr: 0), 200)
        XCTAssertEqual(try ROC.threshold(normalScores: [5], fpr: 0.5), 5)
        // Ties at the threshold are not above it.
        XCTAssertEqual(try ROC.threshold(normalScores: [1, 1, 1, 1], fpr: 0.25), 1)
        XCTAssertThrowsError(try ROC.threshold(normalScores: [], fpr: 0.01))
        XCTAssertThrowsError(try ROC.threshold(normalScores: [1], fpr: 1))
    }
}

final class IndexFileTests: XCTestCase {
    func testRoundTripAndRefusals() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("kizuki-\(UUID().uuidString).kzi")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let header = AnchorIndex.Header(modelSHA256: "abc", modelFile: "m.onnx", count: 2, dim: 3, preprocessing: AnchorIndex.preprocessing,
                                        source: "fmnist:train:7", selection: "first 2", threshold: nil)
        let index = AnchorIndex(header: header, embeddings: [1, 2, 3, 4, 5, 6])
        try index.write(to: tmp)
        XCTAssertEqual(try AnchorIndex(contentsOf: tmp), index)
        XCTAssertThrowsError(try index.check(modelSHA256: "def", file: tmp.path)) { XCTAssertTrue("\($0)".contains("another model"), "\($0)") }
        XCTAssertNoThrow(try index.check(modelSHA256: "abc", file: tmp.path))
        // Truncated payload.
        let bytes = try Data(contentsOf: tmp)
        try bytes.dropLast(4).write(to: tmp)
        XCTAssertThrowsError(try AnchorIndex(contentsOf: tmp)) { XCTAssertTrue("\($0)".contains("holds 20 bytes"), "\($0)") }
        try Data("garbage".utf8).write(to: tmp)
        XCTAssertThrowsError(try AnchorIndex(contentsOf: tmp)) { XCTAssertTrue("\($0)".contains("KZI\(AnchorIndex.formatVersion)"), "\($0)") }
        // A different index has a different id, so its threshold is refused by `score`.
        let other = AnchorIndex(header: header, embeddings: [1, 2, 3, 4, 5, 7])
        XCTAssertNotEqual(other.id, index.id)
    }

    func testAnchorSelection() throws {
        XCTAssertEqual(try AnchorIndex.select(count: 10, n: 3, seed: nil), [0, 1, 2])
        let a = try AnchorIndex.select(count: 100, n: 10, seed: 7), b = try AnchorIndex.select(count: 100, n: 10, seed: 7)
        XCTAssertEqual(a, b)
        XCTAssertEqual(Set(a).count, 10)
        XCTAssertNotEqual(a, Array(0..<10))
        XCTAssertThrowsError(try AnchorIndex.select(count: 10, n: 11, seed: nil))
    }
}

final class ImageTests: XCTestCase {
    func testPNGRoundTripAndCorruptPNG() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kizuki-png-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let pixels = (0..<(28 * 28)).map { UInt8(truncatingIfNeeded: $0 * 3) }
        try PNG.encodeGray(height: 28, width: 28, pixels: pixels).write(to: dir.appendingPathComponent("a.png"))
        let (h, w, back) = try PNG.readGray(dir.appendingPathComponent("a.png"))
        XCTAssertEqual([h, w], [28, 28])
        XCTAssertEqual(back, pixels)
        let set = try ImageSource(parsing: dir.path).load()
        XCTAssertEqual(set.count, 1)
        XCTAssertEqual(set.pixels[1], Float(pixels[1]) / 255)
        XCTAssertEqual(set.names, ["a.png"])

        try Data("\u{89}PNG\r\n\u{1a}\ngarbage".utf8).write(to: dir.appendingPathComponent("b.png"))
        XCTAssertThrowsError(try ImageSource(parsing: dir.path).load()) { XCTAssertTrue("\($0)".contains("b.png"), "\($0)") }
    }

    func testWrongSizeNeedsResize() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kizuki-png-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try PNG.encodeGray(height: 56, width: 56, pixels: [UInt8](repeating: 200, count: 56 * 56)).write(to: dir.appendingPathComponent("big.png"))
        XCTAssertThrowsError(try ImageSource(parsing: dir.path).load()) { XCTAssertTrue("\($0)".contains("28x28"), "\($0)") }
        let resized = try ImageSource(parsing: dir.path).load(resize: .bilinear)
        XCTAssertEqual(resized.height, 28)
        XCTAssertEqual(resized.pixels[0], 200 / 255, accuracy: 1e-6)
    }

    func testSourceParsing() throws {
        XCTAssertEqual(try ImageSource(parsing: "fmnist:test:7,9"), .fashionMNIST(.test, classes: [7, 9]))
        XCTAssertEqual(try ImageSource(parsing: "fmnist:train"), .fashionMNIST(.train, classes: []))
        XCTAssertThrowsError(try ImageSource(parsing: "fmnist:val:1"))
        XCTAssertThrowsError(try ImageSource(parsing: "fmnist:test:12"))
        XCTAssertThrowsError(try ImageSource(parsing: "/no/such/file.npy"))
    }
}
