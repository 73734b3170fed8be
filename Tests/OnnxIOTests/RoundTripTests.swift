import Foundation
import XCTest
@testable import OnnxIO

/// Paths shared by the tests: the repository root and the caches `make` fills.
enum TestPaths {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let seedModel = root.appendingPathComponent("models/keras-seed/model.onnx")
    static let conformance = root.appendingPathComponent(".cache/onnx-conformance")
    static let fixtures = root.appendingPathComponent(".cache/fixtures")
}

final class RoundTripTests: XCTestCase {
    func testSeedModelRoundTrips() throws {
        let model = try Model(contentsOf: TestPaths.seedModel)
        XCTAssertEqual(model.opsetVersion(), 13)
        XCTAssertEqual(model.graph.inputs.map(\.name), ["input"])
        XCTAssertEqual(model.graph.outputs.map(\.name), ["embedding"])
        let again = try Model(serialized: try model.serialized())
        XCTAssertEqual(model, again)
    }
}
