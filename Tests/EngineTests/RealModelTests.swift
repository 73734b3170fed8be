import Foundation
import XCTest
@testable import Engine
import OnnxIO

/// The reference MobileNetV2 embedder exported six ways (Keras 3 via tf2onnx at opsets 13 and 18,
/// tf_keras (Resize path), NCHW input, PyTorch legacy and dynamo exporters with external data):
/// Kizuki's outputs match onnxruntime's (saved by tools/make_fixtures.py) at batch 1 and 7.
final class RealModelTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".cache/fixtures")

    func check(_ variant: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let model = Self.fixtures.appendingPathComponent("\(variant).onnx")
        guard FileManager.default.fileExists(atPath: model.path) else {
            throw XCTSkip("fixtures missing: run `make fixtures`")
        }
        for threads in [1, 2] {
            var options = SessionOptions()
            options.threads = threads
            let session = try Session(contentsOf: model, options: options)
            for batch in [1, 7] {
                let input = try HostTensor(Npy.read(Self.fixtures.appendingPathComponent("\(variant).in.b\(batch).npy")))
                let want = try HostTensor(Npy.read(Self.fixtures.appendingPathComponent("\(variant).out.b\(batch).npy")))
                let out = try session.run([session.inputs[0].name: input])
                let got = try XCTUnwrap(out[session.outputs[0].name])
                XCTAssertEqual(got.shape, want.shape, file: file, line: line)
                var worst = 0.0
                for (g, w) in zip(got.floats, want.floats) {
                    let err = Double(abs(g - w))
                    worst = max(worst, err)
                    if err > 1e-5 + 1e-4 * Double(abs(w)) {
                        XCTFail("\(variant) batch \(batch) threads \(threads): \(g) vs onnxruntime \(w)", file: file, line: line)
                        return
                    }
                }
                print("\(variant) batch \(batch) threads \(threads): max abs error \(worst) (output scale \(want.floats.map { abs($0) }.max() ?? 0))")
            }
        }
    }

    func testKeras3Opset13() throws { try check("keras3_opset13") }
    func testKeras3Opset18() throws { try check("keras3_opset18") }
    func testTfKerasResize() throws { try check("tfkeras_opset13") }
    func testKeras3NCHWInput() throws { try check("keras3_nchw_opset13") }
    func testTorchLegacyExporter() throws { try check("torch_legacy") }
    func testTorchDynamoExporterWithExternalData() throws { try check("torch_dynamo") }
}
