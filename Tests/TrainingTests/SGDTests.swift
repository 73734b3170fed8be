import Foundation
import OnnxIO
import XCTest
@testable import Training

/// SGD with momentum in Keras's form and the learning-rate schedule, against a float64 computation.
final class SGDTests: XCTestCase {
    func testMomentumUpdateIsKerasForm() throws {
        // A graph with one Dense layer: its kernel and bias are the trainable parameters.
        var model = Model()
        model.opsetImports = [OpsetID(domain: "", version: 13)]
        model.graph.inputs = [ValueInfo(name: "x", type: .tensor(.float, [.known(2), .known(3)]))]
        model.graph.outputs = [ValueInfo(name: "y", type: .tensor(.float, [.known(2), .known(2)]))]
        model.graph.initializers = [Tensor(name: "w", floats: [0.5, -1, 2, 0.25, 1.5, -0.75], dims: [3, 2]),
                                    Tensor(name: "b", floats: [0.1, -0.2], dims: [2])]
        model.graph.nodes = [Node(name: "dense", opType: "Gemm", inputs: ["x", "w", "b"], outputs: ["y"])]
        let graph = try TrainingGraph(model: model, file: "dense")
        XCTAssertEqual(graph.parameters.map(\.name), ["w", "b"])
        let store = try ParameterStore(infos: graph.parameters, model: model)
        let sgd = SGD(parameters: store, momentum: 0.9)
        var w = [0.5, -1, 2, 0.25, 1.5, -0.75], v = [Double](repeating: 0, count: 6)
        let lr = 0.01
        for step in 0..<4 {
            let g = (0..<6).map { Double(($0 * 7 + step * 3) % 5) - 2.0 }
            for (k, value) in g.enumerated() { store.gradients[0][k] = Float(value) }
            store.gradients[1][0] = 1; store.gradients[1][1] = -1
            sgd.step(store, lr: Float(lr))
            for k in 0..<6 { v[k] = 0.9 * v[k] - lr * g[k]; w[k] += v[k] }
            let got = store.value("w")!.map(Double.init)
            for k in 0..<6 { XCTAssertEqual(got[k], w[k], accuracy: 1e-6, "step \(step + 1), w[\(k)]") }
        }
        // Restoring the saved velocities continues identically.
        let other = try ParameterStore(infos: graph.parameters, model: store.write(into: model))
        let resumed = SGD(parameters: other, momentum: 0.9)
        try resumed.restore(sgd.state)
        XCTAssertEqual(resumed.state, sgd.state)
        XCTAssertThrowsError(try resumed.restore([1, 2, 3]))
    }

    func testScheduleDividesByTenAtEachDrop() {
        let s = LearningRateSchedule(base: 1e-3, drops: [25, 45])
        XCTAssertEqual(s.rate(epoch: 0), 1e-3)
        XCTAssertEqual(s.rate(epoch: 24), 1e-3)
        XCTAssertEqual(Double(s.rate(epoch: 25)), 1e-4, accuracy: 1e-10)
        XCTAssertEqual(Double(s.rate(epoch: 44)), 1e-4, accuracy: 1e-10)
        XCTAssertEqual(Double(s.rate(epoch: 45)), 1e-5, accuracy: 1e-11)
        XCTAssertEqual(Double(s.rate(epoch: 49)), 1e-5, accuracy: 1e-11)
    }
}
