import OnnxIO
import XCTest
@testable import Training

/// Decisions the program compiler makes about memory.
final class ProgramCompilerTests: XCTestCase {
    /// input → Conv → BN → Clip(0,6), with the BN output read again by an Add when `shared`.
    func graph(shared: Bool) throws -> TrainingGraph {
        var model = Model()
        model.opsetImports = [OpsetID(domain: "", version: 13)]
        model.graph.inputs = [ValueInfo(name: "x", type: .tensor(.float, [.symbol("N"), .known(4), .known(4), .known(1)]))]
        model.graph.outputs = [ValueInfo(name: "y", type: .tensor(.float, [.symbol("N"), .known(2)]))]
        model.graph.initializers = [
            Tensor(name: "w", floats: [0.5, -1], dims: [2, 1, 1, 1]),
            Tensor(name: "g", floats: [1, 1], dims: [2]), Tensor(name: "b", floats: [0, 0], dims: [2]),
            Tensor(name: "m", floats: [0, 0], dims: [2]), Tensor(name: "v", floats: [1, 1], dims: [2]),
            Tensor(name: "lo", floats: [0], dims: []), Tensor(name: "hi", floats: [6], dims: []),
            Tensor(name: "k", floats: [1, 0, 0, 1], dims: [2, 2]), Tensor(name: "c", floats: [0, 0], dims: [2]),
        ]
        model.graph.nodes = [
            Node(name: "t", opType: "Transpose", inputs: ["x"], outputs: ["xt"], attributes: [.init(name: "perm", value: .ints([0, 3, 1, 2]))]),
            Node(name: "conv", opType: "Conv", inputs: ["xt", "w"], outputs: ["c1"]),
            Node(name: "bn", opType: "BatchNormalization", inputs: ["c1", "g", "b", "m", "v"], outputs: ["n1"]),
            Node(name: "relu", opType: "Clip", inputs: ["n1", "lo", "hi"], outputs: ["r1"]),
        ]
        var last = "r1"
        if shared {
            model.graph.nodes.append(Node(name: "add", opType: "Add", inputs: ["n1", "r1"], outputs: ["a1"]))
            last = "a1"
        }
        model.graph.nodes += [
            Node(name: "gap", opType: "GlobalAveragePool", inputs: [last], outputs: ["p"]),
            Node(name: "flat", opType: "Flatten", inputs: ["p"], outputs: ["f"]),
            Node(name: "dense", opType: "Gemm", inputs: ["f", "k", "c"], outputs: ["y"]),
        ]
        return try TrainingGraph(model: model, file: "test")
    }

    /// ReLU6 runs in place over a BatchNormalization output only when nothing else reads that output.
    func testReLU6InPlaceOnlyOverAnUnsharedBatchNormOutput() throws {
        for shared in [false, true] {
            let program = try TrainingProgram(graph: graph(shared: shared), batch: 2, threads: 1)
            let relu = try XCTUnwrap(program.values.firstIndex { $0.name == "r1" })
            let bn = try XCTUnwrap(program.values.firstIndex { $0.name == "n1" })
            XCTAssertEqual(program.values[relu].aliasOf, shared ? nil : bn, shared ? "the Add still needs the BN output" : "in place")
        }
    }
}
