import Foundation
import XCTest

/// The bench suite of issue 10 (tools/make_bench_suite.py): ResNet50, MobileNetV3Small and EfficientNetB0
/// from keras.applications via tf2onnx, and a torch ResNet-18, at 224x224 with calibrated BatchNormalization.
/// Kizuki is raced against onnxruntime on them (`make bench-suite`); here its outputs must match
/// onnxruntime's saved ones at batch 1 and 2, on 1 and 2 threads, under RealModelTests' tolerance rule.
final class BenchSuiteTests: XCTestCase {
    static let suite = RealModelTests.fixtures.deletingLastPathComponent().appendingPathComponent("bench-suite")
    static let models = ["resnet50", "mobilenetv3small", "efficientnetb0", "resnet18_torch"]

    /// The suite's MANIFEST.json; the tests skip only when the whole suite was never built.
    func manifest() throws -> [String: Any] {
        let url = Self.suite.appendingPathComponent("MANIFEST.json")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw XCTSkip("bench suite missing: run `make fixtures`")
        }
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    func check(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        _ = try manifest()
        try RealModelTests.check(name, in: Self.suite, batches: [1, 2], file: file, line: line)
    }

    /// A model added to the suite without a test here would be benchmarked but never checked.
    func testManifestListsTheTestedModels() throws {
        let json = try manifest()  // outside XCTUnwrap, which would record the skip as an error
        let listed = try XCTUnwrap(json["models"] as? [[String: Any]]).compactMap { $0["name"] as? String }
        XCTAssertEqual(listed, Self.models)
    }

    func testResNet50() throws { try check("resnet50") }
    func testMobileNetV3Small() throws { try check("mobilenetv3small") }
    func testEfficientNetB0() throws { try check("efficientnetb0") }
    func testResNet18Torch() throws { try check("resnet18_torch") }
}
