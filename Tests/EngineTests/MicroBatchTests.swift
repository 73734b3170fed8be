import Foundation
@testable import Engine
import OnnxIO
import XCTest

/// Large batches run in chunks (MicroBatch.swift) give what the whole batch gives, and only graphs whose images
/// are independent are chunked.
final class MicroBatchTests: XCTestCase {
    static let seed = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("models/keras-seed/model.onnx")

    /// The reference embedder at batch 37 (chunks of 13, 12, 12): the same embeddings as one batch of 37.
    func testChunkedBatchMatchesTheWholeBatch() throws {
        let model = try Model(contentsOf: Self.seed)
        var random = TestRandom(3)
        let x = try HostTensor(shape: [37, 28, 28, 1], floats: random.floats(37 * 784).map { ($0 + 1) / 2 })
        var whole = SessionOptions(), chunked = SessionOptions()
        whole.microBatch = nil
        chunked.microBatch = 16
        chunked.chunkBytes = 24 << 20  // at least 16 images' arena: the micro-batch size decides, not the default tuning
        chunked.threads = 1  // more threads run batch lanes (BatchLanesTests)
        let session = try Session(model: model, options: chunked)
        XCTAssertTrue(session.batchSeparable)
        XCTAssertEqual(session.microBatches(["input": x]), [12, 12, 13])
        let want = try Session(model: model, options: whole).run(["input": x])["embedding"]!
        let got = try session.run(["input": x])["embedding"]!
        XCTAssertEqual(got.shape, [37, 128])
        let scale = want.floats.map(abs).max()!
        XCTAssertLessThanOrEqual(zip(got.floats, want.floats).map { abs($0 - $1) }.max()!, 1e-5 * scale)
        // Small batches run whole.
        XCTAssertNil(session.microBatches(["input": try HostTensor(shape: [20, 28, 28, 1], floats: [Float](repeating: 0, count: 20 * 784))]))
    }

    /// Graphs that mix images are never chunked, nor graphs that do not convolve or fix their batch size.
    func testGraphsThatMixImagesRunWhole() throws {
        // Each graph also convolves x (into an unused z): only image networks are chunked.
        func graph(_ nodes: [Node], _ initializers: [Tensor] = [], conv: Bool = true, input: ValueType? = nil) -> Graph {
            var g = Graph()
            g.inputs = [ValueInfo(name: "x", type: input)]
            g.outputs = [ValueInfo(name: "y", type: nil)]
            g.nodes = nodes + (conv ? [Node(opType: "Conv", inputs: ["x", "w"], outputs: ["z"])] : [])
            g.initializers = initializers + [Tensor(name: "w", floats: [1], dims: [1, 1, 1, 1])]
            return g
        }
        let mixing: [(String, Graph)] = [
            ("Reshape to a fixed batch", graph([Node(opType: "Reshape", inputs: ["x", "s"], outputs: ["y"])], [Tensor(name: "s", int64s: [4, -1], dims: [2])])),
            ("ReduceMean over the batch", graph([Node(opType: "ReduceMean", inputs: ["x"], outputs: ["y"])])),
            ("Transpose moving the batch", graph([Node(opType: "Transpose", inputs: ["x"], outputs: ["y"], attributes: [Attribute(name: "perm", value: .ints([1, 0]))])])),
            ("Add of a per-image constant", graph([Node(opType: "Add", inputs: ["x", "c"], outputs: ["y"])], [Tensor(name: "c", floats: [Float](repeating: 1, count: 8), dims: [4, 2])])),
            ("Pad of the batch axis", graph([Node(opType: "Pad", inputs: ["x", "p"], outputs: ["y"])], [Tensor(name: "p", int64s: [1, 0, 0, 0, 0, 0, 0, 0], dims: [8])])),
            ("ReduceMean over axis 0 among others", graph([Node(opType: "ReduceMean", inputs: ["x"], outputs: ["y"], attributes: [Attribute(name: "axes", value: .ints([0, 2]))])])),
            ("ReduceMean over a negative axis", graph([Node(opType: "ReduceMean", inputs: ["x"], outputs: ["y"], attributes: [Attribute(name: "axes", value: .ints([-1]))])])),
        ]
        for (name, g) in mixing { XCTAssertFalse(Session.isBatchSeparable(g), name) }
        let relu = [Node(opType: "Relu", inputs: ["x"], outputs: ["y"])]
        XCTAssertTrue(Session.isBatchSeparable(graph(relu)))
        // Spatial pads and reductions (Keras's ZeroPadding2D, squeeze-and-excitation means) keep images apart.
        XCTAssertTrue(Session.isBatchSeparable(graph([Node(opType: "Pad", inputs: ["x", "p"], outputs: ["y"])], [Tensor(name: "p", int64s: [0, 1, 1, 0, 0, 1, 1, 0], dims: [8])])))
        XCTAssertTrue(Session.isBatchSeparable(graph([Node(opType: "ReduceMean", inputs: ["x"], outputs: ["y"], attributes: [Attribute(name: "axes", value: .ints([1, 2]))])])))
        XCTAssertTrue(Session.isBatchSeparable(graph(relu, input: .tensor(.float, [.symbol("N"), .known(1), .known(5), .known(5)]))))
        XCTAssertFalse(Session.isBatchSeparable(graph(relu, conv: false)), "no convolution")
        XCTAssertFalse(Session.isBatchSeparable(graph(relu, input: .tensor(.float, [.known(8), .known(1), .known(5), .known(5)]))), "batch fixed")
    }
}
