import Anomaly
import Engine
import Foundation
import OnnxIO
import XCTest
@testable import Keras
import Training

/// Keras weights both ways, against Keras and onnxruntime themselves: the Keras-trained shared model imported
/// by Kizuki computes what its tf2onnx export computes in onnxruntime; a file Kizuki writes (Keras 2 `.h5`,
/// Keras 3 `.weights.h5`, nested and flat) loads with `load_weights` in tf_keras and Keras 3 and predicts what
/// Kizuki predicts; import → export → import is bit-identical.
final class KerasRoundTripTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let seedWeights = root.appendingPathComponent("models/keras-seed/weights.h5")
    static let seedOnnx = root.appendingPathComponent("models/keras-seed/model.onnx")
    static let nestedWeights = root.appendingPathComponent(".cache/fixtures/train-parity/weights.h5")
    var tmp: URL!

    override func setUpWithError() throws {
        try BLAS.loadSingleThreaded()
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("kizuki-keras-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { if let tmp { try? FileManager.default.removeItem(at: tmp) } }

    func path(_ name: String) -> String { tmp.appendingPathComponent(name).path }

    /// The first 64 test images, [64, 28, 28, 1] in [0, 1].
    static let images: [Float] = {
        let set = try! FashionMNIST.load(.test, from: FashionMNIST.directory(nil))
        return Array(set.pixels.prefix(64 * 28 * 28))
    }()

    func kizukiEmbeddings(_ model: Model) throws -> [Float] {
        let session = try Session(model: model, options: SessionOptions())
        return try session.run(["input": HostTensor(shape: [64, 28, 28, 1], floats: Self.images)])["embedding"]!.floats
    }

    /// Largest absolute difference over the largest reference magnitude (the rtol of the issue, by norm).
    func relativeError(_ got: [Float], _ want: [Float]) -> Float {
        XCTAssertEqual(got.count, want.count)
        let scale = want.map(abs).max() ?? 0
        return (zip(got, want).map { abs($0 - $1) }.max() ?? .infinity) / max(scale, .leastNormalMagnitude)
    }

    func python(_ variable: String, _ purpose: String) throws -> String {
        guard let python = ProcessInfo.processInfo.environment[variable] else {
            throw XCTSkip("\(variable) not set (make test sets it to the venv with \(purpose))")
        }
        return python
    }

    func run(_ python: String, _ arguments: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = arguments
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "\(python) \(arguments.joined(separator: " ")) failed")
    }

    func writeImages() throws -> String {
        let file = path("images.npy")
        try Npy.write(Tensor(floats: Self.images, dims: [64, 28, 28, 1]), to: URL(fileURLWithPath: file))
        return file
    }

    // MARK: - Import

    /// The shared Keras-trained weights, imported, give the embeddings onnxruntime computes with the same model's
    /// tf2onnx export (which folds BatchNormalization): an independent check of every weight's place and layout.
    func testImportedKerasWeightsMatchTheirOnnxExportInOnnxRuntime() throws {
        let python = try python("KIZUKI_PYTHON", "onnxruntime")
        let imported = try EmbedderKerasWeights.read(Self.seedWeights.path)
        XCTAssertEqual(imported.layout, .flat)
        XCTAssertEqual(imported.denseName, "embedding")
        let images = try writeImages(), out = path("ort.npy")
        try run(python, ["-c", """
            import sys, numpy as np, onnxruntime as ort
            s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
            np.save(sys.argv[3], s.run(["embedding"], {"input": np.load(sys.argv[2])})[0])
            """, Self.seedOnnx.path, images, out])
        let want = try Npy.read(URL(fileURLWithPath: out)).elements(as: Float.self)
        let err = relativeError(try kizukiEmbeddings(imported.graph.model), want)
        print("keras-seed weights.h5 imported, Kizuki vs onnxruntime on its tf2onnx export: \(err)")
        XCTAssertLessThanOrEqual(err, 1e-4)
    }

    // MARK: - Round trips

    /// import → export → import gives the same checkpoint byte for byte, through either format and either
    /// layout, starting from files Keras wrote in both layouts.
    func testImportExportImportIsBitIdentical() throws {
        let sources = [Self.seedWeights, Self.nestedWeights].filter { FileManager.default.fileExists(atPath: $0.path) }
        XCTAssertEqual(sources.count, 2, "the nested fixture is missing: run `make fixtures`")
        for source in sources {
            let first = try EmbedderKerasWeights.read(source.path)
            let bytes = try first.graph.model.serialized()
            for name in ["again.h5", "again.hdf5", "again.weights.h5"] {
                try EmbedderKerasWeights.write(first.graph.model, file: "first", to: path(name))
                let second = try EmbedderKerasWeights.read(path(name))
                XCTAssertEqual(try second.graph.model.serialized(), bytes, "\(source.lastPathComponent) → \(name)")
                XCTAssertEqual(second.layout, first.layout)
                XCTAssertEqual(second.denseName, first.denseName)
            }
            // The other layout holds the same values in another order.
            let other: KerasLayout = first.layout == .flat ? .nested : .flat
            for name in ["other.h5", "other.weights.h5"] {
                try EmbedderKerasWeights.write(first.graph.model, file: "first", to: path(name), layout: other)
                let second = try EmbedderKerasWeights.read(path(name))
                XCTAssertEqual(second.layout, other)
                XCTAssertEqual(second.graph.model.graph.initializers, first.graph.model.graph.initializers, "\(source.lastPathComponent) → \(name)")
            }
        }
    }

    /// What Kizuki writes loads in Keras: the shared weights fine-tuned by Kizuki's trainer, exported in both
    /// formats and both layouts, predict in tf_keras and Keras 3 what Kizuki predicts (inference mode); and the
    /// Keras-written file re-written by Kizuki predicts in Keras exactly what the original does.
    func testKerasLoadsWhatKizukiWrites() throws {
        let python = try python("KIZUKI_KERAS_PYTHON", "TensorFlow, tf_keras and Keras 3")
        let imported = try EmbedderKerasWeights.read(Self.seedWeights.path)
        let start = path("start.onnx")
        try imported.graph.model.serialized().write(to: URL(fileURLWithPath: start))
        var recipe = TrainingRecipe()
        recipe.epochs = 1; recipe.batch = 32; recipe.trainImages = 64; recipe.threads = 2; recipe.initFrom = start
        recipe.margin = 10  // every triplet active: the Keras-trained model separates these images at margin 0.2 already
        var options = TrainingRun.Options(dataDirectory: FashionMNIST.directory(nil))
        options.evaluate = false
        options.log = { _ in }
        let runFolder = tmp.appendingPathComponent("run")
        try TrainingRun(newRun: runFolder, recipe: recipe, options: options).run()
        let trained = try Model(contentsOf: runFolder.appendingPathComponent("model.onnx"))
        let kizuki = try kizukiEmbeddings(trained)
        // Training moved every kind of parameter, moving statistics included, away from the imported values.
        let before = Dictionary(uniqueKeysWithValues: imported.graph.model.graph.initializers.map { ($0.name, $0) })
        for name in ["Conv1/kernel", "bn_Conv1/gamma", "bn_Conv1/moving_mean", "block_16_project_BN/moving_variance", "dense/bias"] {
            XCTAssertNotEqual(trained.graph.initializers.first { $0.name == name }, before[name], "\(name) did not change in training")
        }

        let images = try writeImages()
        struct Job: Encodable {
            var keras, layout, dense_name, weights, images, out: String
            var save_weights, save_model: String?
        }
        var jobs: [Job] = []
        for layout in KerasLayout.allCases {
            for name in ["\(layout).h5", "\(layout).weights.h5"] {
                try EmbedderKerasWeights.write(trained, file: "model.onnx", to: path(name), layout: layout)
                // tf_keras has no reader for Keras 3's .weights.h5 layout.
                for keras in name.hasSuffix(".weights.h5") ? ["keras3"] : ["tf_keras", "keras3"] {
                    jobs.append(Job(keras: keras, layout: layout.rawValue, dense_name: "embedding", weights: path(name), images: images,
                                    out: path("\(keras)-\(name).npy")))
                }
            }
        }
        try EmbedderKerasWeights.write(imported.graph.model, file: "imported", to: path("rewritten.h5"))
        for keras in ["tf_keras", "keras3"] {
            for (tag, file) in [("original", Self.seedWeights.path), ("rewritten", path("rewritten.h5"))] {
                jobs.append(Job(keras: keras, layout: "flat", dense_name: "embedding", weights: file, images: images, out: path("\(keras)-\(tag).npy"),
                                save_weights: tag == "original" && keras == "keras3" ? path("keras3-saved.weights.h5") : nil,
                                save_model: tag == "original" && keras == "tf_keras" ? path("tf_keras-model.h5") : nil))
            }
        }
        let jobFile = path("jobs.json")
        try JSONEncoder().encode(jobs).write(to: URL(fileURLWithPath: jobFile))
        try run(python, [Self.root.appendingPathComponent("tools/keras_predict.py").path, jobFile])

        for job in jobs where !job.out.hasSuffix("original.npy") && !job.out.hasSuffix("rewritten.npy") {
            let keras = try Npy.read(URL(fileURLWithPath: job.out)).elements(as: Float.self)
            let err = relativeError(kizuki, keras)
            print("\(job.keras) load_weights(\(URL(fileURLWithPath: job.weights).lastPathComponent)) vs Kizuki: \(err)")
            XCTAssertLessThanOrEqual(err, 1e-4, "\(job.keras) \(job.weights)")
        }
        // Files Keras wrote itself from the shared weights: Keras 3's .weights.h5 and tf_keras's full-model .h5.
        for file in ["keras3-saved.weights.h5", "tf_keras-model.h5"] {
            let again = try EmbedderKerasWeights.read(path(file))
            XCTAssertEqual(again.graph.model.graph.initializers, imported.graph.model.graph.initializers, file)
            XCTAssertEqual(again.layout, .flat, file)
        }
        for keras in ["tf_keras", "keras3"] {
            let original = try Npy.read(URL(fileURLWithPath: path("\(keras)-original.npy"))).elements(as: Float.self)
            let rewritten = try Npy.read(URL(fileURLWithPath: path("\(keras)-rewritten.npy"))).elements(as: Float.self)
            XCTAssertEqual(original, rewritten, "\(keras): the file Kizuki re-wrote predicts differently from the one Keras wrote")
        }
    }

    // MARK: - Refusals

    /// Wrong files get an error naming the file and the layer or weight at fault.
    func testRefusesFilesOfAnotherShapeOrWithNaN() throws {
        let imported = try EmbedderKerasWeights.read(Self.seedWeights.path)
        try EmbedderKerasWeights.write(imported.graph.model, file: "imported", to: path("good.h5"), layout: .flat)
        let good = try KerasWeights(contentsOf: path("good.h5"))

        func refuses(_ file: KerasWeights, _ expected: String..., line: UInt = #line) throws {
            try file.write(to: path("bad.h5"))
            XCTAssertThrowsError(try EmbedderKerasWeights.read(path("bad.h5")), line: line) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(path("bad.h5")), text, line: line)
                for e in expected { XCTAssertTrue(text.contains(e), "'\(e)' not in: \(text)", line: line) }
            }
        }
        var missing = good
        missing.layers.remove(at: 3)
        try refuses(missing, "104 layers have weights", "105")
        var extra = good
        extra.layers.insert(KerasWeights.Layer(name: "extra_bn", weights: good.layers[1].weights), at: 2)
        try refuses(extra, "106 layers have weights")
        var shape = good
        shape.layers[0].weights[0] = KerasWeights.Weight(name: "Conv1/kernel:0", shape: [3, 3, 3, 32], values: [Float](repeating: 0, count: 864))
        try refuses(shape, "'Conv1/kernel:0' of layer 'Conv1'", "[3, 3, 3, 32]", "[3, 3, 1, 32]")
        var swapped = good
        swapped.layers.swapAt(1, 2)  // bn_Conv1 (4 weights) where expanded_conv_depthwise (1) belongs
        try refuses(swapped, "layer 'expanded_conv_depthwise' has 1 weights", "'bn_Conv1' has 4")
        var nan = good
        nan.layers[5].weights[2].values[7] = .nan
        try refuses(nan, "NaN", "'\(good.layers[5].weights[2].name)'", "'\(good.layers[5].name)'")
        var dense = good
        dense.layers[dense.layers.count - 1].weights[0] = KerasWeights.Weight(name: "embedding/kernel:0", shape: [1000, 10], values: [Float](repeating: 0, count: 10_000))
        try refuses(dense, "'embedding'", "[1000, 10]", "[1280, embedding size]")

        // Keras 3: a missing variable and an unknown layer, each named by its path.
        var keras3 = try Keras3Weights(contentsOf: { try EmbedderKerasWeights.write(imported.graph.model, file: "x", to: path("good.weights.h5")); return path("good.weights.h5") }())
        let conv = keras3.layers.firstIndex { $0.path == "layers/conv2d_34" }!
        keras3.layers[conv].variables = []
        try keras3.write(to: path("bad.weights.h5"))
        XCTAssertThrowsError(try EmbedderKerasWeights.read(path("bad.weights.h5"))) { XCTAssertTrue("\($0)".contains("'layers/conv2d_34'") && "\($0)".contains("Conv_1"), "\($0)") }
        keras3.layers[conv].variables = try Keras3Weights(contentsOf: path("good.weights.h5")).layers[conv].variables
        keras3.layers.append(Keras3Weights.Layer(path: "layers/conv2d_35", name: "extra", variables: keras3.layers[conv].variables))
        try keras3.write(to: path("bad.weights.h5"))
        XCTAssertThrowsError(try EmbedderKerasWeights.read(path("bad.weights.h5"))) { XCTAssertTrue("\($0)".contains("'layers/conv2d_35'"), "\($0)") }
    }

    /// Exporting needs the training form: a tf2onnx export (BatchNormalization folded away) is refused with the reason.
    func testExportRefusesAModelThatIsNotTheTrainingForm() throws {
        let folded = try Model(contentsOf: Self.seedOnnx)
        XCTAssertThrowsError(try EmbedderKerasWeights.write(folded, file: "model.onnx", to: path("x.h5"))) {
            XCTAssertTrue("\($0)".contains("model.onnx") && "\($0)".contains("import the Keras weights"), "\($0)")
        }
        var nan = try EmbedderKerasWeights.read(Self.seedWeights.path).graph.model
        let i = nan.graph.initializers.firstIndex { $0.name == "block_3_expand/kernel" }!
        var values = nan.graph.initializers[i].elements(as: Float.self)
        values[0] = .infinity
        nan.graph.initializers[i] = Tensor(name: nan.graph.initializers[i].name, floats: values, dims: nan.graph.initializers[i].dims)
        XCTAssertThrowsError(try EmbedderKerasWeights.write(nan, file: "nan.onnx", to: path("x.h5"))) {
            XCTAssertTrue("\($0)".contains("'block_3_expand/kernel'"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("x.h5")), "a refused export left a file")
    }
}
