import Foundation
import XCTest
@testable import OnnxIO

/// Each kind of broken model gets its own error naming the file and the element at fault.
final class BadInputTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("kizuki-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    /// y = Relu(x + w) with a 2x2 float initializer.
    func tinyModel() -> Model {
        var m = Model()
        m.opsetImports = [OpsetID(domain: "", version: 13)]
        m.graph.name = "tiny"
        m.graph.inputs = [ValueInfo(name: "x", type: .tensor(.float, [.known(2), .known(2)]))]
        m.graph.outputs = [ValueInfo(name: "y", type: .tensor(.float, [.known(2), .known(2)]))]
        m.graph.initializers = [Tensor(name: "w", floats: [1, 2, 3, 4], dims: [2, 2])]
        m.graph.nodes = [
            Node(name: "add", opType: "Add", inputs: ["x", "w"], outputs: ["s"]),
            Node(name: "relu", opType: "Relu", inputs: ["s"], outputs: ["y"]),
        ]
        return m
    }

    func assertLoadFails(_ model: Model, _ kind: OnnxError.Kind, mentions words: [String],
                         file: StaticString = #filePath, line: UInt = #line) throws {
        let url = tmp.appendingPathComponent("m.onnx")
        try model.save(to: url)
        assertFails(url, kind, mentions: words, file: file, line: line)
    }

    func assertFails(_ url: URL, _ kind: OnnxError.Kind, mentions words: [String],
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Model(contentsOf: url), file: file, line: line) { error in
            guard let e = error as? OnnxError else { return XCTFail("not an OnnxError: \(error)", file: file, line: line) }
            XCTAssertEqual(e.kind, kind, "\(e)", file: file, line: line)
            XCTAssertEqual(e.file, url.path, file: file, line: line)
            for w in words { XCTAssertTrue(e.description.contains(w), "'\(w)' not in: \(e)", file: file, line: line) }
        }
    }

    func testTinyModelIsValid() throws {
        let url = tmp.appendingPathComponent("ok.onnx")
        try tinyModel().save(to: url)
        XCTAssertEqual(try Model(contentsOf: url), tinyModel())
    }

    func testMissingFolderEmptyTruncatedRandom() throws {
        assertFails(tmp.appendingPathComponent("nope.onnx"), .notFound, mentions: ["nope.onnx"])
        assertFails(tmp, .isDirectory, mentions: ["folder"])
        let empty = tmp.appendingPathComponent("empty.onnx")
        FileManager.default.createFile(atPath: empty.path, contents: Data())
        assertFails(empty, .empty, mentions: ["empty"])

        let bytes = try tinyModel().serialized()
        let truncated = tmp.appendingPathComponent("truncated.onnx")
        try bytes.prefix(bytes.count - 5).write(to: truncated)
        XCTAssertThrowsError(try Model(contentsOf: truncated)) { XCTAssertTrue("\($0)".contains("truncated.onnx")) }

        var rng = SplitMix(seed: 7)
        let random = tmp.appendingPathComponent("random.onnx")
        try Data((0..<4096).map { _ in UInt8(truncatingIfNeeded: rng.next()) }).write(to: random)
        XCTAssertThrowsError(try Model(contentsOf: random)) { XCTAssertTrue("\($0)".contains("random.onnx")) }
    }

    func testRawDataLengthDisagreesWithDims() throws {
        var m = tinyModel()
        m.graph.initializers[0].data = m.graph.initializers[0].data.prefix(12)
        try assertLoadFails(m, .invalidTensor, mentions: ["'w'", "12 bytes", "needs 16"])
    }

    func testNegativeDims() throws {
        var m = tinyModel()
        m.graph.initializers[0].dims = [-2, -2]
        try assertLoadFails(m, .invalidTensor, mentions: ["'w'", "negative"])
    }

    func testDuplicateInitializer() throws {
        var m = tinyModel()
        m.graph.initializers.append(m.graph.initializers[0])
        try assertLoadFails(m, .duplicateName, mentions: ["'w'", "twice"])
    }

    func testDanglingInput() throws {
        var m = tinyModel()
        m.graph.nodes[1].inputs = ["ghost"]
        try assertLoadFails(m, .danglingInput, mentions: ["'relu'", "'ghost'"])
    }

    func testCycle() throws {
        var m = tinyModel()
        // add reads relu's output, relu reads add's: a loop.
        m.graph.nodes[0].inputs = ["x", "y"]
        m.graph.initializers = []
        try assertLoadFails(m, .cycle, mentions: ["cycle"])
    }

    func testUnsortedNodesAreFine() throws {
        var m = tinyModel()
        m.graph.nodes.reverse()
        let url = tmp.appendingPathComponent("unsorted.onnx")
        try m.save(to: url)
        XCTAssertNoThrow(try Model(contentsOf: url))
    }

    func testDuplicateGraphInputOrOutputNames() throws {
        var m = tinyModel()
        m.graph.inputs.append(m.graph.inputs[0])
        try assertLoadFails(m, .duplicateName, mentions: ["graph input", "'x'", "twice"])
        m = tinyModel()
        m.graph.outputs.append(m.graph.outputs[0])
        try assertLoadFails(m, .duplicateName, mentions: ["graph output", "'y'", "twice"])
    }

    func testGraphWithoutOutputsIsRefused() throws {
        var m = tinyModel()
        m.graph.outputs = []
        try assertLoadFails(m, .malformed, mentions: ["no outputs"])
        m.graph.nodes = []
        m.graph.initializers = []
        try assertLoadFails(m, .malformed, mentions: ["no outputs"])
    }

    func testVersionsNewerThanKnownAreRefused() throws {
        var m = tinyModel()
        m.irVersion = 99
        try assertLoadFails(m, .unsupported, mentions: ["IR version is 99", "up to \(Model.newestIRVersion)"])
        m = tinyModel()
        m.opsetImports = [OpsetID(domain: "ai.onnx", version: 99)]
        try assertLoadFails(m, .unsupported, mentions: ["opset 99", "up to \(Model.newestDefaultOpset)"])
        // The newest known versions load, and other domains' versions are not the default opset's.
        m = tinyModel()
        m.irVersion = Model.newestIRVersion
        m.opsetImports = [OpsetID(domain: "", version: Model.newestDefaultOpset), OpsetID(domain: "com.example", version: 99)]
        let url = tmp.appendingPathComponent("newest.onnx")
        try m.save(to: url)
        XCTAssertEqual(try Model(contentsOf: url), m)
    }

    func testElementsOfEmptyTensors() {
        XCTAssertEqual(Tensor(dataType: .float, dims: [0]).floats, [])
        XCTAssertEqual(Tensor(dataType: .int64, dims: [0, 3]).int64s, [])
        XCTAssertEqual(Tensor(name: "e", floats: [], dims: [0]).floats, [])
        XCTAssertEqual(Tensor(dataType: .uint8, dims: [3], data: Data([7, 8, 9]).dropFirst()).elements(as: UInt8.self), [8, 9])
    }

    func testExternalDataMissingShortAndEscaping() throws {
        let url = tmp.appendingPathComponent("ext.onnx")
        try tinyModel().save(to: url, externalData: ExternalDataPolicy(thresholdBytes: 1, fileName: "ext.bin"))
        XCTAssertEqual(try Model(contentsOf: url), tinyModel())
        XCTAssertEqual(try Model(contentsOf: url).graph.initializers[0].externalLocation?.path, "ext.bin")

        let dataFile = tmp.appendingPathComponent("ext.bin")
        let full = try Data(contentsOf: dataFile)
        try full.prefix(full.count - 4).write(to: dataFile)
        assertFails(url, .externalData, mentions: ["'w'", "ext.bin", "too short"])
        try FileManager.default.removeItem(at: dataFile)
        assertFails(url, .externalData, mentions: ["'w'", "ext.bin", "missing"])

    }

    func testEscapingExternalPathIsRefused() throws {
        // Same-length path so the protobuf framing stays valid: "x.bin" -> "../xx" is 5 bytes too.
        let url = tmp.appendingPathComponent("esc.onnx")
        try tinyModel().save(to: url, externalData: ExternalDataPolicy(thresholdBytes: 1, fileName: "x.bin"))
        var bytes = try Data(contentsOf: url)
        let range = try XCTUnwrap(bytes.range(of: Data("x.bin".utf8)))
        bytes.replaceSubrange(range, with: Data("../xx".utf8))
        try bytes.write(to: url)
        assertFails(url, .externalData, mentions: ["'w'", "../xx", "outside"])
        bytes.replaceSubrange(range, with: Data("/etc1".utf8))
        try bytes.write(to: url)
        assertFails(url, .externalData, mentions: ["outside"])
    }
}

/// A small deterministic generator for tests (SplitMix64).
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
