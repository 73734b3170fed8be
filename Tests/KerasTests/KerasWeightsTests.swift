import Foundation
import OnnxIO
import XCTest
@testable import Keras
import Training

/// Keras weight files read through libhdf5, against what Keras and NumPy wrote themselves.
final class KerasWeightsTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let parity = root.appendingPathComponent(".cache/fixtures/train-parity")

    /// tf_keras's save_weights file of the parity fixture holds exactly the values NumPy saved from the same model.
    func testReadsWhatKerasSaveWeightsWrote() throws {
        let file = Self.parity.appendingPathComponent("weights.h5")
        guard FileManager.default.fileExists(atPath: file.path) else { throw XCTSkip("fixture missing: run `make fixtures`") }
        let keras = try KerasWeights(contentsOf: file.path)
        XCTAssertEqual(keras.kerasVersion, "2.21.0")
        XCTAssertEqual(keras.weights.count, 262)
        for w in keras.weights {
            let npy = try Npy.read(Self.parity.appendingPathComponent("weights/\(w.shortName.replacingOccurrences(of: "/", with: "__")).npy"))
            XCTAssertEqual(w.shape, npy.dims, w.name)
            XCTAssertEqual(w.values, npy.elements(as: Float.self), w.name)
        }
    }

    /// Every weight of a Keras file of the reference model (the flat layout of the shared Keras-trained model,
    /// the nested one of the fixture) has, in Keras layout, the shape of the training-graph parameter of its name;
    /// the Dense layer, named differently from file to file (`dense`, `embedding`), comes last in both.
    func testWeightsMatchTheTrainingGraphsParameters() throws {
        let files = [Self.root.appendingPathComponent("../shared/models/keras-seed/weights.h5"), Self.parity.appendingPathComponent("weights.h5")]
            .filter { FileManager.default.fileExists(atPath: $0.path) }
        guard !files.isEmpty else { throw XCTSkip("no Keras weight file here") }
        let parameters = MobileNetV2Embedder().build(seed: 1).parameters
        for file in files {
            let weights = try KerasWeights(contentsOf: file.path).weights
            XCTAssertEqual(weights.count, parameters.count, file.path)
            let kerasShapes = Dictionary(uniqueKeysWithValues: weights.map { ($0.shortName, $0.shape) })
            for p in parameters where !p.name.hasPrefix("dense/") {
                XCTAssertEqual(kerasShapes[p.name], p.kerasShape, "\(file.lastPathComponent): \(p.name)")
            }
            XCTAssertEqual(weights.suffix(2).map(\.shape), [[1280, 128], [128]], "\(file.lastPathComponent): the Dense layer")
        }
    }

    func testRefusesFilesThatAreNotKerasWeights() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("kizuki-h5-\(UUID().uuidString).h5")
        defer { try? FileManager.default.removeItem(at: tmp) }
        try Data("not hdf5 at all".utf8).write(to: tmp)
        XCTAssertThrowsError(try KerasWeights(contentsOf: tmp.path)) { XCTAssertTrue("\($0)".contains("not an HDF5 file"), "\($0)") }
        XCTAssertThrowsError(try KerasWeights(contentsOf: tmp.path + ".missing")) { XCTAssertTrue("\($0)".contains("no such file"), "\($0)") }
    }
}
