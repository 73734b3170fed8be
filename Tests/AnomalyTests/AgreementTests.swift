import Foundation
import XCTest
@testable import Anomaly
import Engine
import OnnxIO

/// The AUC and per-image scores Kizuki reports for the shipped Keras-trained model equal those
/// computed independently with onnxruntime and NumPy (tools/ort_auc.py) on the same split.
final class AgreementTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Every shipped model (models/*/model.onnx): the Keras one and the ones Kizuki trained.
    func testKizukiAgreesWithOnnxRuntimeAndNumPy() throws {
        guard let python = ProcessInfo.processInfo.environment["KIZUKI_PYTHON"] else {
            throw XCTSkip("KIZUKI_PYTHON not set (make test sets it to the venv with onnxruntime)")
        }
        let folders = try FileManager.default.contentsOfDirectory(atPath: Self.root.appendingPathComponent("models").path).sorted()
        let models = folders.map { Self.root.appendingPathComponent("models/\($0)/model.onnx") }
            .filter { FileManager.default.fileExists(atPath: $0.path) }
        XCTAssertTrue(models.contains { $0.path.hasSuffix("models/keras-seed/model.onnx") }, "\(models)")
        for model in models { try check(model, python: python) }
    }

    func check(_ model: URL, python: String) throws {
        let dataDir = FashionMNIST.directory(nil)
        let scoresFile = FileManager.default.temporaryDirectory.appendingPathComponent("ort-scores-\(UUID().uuidString).npy")
        defer { try? FileManager.default.removeItem(at: scoresFile) }

        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [Self.root.appendingPathComponent("tools/ort_auc.py").path, model.path, "--data", dataDir.path,
                       "--normal", "7", "--anomaly", "9", "--anchors", "6000", "--out", scoresFile.path]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        let reference = try XCTUnwrap(JSONSerialization.jsonObject(with: text) as? [String: Any])
        let referenceAUC = try XCTUnwrap(reference["auc"] as? Double)
        let referenceScores = try Npy.read(scoresFile).elements(as: Double.self)

        let embedder = try Embedder(modelFile: model)
        let split = try FashionMNIST.experiment(normal: 7, anomaly: 9, from: dataDir)
        let evaluation = try Evaluation.run(embedder: embedder, anchors: split.anchors, test: split.test, anchorCounts: [6000],
                                            batches: [64], k: 1, fpr: nil)
        print("\(model.path): AUC Kizuki \(evaluation.rows[0].auc), onnxruntime + NumPy \(referenceAUC)")
        XCTAssertEqual(evaluation.rows[0].auc, referenceAUC, accuracy: 1e-4, model.path)
        XCTAssertEqual(evaluation.scores.count, referenceScores.count)
        // The README's rule for float32 networks: max |error| <= atol + rtol * max |expected| over the output
        // (rtol 1e-4, atol 1e-5). A score is a distance between embeddings whose float32 error scales with the
        // embeddings, not with the distance: a near-duplicate's tiny score can differ relatively by far more.
        var worst = 0.0
        for (k, r) in zip(evaluation.scores, referenceScores) { worst = max(worst, k.isNaN ? .infinity : abs(k - r)) }
        let bound = 1e-5 + 1e-4 * (referenceScores.map(abs).max() ?? 0)
        print("largest score difference: \(worst) (bound \(bound))")
        XCTAssertLessThanOrEqual(worst, bound, model.path)
    }
}
