import Engine
import Foundation
import OnnxIO
import XCTest
@testable import Training

/// Kizuki's training graph against tf_keras on the same weights and batch (tools/keras_train_reference.py,
/// written by `make fixtures`): training-mode embeddings, the loss, every gradient, five SGD steps, every
/// weight and moving statistic after them, and the inference-mode embeddings.
final class KerasParityTests: XCTestCase {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".cache/fixtures/train-parity")

    struct Manifest: Decodable {
        var bessel_corrected_moving_variance: Bool
    }

    func read(_ path: String) throws -> [Float] {
        let t = try Npy.read(Self.dir.appendingPathComponent(path))
        if t.dataType == .double { return t.elements(as: Double.self).map { Float($0) } }
        return t.elements(as: Float.self)
    }

    func file(_ folder: String, _ name: String) -> String { "\(folder)/\(name.replacingOccurrences(of: "/", with: "__")).npy" }

    func testTrainingStepsMatchKeras() throws {
        guard FileManager.default.fileExists(atPath: Self.dir.appendingPathComponent("manifest.json").path) else {
            throw XCTSkip("Keras parity fixture missing: run `make fixtures`")
        }
        let manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: Self.dir.appendingPathComponent("manifest.json")))
        XCTAssertEqual(TrainingProgram.besselCorrectedMovingVariance, manifest.bessel_corrected_moving_variance,
                       "Keras's moving-variance update (measured by the fixture script) differs from Kizuki's")

        let input = try read("input.npy")
        let labels = try Npy.read(Self.dir.appendingPathComponent("labels.npy")).elements(as: Int32.self)
        let batch = labels.count
        let built = MobileNetV2Embedder().build(seed: 1)
        let program = try TrainingProgram(graph: TrainingGraph(model: built.model, parameters: built.parameters), batch: batch, threads: 2)
        let store = program.parameters
        var initial: [String: [Float]] = [:]
        for info in store.infos {
            let keras = try read(file("weights", info.name))
            XCTAssertEqual(keras.count, info.count, "\(info.name): Keras has \(keras.count) values, Kizuki \(info.count)")
            initial[info.name] = info.fromKeras(keras)
            try store.set(info.name, initial[info.name]!)
        }

        let sgd = SGD(parameters: store, momentum: 0.9)
        let gradient = UnsafeMutablePointer<Float>.allocate(capacity: batch * program.outputSize)
        defer { gradient.deallocate() }
        var worst: [String: Double] = [:]
        func note(_ kind: String, _ e: Double) { worst[kind] = max(worst[kind] ?? 0, e) }
        var losses: [Double] = []
        for step in 0..<5 {
            input.withUnsafeBufferPointer { program.forward(images: $0.baseAddress!) }
            let embeddings = Array(program.output)
            let loss = TripletLoss.evaluate(.batchAll, embeddings: embeddings, labels: labels, dim: program.outputSize, margin: 0.2,
                                            gradient: gradient)
            losses.append(loss)
            program.backward(outputGradient: gradient)
            if step == 0 {
                let e = relativeError(embeddings.map(Double.init), try read("embeddings.npy").map(Double.init))
                note("training embeddings", e)
                XCTAssertLessThanOrEqual(e, 1e-4, "training-mode embeddings")
                let want = Double(try read("loss.npy")[0])
                note("loss", abs(loss - want) / abs(want))
                XCTAssertLessThanOrEqual(abs(loss - want) / abs(want), 1e-4, "loss \(loss) vs Keras \(want)")
                for info in store.infos where info.trainable {
                    let mine = info.toKeras(store.gradient(info.name)!).map(Double.init)
                    let e = relativeError(mine, try read(file("grads", info.name)).map(Double.init))
                    note("gradient " + kind(info), e)
                    XCTAssertLessThanOrEqual(e, 1e-3, "gradient of \(info.name)")
                }
            }
            sgd.step(store, lr: 1e-3)
        }
        let stepLosses = try read("step_losses.npy").map(Double.init)
        for (i, (mine, want)) in zip(losses, stepLosses).enumerated() {
            note("step loss", abs(mine - want) / abs(want))
            XCTAssertLessThanOrEqual(abs(mine - want) / abs(want), 1e-4, "loss of SGD step \(i + 1): \(mine) vs Keras \(want)")
        }
        for info in store.infos {
            let want = try read(file("after", info.name)).map(Double.init)
            let mine = info.toKeras(store.value(info.name)!).map(Double.init)
            let e = relativeError(mine, want)
            note("after 5 steps " + kind(info), e)
            XCTAssertLessThanOrEqual(e, 1e-4, "\(info.name) after 5 steps")
            // The change over 5 steps, tighter: it tells a wrong moving-variance formula (n / (n − 1)) apart.
            let start = info.toKeras(initial[info.name]!).map(Double.init)
            let change = relativeError(zip(mine, start).map { $0 - $1 }, zip(want, start).map { $0 - $1 })
            note("change over 5 steps " + kind(info), change)
            XCTAssertLessThanOrEqual(change, 2e-3, "\(info.name): change over 5 steps")
        }
        // Inference mode, through the engine, on the trained weights.
        let session = try Session(model: store.write(into: built.model), options: SessionOptions())
        let out = try session.run([MobileNetV2Embedder.inputName: HostTensor(shape: [batch, 28, 28, 1], floats: input)])
        let e = relativeError(out[MobileNetV2Embedder.outputName]!.floats.map(Double.init), try read("inference_embeddings.npy").map(Double.init))
        note("inference embeddings", e)
        XCTAssertLessThanOrEqual(e, 1e-4, "inference-mode embeddings after 5 steps")
        for (k, v) in worst.sorted(by: { $0.key < $1.key }) { print(String(format: "keras parity: worst %@ %.2e", k, v)) }
    }

    private func kind(_ info: ParameterInfo) -> String {
        String(info.name.split(separator: "/").last ?? "")
    }
}
