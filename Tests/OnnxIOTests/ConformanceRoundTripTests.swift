import Foundation
import XCTest
@testable import OnnxIO

/// load -> save -> load is the identity for every model in ONNX's backend test data, and the
/// saved copies go to .cache/written for `make test` to run onnx.checker (full_check) over them.
final class ConformanceRoundTripTests: XCTestCase {
    static let written = TestPaths.root.appendingPathComponent(".cache/written")

    func allModels() throws -> [URL] {
        let root = TestPaths.conformance
        guard FileManager.default.fileExists(atPath: root.path) else {
            throw XCTSkip("conformance data missing: run `make conformance-data`")
        }
        var found: [URL] = []
        let e = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)!
        for case let url as URL in e where url.pathExtension == "onnx" { found.append(url) }
        return found.sorted { $0.path < $1.path }
    }

    func testEveryBackendModelRoundTrips() throws {
        let models = try allModels()
        XCTAssertGreaterThan(models.count, 1900, "expected the whole ONNX 1.22.0 backend data")
        try FileManager.default.createDirectory(at: Self.written, withIntermediateDirectories: true)
        var manifest = ""
        var identical = 0
        var failures: [String] = []
        for url in models {
            let rel = url.path.replacingOccurrences(of: TestPaths.conformance.path + "/", with: "")
            do {
                let model = try Model(contentsOf: url)
                let bytes = try model.serialized()
                let again = try Model(serialized: bytes)
                if again == model { identical += 1 } else { failures.append("\(rel): differs after round trip") }
                let name = rel.replacingOccurrences(of: "/", with: "__")
                try bytes.write(to: Self.written.appendingPathComponent(name))
                manifest += "\(name)\t\(url.path)\n"
            } catch {
                failures.append("\(rel): \(error)")
            }
        }
        try manifest.write(to: Self.written.appendingPathComponent("MANIFEST.tsv"), atomically: true, encoding: .utf8)
        print("round trip: \(models.count) loaded, \(identical) identical, \(failures.count) failed")
        XCTAssertEqual(failures, [])
        XCTAssertEqual(identical, models.count)
    }

    func testSeedModelWithExternalDataRoundTrips() throws {
        let model = try Model(contentsOf: TestPaths.seedModel)
        let dir = Self.written.appendingPathComponent("external")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = dir.appendingPathComponent("seed_external.onnx")
        try model.save(to: url, externalData: ExternalDataPolicy(thresholdBytes: 1024, fileName: "seed_external.onnx.data"))
        let small = try Data(contentsOf: url).count
        XCTAssertLessThan(small, 200_000, "large initializers should have gone to the data file")
        let back = try Model(contentsOf: url)
        XCTAssertEqual(back, model)
        XCTAssertTrue(back.graph.initializers.contains { $0.externalLocation?.path == "seed_external.onnx.data" })
        // Keep the plain copy too for the checker.
        try model.save(to: Self.written.appendingPathComponent("seed.onnx"))
    }

    func testUnmodelledFieldsSurvive() throws {
        var m = Model()
        m.opsetImports = [OpsetID(domain: "", version: 13)]
        m.docString = "model doc"
        m.metadataProps = [StringPair("author", "kizuki")]
        m.graph.inputs = [ValueInfo(name: "x", type: .tensor(.float, [.symbol("N"), .known(3)]))]
        m.graph.outputs = [ValueInfo(name: "y", type: .tensor(.float, [.symbol("N"), .known(3)]))]
        m.graph.nodes = [Node(name: "id", opType: "Identity", inputs: ["x"], outputs: ["y"])]
        m.graph.nodes[0].docString = "node doc"
        // A field number the schema does not define (field 99, varint 5) must be kept as is.
        m.graph.nodes[0].unknownFields = [UnknownField(tag: 99, wireType: 0, bytes: Data([5]))]
        m.unknownFields = [UnknownField(tag: 1000, wireType: 2, bytes: Data([3, 0x61, 0x62, 0x63]))]
        // A FunctionProto is kept opaque: build one by hand-encoding its name field (1) = "f".
        m.functions = [OpaqueMessage(kind: .function, bytes: Data([0x0a, 0x01, 0x66]))]
        let back = try Model(serialized: try m.serialized())
        XCTAssertEqual(back, m)
        XCTAssertEqual(back.graph.nodes[0].unknownFields.first?.tag, 99)
        XCTAssertEqual(back.functions.first?.bytes, Data([0x0a, 0x01, 0x66]))
    }
}
