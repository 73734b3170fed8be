import Foundation
import XCTest

/// The `kizuki` binary as users run it: outputs, exit codes and error messages.
final class CLITests: CLITestCase {
    func testInspectTextAndJSON() throws {
        let text = try kizuki("inspect", Self.seed)
        XCTAssertEqual(text.status, 0, text.err)
        XCTAssertTrue(text.out.contains("input: float32 [unk__615, 28, 28, 1]"), text.out)
        XCTAssertTrue(text.out.contains("tf2onnx"))
        let json = try kizuki("inspect", Self.seed, "--json")
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any])
        XCTAssertEqual(object["parameterCount"] as? Int, 2_370_240)
        XCTAssertEqual((object["outputs"] as? [[String: Any]])?.first?["name"] as? String, "embedding")
        let missing = try kizuki("inspect", path("nope.onnx"))
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.err.contains("nope.onnx"), missing.err)
    }

    func testRunWritesOutputsAndExplainsBadInputs() throws {
        try writeNpy("x.npy", shape: [2, 28, 28, 1], values: (0..<2 * 28 * 28).map { Float($0 % 255) / 255 })

        let ok = try kizuki("run", Self.seed, "--input", "input=\(path("x.npy"))", "--output-dir", path("out"), "--threads", "1")
        XCTAssertEqual(ok.status, 0, ok.err)
        XCTAssertTrue(ok.out.contains("embedding -> "), ok.out)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path("out/embedding.npy")))

        let wrongName = try kizuki("run", Self.seed, "--input", "pixels=\(path("x.npy"))", "--output-dir", path("out"))
        XCTAssertNotEqual(wrongName.status, 0)
        XCTAssertTrue(wrongName.err.contains("unknown input 'pixels'") && wrongName.err.contains("'input' float32[unk__615,28,28,1]"), wrongName.err)

        let badPair = try kizuki("run", Self.seed, "--input", "input", "--output-dir", path("out"))
        XCTAssertNotEqual(badPair.status, 0)
        XCTAssertTrue(badPair.err.contains("NAME=FILE"), badPair.err)
    }

    func testUnsupportedOperatorsAreAllListed() throws {
        // A model with two unsupported op types (one used twice) and one supported op.
        let model = try makeModel(nodes: [("Relu", "a", "b"), ("Erf", "b", "c"), ("Erf", "c", "d"), ("Celu", "d", "y")])
        let r = try kizuki("run", model, "--input", "x=\(path("none.npy"))", "--output-dir", path("out"))
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("2 unsupported operator"), r.err)
        XCTAssertTrue(r.err.contains("Erf x2 (first: 'n1'"), r.err)
        XCTAssertTrue(r.err.contains("Celu x1 (first: 'n3'"), r.err)
    }

    func testAnomalyWorkflowWithoutAnyAnomalies() throws {
        // index → calibrate on normal images only → score with verdicts.
        let index = path("a.kzi")
        let built = try kizuki("index", Self.seed, "--images", "fmnist:train:7", "--anchors", "300", "--out", index, "--quiet")
        XCTAssertEqual(built.status, 0, built.err)
        XCTAssertTrue(built.out.contains("300 anchors x 128"), built.out)
        let calibrated = try kizuki("calibrate", Self.seed, "--index", index, "--fpr", "0.05", "--out", path("t.json"))
        XCTAssertEqual(calibrated.status, 0, calibrated.err)
        XCTAssertTrue(calibrated.out.contains("rule: score > "), calibrated.out)
        let scored = try kizuki("score", Self.seed, "--index", index, "--images", "fmnist:test:9", "--quiet")
        XCTAssertEqual(scored.status, 0, scored.err)
        let lines = scored.out.split(separator: "\n")
        XCTAssertEqual(lines.first, "index,name,score,verdict")
        XCTAssertEqual(lines.count, 1001)
        // Most ankle boots should be flagged at a 5% false-positive threshold.
        XCTAssertGreaterThan(lines.filter { $0.hasSuffix(",anomaly") }.count, 500)

        // k larger than the anchor count.
        let bigK = try kizuki("score", Self.seed, "--index", index, "--images", "fmnist:test:9", "--k", "301", "--quiet")
        XCTAssertNotEqual(bigK.status, 0)
        XCTAssertTrue(bigK.err.contains("k = 301"), bigK.err)

        // A threshold file from another index.
        let other = path("b.kzi")
        XCTAssertEqual(try kizuki("index", Self.seed, "--images", "fmnist:train:7", "--anchors", "100", "--seed", "3", "--out", other, "--quiet").status, 0)
        let mismatch = try kizuki("score", Self.seed, "--index", other, "--images", "fmnist:test:9", "--threshold-file", path("t.json"), "--quiet")
        XCTAssertNotEqual(mismatch.status, 0)
        XCTAssertTrue(mismatch.err.contains("another index"), mismatch.err)

        // An index made with another model: copy the seed model with one changed metadata byte.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: Self.seed))
        let r = try XCTUnwrap(bytes.range(of: Data("tf2onnx".utf8)))
        bytes.replaceSubrange(r, with: Data("tf2onnY".utf8))
        try bytes.write(to: tmp.appendingPathComponent("other.onnx"))
        let wrongModel = try kizuki("score", path("other.onnx"), "--index", index, "--images", "fmnist:test:9", "--quiet")
        XCTAssertNotEqual(wrongModel.status, 0)
        XCTAssertTrue(wrongModel.err.contains("made with another model"), wrongModel.err)
    }

    func testEmptyAndCorruptImageSources() throws {
        try FileManager.default.createDirectory(at: tmp.appendingPathComponent("empty"), withIntermediateDirectories: true)
        let empty = try kizuki("embed", Self.seed, "--images", path("empty"), "--out", path("e.npy"))
        XCTAssertNotEqual(empty.status, 0)
        XCTAssertTrue(empty.err.contains("no .png files"), empty.err)
        try Data([0x00, 0x00, 0x08, 0x03, 0, 0, 0, 5]).write(to: tmp.appendingPathComponent("bad-idx3-ubyte"))
        let idx = try kizuki("embed", Self.seed, "--images", path("bad-idx3-ubyte"), "--out", path("e.npy"))
        XCTAssertNotEqual(idx.status, 0)
        XCTAssertTrue(idx.err.contains("bad-idx3-ubyte"), idx.err)
    }
}
