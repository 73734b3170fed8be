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
        guard FileManager.default.fileExists(atPath: Self.fixtures.appendingPathComponent("\(variant).onnx").path) else {
            throw XCTSkip("fixtures missing: run `make fixtures`")
        }
        try Self.check(variant, in: Self.fixtures, batches: [1, 7], file: file, line: line)
    }

    /// Runs `directory/name.onnx` on 1 and 2 threads on each `name.in.bB.npy` and compares with
    /// `name.out.bB.npy` (onnxruntime's outputs) under `scaledError`'s bound. Shared with BenchSuiteTests.
    static func check(_ name: String, in directory: URL, batches: [Int], file: StaticString = #filePath,
                      line: UInt = #line) throws {
        let model = directory.appendingPathComponent("\(name).onnx")
        for threads in [1, 2] {
            var options = SessionOptions()
            options.threads = threads
            let session = try Session(contentsOf: model, options: options)
            for batch in batches {
                let input = try HostTensor(Npy.read(directory.appendingPathComponent("\(name).in.b\(batch).npy")))
                let want = try HostTensor(Npy.read(directory.appendingPathComponent("\(name).out.b\(batch).npy")))
                let out = try session.run([session.inputs[0].name: input])
                let got = try XCTUnwrap(out[session.outputs[0].name], file: file, line: line)
                XCTAssertEqual(got.shape, want.shape, file: file, line: line)
                let (worst, bound) = scaledError(got.floats, want.floats)
                let context = "\(name) batch \(batch) threads \(threads): max |Kizuki - onnxruntime| \(worst), bound \(bound)"
                    + " (onnxruntime vs the framework itself: \(frameworkGap(name, batch, in: directory).map { "\($0)" } ?? "not recorded"))"
                print(context)
                XCTAssertLessThanOrEqual(worst, bound, context, file: file, line: line)
            }
        }
    }

    /// The tolerance rule for float32 networks (README, "What `make test` checks"): per output,
    /// max |got - want| <= atol + rtol * max |want|, rtol 1e-4, atol 1e-5. Elementwise relative bounds
    /// fail on small elements of a large output, where summation order alone (BLAS kernels differ
    /// between CPUs) moves the last bits: the error of a dot product scales with its terms, not its result.
    static func scaledError(_ got: [Float], _ want: [Float]) -> (worst: Double, bound: Double) {
        var worst = 0.0, scale = 0.0
        for (g, w) in zip(got, want) {
            worst = max(worst, g.isNaN || w.isNaN ? .infinity : Double(abs(g - w)))
            scale = max(scale, Double(abs(w)))
        }
        return (worst, 1e-5 + 1e-4 * scale)
    }

    /// How far onnxruntime was from the exporting framework on this model, as the MANIFEST.json of `directory`
    /// records it (make_fixtures.py lists "variants", make_bench_suite.py "models").
    static func frameworkGap(_ name: String, _ batch: Int, in directory: URL) -> Double? {
        guard let data = try? Data(contentsOf: directory.appendingPathComponent("MANIFEST.json")),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let entries = (json["variants"] ?? json["models"]) as? [[String: Any]],
              let entry = entries.first(where: { $0["name"] as? String == name }),
              let stats = (entry["stats"] as? [String: Any])?["b\(batch)"] as? [String: Any] else { return nil }
        return stats["max_diff_vs_framework"] as? Double
    }

    func testKeras3Opset13() throws { try check("keras3_opset13") }
    func testKeras3Opset18() throws { try check("keras3_opset18") }
    func testTfKerasResize() throws { try check("tfkeras_opset13") }
    func testKeras3NCHWInput() throws { try check("keras3_nchw_opset13") }
    func testTorchLegacyExporter() throws { try check("torch_legacy") }
    func testTorchDynamoExporterWithExternalData() throws { try check("torch_dynamo") }
}
