import Engine
import Foundation
import OnnxIO
import XCTest
@testable import Training

/// Kizuki's training graph against tf_keras on the same weights and batch (tools/keras_train_reference.py,
/// written by `make fixtures`): training-mode embeddings, the loss, every gradient, the moving statistics after
/// a step, five SGD steps, and the inference-mode embeddings after them.
///
/// The fixture holds tf_keras in float32 (what users run) and the same steps in float64. At this recipe's
/// start the problem is badly conditioned in float32: the triplet loss is invariant to moving all embeddings
/// together, so every weight gradient is the small difference of large per-image terms, and TensorFlow's own
/// float32 gradients are 4–10 % away from its float64 ones. So each tensor of step 1 is held to the issue's bound
/// against float64 Keras (1e-4 for embeddings, loss and moving statistics, 1e-3 for gradients) or, where float32
/// TensorFlow itself misses that bound, to being no farther from float64 Keras than float32 TensorFlow is. A wrong
/// formula anywhere shows as errors of order 1. Beyond step 1 the trajectory is chaotic at lr 1e-3 (gradient norms
/// near 1000; float32 and float64 TensorFlow are 15–38 % apart in loss from step 2 on), so steps 2–5 are reported,
/// checked for finiteness, and not compared; the update rule itself is checked exactly by SGDTests.
final class KerasParityTests: XCTestCase {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".cache/fixtures/train-parity")

    struct Manifest: Decodable {
        var bessel_corrected_moving_variance: Bool
        var near_zero_grads: [String]
    }

    func read(_ path: String) throws -> [Double] {
        let t = try Npy.read(Self.dir.appendingPathComponent(path))
        if t.dataType == .double { return t.elements(as: Double.self) }
        return t.elements(as: Float.self).map(Double.init)
    }

    func file(_ folder: String, _ name: String) -> String { "\(folder)/\(name.replacingOccurrences(of: "/", with: "__")).npy" }

    /// Kizuki's distance from float64 Keras must be within `bound`, or within float32 TensorFlow's own distance.
    func check(_ what: String, kizuki: [Double], tf32: [Double], f64: [Double], bound: Double, report: inout [String: (Double, Double)]) {
        let mine = relativeError(kizuki, f64), theirs = relativeError(tf32, f64)
        let r = report[what] ?? (0, 0)
        report[what] = (max(r.0, mine), max(r.1, theirs))
        XCTAssertLessThanOrEqual(mine, max(bound, theirs), "\(what): Kizuki vs float64 Keras \(mine), float32 TensorFlow vs float64 Keras \(theirs)")
    }

    func testTrainingStepsMatchKeras() throws {
        guard FileManager.default.fileExists(atPath: Self.dir.appendingPathComponent("manifest.json").path) else {
            throw XCTSkip("Keras parity fixture missing: run `make fixtures`")
        }
        let manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: Self.dir.appendingPathComponent("manifest.json")))
        XCTAssertEqual(TrainingProgram.besselCorrectedMovingVariance, manifest.bessel_corrected_moving_variance,
                       "Keras's moving-variance update (measured by the fixture script) differs from Kizuki's")

        let input = try read("input.npy").map(Float.init)
        let labels = try Npy.read(Self.dir.appendingPathComponent("labels.npy")).elements(as: Int32.self)
        let batch = labels.count
        let built = MobileNetV2Embedder().build(seed: 1)
        let program = try TrainingProgram(graph: TrainingGraph(model: built.model, parameters: built.parameters), batch: batch, threads: 2)
        let store = program.parameters
        XCTAssertEqual(store.infos.filter(\.trainable).count, 158, "Keras's MobileNetV2 embedder has 158 trainable weights")
        for info in store.infos {
            let keras = try read(file("weights", info.name)).map(Float.init)
            XCTAssertEqual(keras.count, info.count, "\(info.name): Keras has \(keras.count) values, Kizuki \(info.count)")
            try store.set(info.name, info.fromKeras(keras))
        }

        let sgd = SGD(parameters: store, momentum: 0.9)
        let gradient = UnsafeMutablePointer<Float>.allocate(capacity: batch * program.outputSize)
        defer { gradient.deallocate() }
        var report: [String: (Double, Double)] = [:]
        var losses: [Double] = []
        for step in 0..<5 {
            input.withUnsafeBufferPointer { program.forward(images: $0.baseAddress!) }
            let embeddings = program.output.map(Double.init)
            let loss = TripletLoss.evaluate(.batchAll, embeddings: program.output.baseAddress!, labels: labels, dim: program.outputSize,
                                            margin: 0.2, gradient: gradient)
            losses.append(loss)
            program.backward(outputGradient: gradient)
            if step == 0 {
                check("training embeddings", kizuki: embeddings, tf32: try read("embeddings.npy"), f64: try read("f64/embeddings.npy"),
                      bound: 1e-4, report: &report)
                check("loss", kizuki: [loss], tf32: try read("loss.npy"), f64: try read("f64/loss.npy"), bound: 1e-4, report: &report)
                for info in store.infos where info.trainable {
                    let mine = info.toKeras(store.gradient(info.name)!).map(Double.init)
                    let tf32 = try read(file("grads", info.name)), f64 = try read(file("f64/grads", info.name))
                    if manifest.near_zero_grads.contains(info.name) {
                        // Exactly 0 in exact arithmetic (a shift that the next BatchNormalization or the loss removes):
                        // both float32 results are rounding noise, so only their size is compared.
                        let norm = { (v: [Double]) in v.reduce(0) { $0 + $1 * $1 }.squareRoot() }
                        XCTAssertLessThanOrEqual(norm(mine), 10 * max(norm(tf32), 1e-6), "\(info.name): should be rounding noise")
                        continue
                    }
                    check("gradient " + kind(info), kizuki: mine, tf32: tf32, f64: f64, bound: 1e-3, report: &report)
                }
            }
            if step == 0 {
                // The moving-average update of step 1 (momentum 0.999, Bessel-corrected variance) against exact Keras.
                for info in store.infos where !info.trainable {
                    let mine = store.value(info.name)!.map(Double.init)
                    let exact = try read(file("f64/moving_after_step1", info.name)), before = try read(file("weights", info.name))
                    let e = relativeError(mine, exact)
                    report["moving statistics after step 1", default: (0, 0)].0 = max(report["moving statistics after step 1"]?.0 ?? 0, e)
                    XCTAssertLessThanOrEqual(e, 1e-4, "\(info.name) after step 1")
                    // The change alone, far tighter: a wrong momentum or variance formula moves it by percents.
                    let change = relativeError(zip(mine, before).map { $0 - $1 }, zip(exact, before).map { $0 - $1 })
                    report["moving statistics change in step 1", default: (0, 0)].0 = max(report["moving statistics change in step 1"]?.0 ?? 0, change)
                    XCTAssertLessThanOrEqual(change, 1e-3, "\(info.name): change in step 1")
                }
            }
            sgd.step(store, lr: 1e-3)
        }
        let tfLosses = try read("step_losses.npy"), f64Losses = try read("f64/step_losses.npy")
        check("loss of step 1", kizuki: [losses[0]], tf32: [tfLosses[0]], f64: [f64Losses[0]], bound: 1e-4, report: &report)
        for i in 1..<5 {
            XCTAssertTrue(losses[i].isFinite, "loss of step \(i + 1)")
            print(String(format: "keras parity: loss of step %d (chaotic, not compared): Kizuki %.4f, float32 TensorFlow %.4f, float64 Keras %.4f",
                         i + 1, losses[i], tfLosses[i], f64Losses[i]))
        }
        // Inference mode through the engine: the trained weights and moving statistics give finite embeddings that
        // depend on the image (TrainingRunTests checks inference-mode outputs against onnxruntime).
        let session = try Session(model: store.write(into: built.model), options: SessionOptions())
        let out = try session.run([MobileNetV2Embedder.inputName: HostTensor(shape: [batch, 28, 28, 1], floats: input)])
        let inference = out[MobileNetV2Embedder.outputName]!.floats
        XCTAssertTrue(inference.allSatisfy(\.isFinite))
        XCTAssertNotEqual(Array(inference[0..<128]), Array(inference[128..<256]))
        for (k, v) in report.sorted(by: { $0.key < $1.key }) {
            // The moving statistics have no float32 TensorFlow value after step 1 in the fixture.
            let theirs = k.hasPrefix("moving") ? "" : String(format: ", float32 TensorFlow %.2e", v.1)
            print("keras parity: \(k): Kizuki " + String(format: "%.2e", v.0) + theirs + " (worst, vs float64 Keras)")
        }
    }

    private func kind(_ info: ParameterInfo) -> String {
        String(info.name.split(separator: "/").last ?? "")
    }
}
