import Anomaly
import Engine
import Foundation
import OnnxIO
import XCTest
@testable import Training

/// Runs of the trainer on a few real images: resuming is bit-exact (after an epoch and after an interruption),
/// a diverging run stops with the step number, and what a run writes is a valid model that onnxruntime runs
/// to the same embeddings as Kizuki.
final class TrainingRunTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func folder(_ name: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kizuki-train-\(name)-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func recipe(epochs: Int) -> TrainingRecipe {
        var r = TrainingRecipe()
        r.epochs = epochs
        r.batch = 8
        r.seed = 3
        r.threads = 2
        r.schedule = LearningRateSchedule(base: 1e-2, drops: [1])
        r.trainImages = 24  // three steps per epoch; the first 24 training images hold both labels
        return r
    }

    func options(stopAfter steps: Int? = nil) -> TrainingRun.Options {
        var o = TrainingRun.Options(dataDirectory: FashionMNIST.directory(nil))
        o.evaluate = false
        o.log = { _ in }
        if let steps {
            // Asked after every step but an epoch's last: with 3 steps per epoch the 3rd question comes after step 4.
            var count = 0
            o.shouldStop = { count += 1; return count >= steps }
        }
        return o
    }

    func files(_ dir: URL) throws -> [Data] {
        try ["checkpoint.onnx", "optimizer.bin"].map { try Data(contentsOf: dir.appendingPathComponent($0)) }
    }

    func testResumeContinuesBitExactly() throws {
        let straight = try folder("straight")
        try TrainingRun(newRun: straight, recipe: recipe(epochs: 2), options: options()).run()

        let resumed = try folder("resumed")
        try TrainingRun(newRun: resumed, recipe: recipe(epochs: 1), options: options()).run()
        try TrainingRun(resume: resumed, epochs: 2, options: options()).run()

        let interrupted = try folder("interrupted")
        XCTAssertThrowsError(try TrainingRun(newRun: interrupted, recipe: recipe(epochs: 2), options: options(stopAfter: 3)).run()) {
            guard case Trainer.Stop.interrupted = $0 else { return XCTFail("expected an interruption, got \($0)") }
        }
        let (state, _, _) = try Checkpoint.load(interrupted)
        XCTAssertEqual(state.step, 4)
        XCTAssertEqual(state.stepInEpoch, 1)
        try TrainingRun(resume: interrupted, epochs: nil, options: options()).run()

        let reference = try files(straight)
        XCTAssertEqual(try files(resumed), reference, "1 epoch + resume + 1 epoch differs from 2 epochs straight")
        XCTAssertEqual(try files(interrupted), reference, "interrupted at step 4 + resume differs from 2 epochs straight")
        let a = try Checkpoint.load(straight).state, b = try Checkpoint.load(resumed).state, c = try Checkpoint.load(interrupted).state
        XCTAssertEqual(a.history.map(\.loss), b.history.map(\.loss))
        XCTAssertEqual(a.history.map(\.loss), c.history.map(\.loss))
        XCTAssertEqual(a.step, 6)
        XCTAssertNotEqual(a.history[0].loss, a.history[1].loss)
    }

    /// `--labels classes` trains on each image's own class; the reference on normal 1 / rest 0. Neither sees an excluded class.
    func testClassLabelsAreTheImagesOwnClasses() throws {
        let dir = FashionMNIST.directory(nil)
        let binary = try TrainingData.fashionMNIST(normal: 7, exclude: [9, 5], directory: dir, limit: 2000)
        let classes = try TrainingData.fashionMNIST(normal: 7, exclude: [9, 5], directory: dir, limit: 2000, classLabels: true)
        XCTAssertEqual(Set(classes.labels), [0, 1, 2, 3, 4, 6, 7, 8])
        XCTAssertEqual(Set(binary.labels), [0, 1])
        for (c, b) in zip(classes.labels, binary.labels) { XCTAssertEqual(b, c == 7 ? 1 : 0) }
        XCTAssertEqual(classes.images.pixels, binary.images.pixels)
    }

    /// The mid-epoch hook (`--eval-every`) runs after every step but an epoch's last, and leaves training as it was.
    func testAfterStepHookRunsBetweenStepsWithoutChangingTheRun() throws {
        let plain = try folder("plain")
        try TrainingRun(newRun: plain, recipe: recipe(epochs: 2), options: options()).run()
        let hooked = try TrainingRun(newRun: try folder("hooked"), recipe: recipe(epochs: 2), options: options())
        var seen: [Int] = []
        for _ in 0..<2 {
            _ = try hooked.trainer.runEpoch(afterStep: { seen.append(hooked.trainer.state.step) })
        }
        XCTAssertEqual(seen, [1, 2, 4, 5], "after steps 1 and 2 of each 3-step epoch")
        let reference = try Checkpoint.load(plain)
        XCTAssertEqual(hooked.trainer.currentModel().graph.initializers, reference.model.graph.initializers)
    }

    func testNonFiniteLossStopsWithTheStepAndKeepsTheLastCheckpoint() throws {
        let dir = try folder("diverge")
        try TrainingRun(newRun: dir, recipe: recipe(epochs: 1), options: options()).run()
        // Weights whose embeddings overflow float32 (every Dense weight 3e38): the next step's loss is NaN.
        var (state, model, optimizer) = try Checkpoint.load(dir)
        let index = try XCTUnwrap(model.graph.initializers.firstIndex { $0.name == "dense/kernel" })
        let dims = model.graph.initializers[index].dims
        model.graph.initializers[index] = Tensor(name: "dense/kernel", floats: Array(repeating: 3e38, count: dims.reduce(1, *)), dims: dims)
        state.recipe.epochs = 2
        try Checkpoint.save(dir, state: state, model: model, optimizer: optimizer)
        let saved = try files(dir)
        XCTAssertThrowsError(try TrainingRun(resume: dir, epochs: nil, options: options()).run()) {
            guard case Trainer.Stop.nonFinite(let step, let loss) = $0 else { return XCTFail("expected a non-finite loss, got \($0)") }
            XCTAssertEqual(step, 4, "the first step after the resumed epoch 1")
            XCTAssertFalse(loss.isFinite)
        }
        XCTAssertEqual(try files(dir), saved, "the last good checkpoint must be left as it was")
    }

    /// `--init` takes every weight and moving statistic of a training-form file; the model card records the run.
    func testInitStartsFromAnotherRunsWeights() throws {
        let first = try folder("first")
        var o = options()
        o.commandLine = "kizuki train --out first"
        try TrainingRun(newRun: first, recipe: recipe(epochs: 1), options: o).run()
        var r = recipe(epochs: 1)
        r.initFrom = first.appendingPathComponent("model.onnx").path
        r.seed = 99
        let second = try TrainingRun(newRun: try folder("second"), recipe: r, options: options())
        let trained = try TrainingGraph(model: Model(contentsOf: first.appendingPathComponent("model.onnx")), file: "model.onnx")
        let store = try ParameterStore(infos: trained.parameters, model: trained.model)
        for info in second.trainer.program.parameters.infos {
            XCTAssertEqual(second.trainer.program.parameters.value(info.name), store.value(info.name), info.name)
        }
        let card = try String(contentsOf: first.appendingPathComponent("MODEL_CARD.md"), encoding: .utf8)
        XCTAssertTrue(card.contains("kizuki train --out first"), card)
        XCTAssertTrue(card.contains("| 1 | "), card)
    }

    func testRefusesToOverwriteARun() throws {
        let dir = try folder("twice")
        try TrainingRun(newRun: dir, recipe: recipe(epochs: 1), options: options()).run()
        XCTAssertThrowsError(try TrainingRun(newRun: dir, recipe: recipe(epochs: 1), options: options())) {
            XCTAssertTrue("\($0)".contains("--resume"), "\($0)")
        }
    }

    /// model.onnx passes ONNX's checker and onnxruntime computes the embeddings Kizuki computes: the reference
    /// recipe's, and with `--l2-normalize --bn-momentum 0.99` (whose rows onnxruntime finds of unit length).
    func testWrittenModelRunsInOnnxRuntime() throws {
        try checkInOnnxRuntime(recipe(epochs: 1))
        var r = recipe(epochs: 1)
        r.l2Normalize = true
        r.bnMomentum = 0.99
        let rows = try checkInOnnxRuntime(r)
        for row in rows { XCTAssertEqual(row.reduce(0) { $0 + Double($1) * Double($1) }, 1, accuracy: 1e-5, "onnxruntime's row norm") }
    }

    /// The graph changes of `l2Normalize` and `bnMomentum` are in the checkpoint, so a resumed run keeps them.
    func testEmbeddingOptionsAreKeptInTheCheckpoint() throws {
        var r = recipe(epochs: 1)
        r.l2Normalize = true
        r.bnMomentum = 0.99
        let dir = try folder("options")
        try TrainingRun(newRun: dir, recipe: r, options: options()).run()
        let resumed = try TrainingRun(resume: dir, epochs: 2, options: options())
        let nodes = resumed.trainer.program.graph.model.graph.nodes
        XCTAssertEqual(nodes.filter { $0.opType == "LpNormalization" }.count, 1)
        XCTAssertEqual(nodes.last?.outputs, ["embedding"])
        let momenta = nodes.filter { $0.opType == "BatchNormalization" }.map { $0.attribute("momentum") }
        XCTAssertEqual(momenta.count, 52)
        XCTAssertTrue(momenta.allSatisfy { $0 == .float(0.99) }, "\(Set(momenta.map { "\($0 as Any)" }))")
        XCTAssertEqual(resumed.trainer.program.graph.l2NormalizingOutput().model.graph.nodes.count, nodes.count, "normalised once")
    }

    /// Trains `recipe` for its epochs, then runs model.onnx in onnxruntime and Kizuki on 16 test images; returns onnxruntime's rows.
    @discardableResult
    func checkInOnnxRuntime(_ recipe: TrainingRecipe) throws -> [[Float]] {
        guard let python = ProcessInfo.processInfo.environment["KIZUKI_PYTHON"] else {
            throw XCTSkip("KIZUKI_PYTHON not set (make test sets it to the venv with onnxruntime)")
        }
        let dir = try folder("ort")
        try TrainingRun(newRun: dir, recipe: recipe, options: options()).run()
        let model = dir.appendingPathComponent("model.onnx")
        let test = try FashionMNIST.load(.test, from: FashionMNIST.directory(nil)).prefix(16)
        let input = dir.appendingPathComponent("input.npy"), output = dir.appendingPathComponent("ort.npy")
        try Npy.write(Tensor(floats: test.pixels, dims: [16, 28, 28, 1]), to: input)
        let script = """
        import sys, numpy as np, onnx, onnxruntime as ort
        onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)
        s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
        np.save(sys.argv[3], s.run(["embedding"], {"input": np.load(sys.argv[2])})[0])
        """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["-c", script, model.path, input.path, output.path]
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "onnxruntime could not run \(model.path)")
        let want = try Npy.read(output).elements(as: Float.self)
        let session = try Session(model: Model(contentsOf: model), options: SessionOptions())
        let got = try session.run(["input": HostTensor(shape: [16, 28, 28, 1], floats: test.pixels)])["embedding"]!.floats
        let scale = want.map(abs).max() ?? 0
        let err = zip(got, want).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(err, 1e-5 + 1e-4 * scale, "Kizuki vs onnxruntime on the trained model")
        let dim = want.count / 16
        return (0..<16).map { Array(want[($0 * dim)..<(($0 + 1) * dim)]) }
    }

    /// A model whose nodes have no training kernels gets one error naming each of them.
    func testUnsupportedNodesAreListedTogether() throws {
        let model = try Model(contentsOf: Self.root.appendingPathComponent("models/keras-seed/model.onnx"))
        let graph = try TrainingGraph(model: model, file: "model.onnx")
        XCTAssertThrowsError(try TrainingProgram(graph: graph, batch: 2, threads: 1)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("unsupported"), text)
            XCTAssertGreaterThan(text.split(separator: "\n").count, 5, "expected every unsupported node listed: \(text)")
        }
    }
}
