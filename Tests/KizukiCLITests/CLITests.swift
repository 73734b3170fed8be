import Foundation
import XCTest

/// The `kizuki` binary as users run it: outputs, exit codes and error messages.
/// It is built next to the test bundle (`make test` builds every product first).
final class CLITests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let seed = root.appendingPathComponent("models/keras-seed/model.onnx").path
    var tmp: URL!

    static var binary: URL? {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<3 {
            let candidate = dir.appendingPathComponent("kizuki")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    override func setUpWithError() throws {
        guard Self.binary != nil else { throw XCTSkip("kizuki binary not built next to the tests (run `make test`)") }
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("kizuki-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { if let tmp { try? FileManager.default.removeItem(at: tmp) } }

    struct Result { let status: Int32; let out: String; let err: String }

    @discardableResult
    func kizuki(_ args: String...) throws -> Result {
        let p = Process()
        p.executableURL = Self.binary!
        p.arguments = args
        p.currentDirectoryURL = Self.root
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, out: String(decoding: o, as: UTF8.self), err: String(decoding: e, as: UTF8.self))
    }

    func path(_ name: String) -> String { tmp.appendingPathComponent(name).path }

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
        // 2 images of 28x28x1 as .npy, written by the CLI's own embed path is not needed: build by hand.
        let count = 2 * 28 * 28
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 28, 28, 1), }"
        header += String(repeating: " ", count: (64 - (10 + header.utf8.count + 1) % 64) % 64) + "\n"
        var npy = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count), 0]) + Data(header.utf8)
        let values = (0..<count).map { Float($0 % 255) / 255 }
        values.withUnsafeBytes { npy.append(contentsOf: $0) }
        try npy.write(to: tmp.appendingPathComponent("x.npy"))

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

    /// A float model x:[1,4] → ... → y, nodes named n0, n1, ... written by hand as ONNX protobuf.
    func makeModel(nodes: [(op: String, input: String, output: String)]) throws -> String {
        func varint(_ v: Int) -> [UInt8] {
            var v = UInt64(v), out: [UInt8] = []
            repeat { var b = UInt8(v & 0x7f); v >>= 7; if v != 0 { b |= 0x80 }; out.append(b) } while v != 0
            return out
        }
        func field(_ n: Int, _ payload: [UInt8]) -> [UInt8] { varint(n << 3 | 2) + varint(payload.count) + payload }
        func string(_ n: Int, _ s: String) -> [UInt8] { field(n, Array(s.utf8)) }
        func valueInfo(_ name: String) -> [UInt8] {
            let dims = field(1, [0x08, 0x01]) + field(1, [0x08, 0x04])  // dim_value 1, 4
            let tensorType = [0x08, 0x01] + field(2, dims)  // elem_type FLOAT, shape
            return string(1, name) + field(2, field(1, tensorType))
        }
        var graph: [UInt8] = []
        for (i, n) in nodes.enumerated() {
            let input = i == 0 ? "x" : n.input
            graph += field(1, string(1, input) + string(2, n.output) + string(3, "n\(i)") + string(4, n.op))
        }
        graph += string(2, "g") + field(11, valueInfo("x")) + field(12, valueInfo("y"))
        let model = [0x08, 0x08] + field(7, graph) + field(8, [0x10, 0x0d])  // ir_version 8, graph, opset 13
        let url = tmp.appendingPathComponent("m.onnx")
        try Data(model).write(to: url)
        return url.path
    }
}
