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

    /// A ReLU6 is fused into the BatchNormalization before it only when nothing else reads that output.
    func testReLU6FusedOnlyIntoAnUnsharedBatchNorm() throws {
        for shared in [false, true] {
            let program = try TrainingProgram(graph: graph(shared: shared), batch: 2, threads: 1)
            let ops = program.steps.map(\.op)
            XCTAssertEqual(ops.contains("Clip"), shared, shared ? "the Add still needs the BN output" : "fused")
            XCTAssertEqual(ops.contains("BatchNormalization+Relu6"), !shared)
            // Either way the values keep their names: the ReLU6 output is some step's output.
            let relu = try XCTUnwrap(program.values.firstIndex { $0.name == "r1" })
            XCTAssertTrue(program.steps.contains { $0.output == relu })
        }
    }

    /// With the output L2-normalised, the program's rows are the plain graph's rows divided by their norms (the
    /// backward is checked against finite differences in the gradient table).
    func testL2NormalizedOutputIsTheRawOutputOverItsNorm() throws {
        let plain = try TrainingProgram(graph: graph(shared: false), batch: 3, threads: 1)
        let normalized = try TrainingProgram(graph: graph(shared: false).l2NormalizingOutput(), batch: 3, threads: 1)
        XCTAssertEqual(normalized.steps.last?.op, "LpNormalization")
        let images: [Float] = (0..<48).map { Float(($0 * 7) % 11) / 10 - 0.3 }
        plain.forward(images: images)
        normalized.forward(images: images)
        let raw = Array(plain.output), unit = Array(normalized.output)
        for r in 0..<3 {
            let row = raw[(2 * r)..<(2 * r + 2)]
            let norm = row.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
            XCTAssertGreaterThan(norm, 0)
            for k in 0..<2 { XCTAssertEqual(Double(unit[2 * r + k]), Double(raw[2 * r + k]) / norm, accuracy: 1e-6) }
        }
    }

    /// A zero Pad read only by a Conv becomes the Conv's own padding; one read by anything else stays a step.
    func testPadFoldedIntoItsConv() throws {
        for alsoPooled in [false, true] {
            var model = Model()
            model.opsetImports = [OpsetID(domain: "", version: 13)]
            model.graph.inputs = [ValueInfo(name: "x", type: .tensor(.float, [.symbol("N"), .known(5), .known(5), .known(1)]))]
            model.graph.outputs = [ValueInfo(name: "y", type: .tensor(.float, [.symbol("N"), .known(2)]))]
            model.graph.initializers = [
                Tensor(name: "pads", int64s: [0, 0, 0, 0, 0, 0, 1, 1], dims: [8]),
                Tensor(name: "w", floats: [Float](repeating: 0.1, count: 9), dims: [1, 1, 3, 3]),
                Tensor(name: "k", floats: [1, -1], dims: [1, 2]), Tensor(name: "c", floats: [0, 0], dims: [2]),
            ]
            model.graph.nodes = [
                Node(name: "t", opType: "Transpose", inputs: ["x"], outputs: ["xt"], attributes: [.init(name: "perm", value: .ints([0, 3, 1, 2]))]),
                Node(name: "pad", opType: "Pad", inputs: ["xt", "pads"], outputs: ["xp"]),
                Node(name: "conv", opType: "Conv", inputs: ["xp", "w"], outputs: ["c1"],
                     attributes: [.init(name: "strides", value: .ints([2, 2])), .init(name: "pads", value: .ints([1, 0, 0, 0]))]),
            ]
            var last = "c1"
            if alsoPooled {
                // The padded value is read again (pooled and added to the pooled conv output): the Pad must run.
                model.graph.nodes += [
                    Node(name: "pool0", opType: "GlobalAveragePool", inputs: ["xp"], outputs: ["p0"]),
                    Node(name: "pool1", opType: "GlobalAveragePool", inputs: ["c1"], outputs: ["p1"]),
                    Node(name: "add", opType: "Add", inputs: ["p1", "p0"], outputs: ["a"]),
                ]
                last = "a"
            }
            model.graph.nodes += [
                Node(name: "gap", opType: "GlobalAveragePool", inputs: [last], outputs: ["p"]),
                Node(name: "flat", opType: "Flatten", inputs: ["p"], outputs: ["f"]),
                Node(name: "dense", opType: "Gemm", inputs: ["f", "k", "c"], outputs: ["y"]),
            ]
            let program = try TrainingProgram(graph: try TrainingGraph(model: model, file: "test"), batch: 2, threads: 1)
            XCTAssertEqual(program.steps.contains { $0.op == "Pad" }, alsoPooled)
            let conv = try XCTUnwrap(program.steps.first { $0.op == "Conv" })
            guard case let .conv(s, _) = conv.kind else { return XCTFail("not a conv step") }
            if alsoPooled {
                XCTAssertEqual([s.height, s.padTop, s.padLeft, s.padBottom, s.padRight], [6, 1, 0, 0, 0])
            } else {
                XCTAssertEqual([s.height, s.padTop, s.padLeft, s.padBottom, s.padRight], [5, 1, 0, 1, 1], "the Pad's pads added")
            }
            XCTAssertEqual([s.outHeight, s.outWidth], [3, 2])
        }
    }
}
