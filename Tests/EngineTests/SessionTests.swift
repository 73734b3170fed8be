import Foundation
import XCTest
@testable import Engine
import OnnxIO

/// Run-time errors, plan reuse and graph rewrites of `Session`.
final class SessionTests: XCTestCase {
    /// x:[N,2,4,4] → Conv(3x3, pad 1, 3 out) → Mul(per-channel) → Add(per-channel) → Clip(0, 6) → y
    func convChain(padNode: Bool = false) -> Model {
        var m = Model()
        m.opsetImports = [OpsetID(domain: "", version: 13)]
        m.graph.inputs = [ValueInfo(name: "x", type: .tensor(.float, [.symbol("N"), .known(2), .known(4), .known(4)]))]
        m.graph.outputs = [ValueInfo(name: "y", type: .tensor(.float, nil))]
        var rng = SystemRandomNumberGenerator()
        m.graph.initializers = [
            Tensor(name: "w", floats: (0..<54).map { _ in Float.random(in: -1...1, using: &rng) }, dims: [3, 2, 3, 3]),
            Tensor(name: "b", floats: [0.1, -0.2, 0.3], dims: [3]),
            Tensor(name: "scale", floats: [2, -1, 0.5], dims: [3, 1, 1]),
            Tensor(name: "shift", floats: [1, 2, -3], dims: [1, 3, 1, 1]),
            Tensor(name: "lo", floats: [0], dims: []),
            Tensor(name: "hi", floats: [6], dims: []),
            Tensor(name: "pads", int64s: [0, 0, 1, 1, 0, 0, 1, 1], dims: [8]),
        ]
        var conv = Node(name: "conv", opType: "Conv", inputs: [padNode ? "p" : "x", "w", "b"], outputs: ["c"],
                        attributes: [Attribute(name: "kernel_shape", value: .ints([3, 3]))])
        if !padNode { conv.attributes.append(Attribute(name: "pads", value: .ints([1, 1, 1, 1]))) }
        m.graph.nodes = (padNode ? [Node(name: "pad", opType: "Pad", inputs: ["x", "pads"], outputs: ["p"])] : []) + [
            conv,
            Node(name: "mul", opType: "Mul", inputs: ["c", "scale"], outputs: ["m"]),
            Node(name: "add", opType: "Add", inputs: ["shift", "m"], outputs: ["a"]),
            Node(name: "clip", opType: "Clip", inputs: ["a", "lo", "hi"], outputs: ["y"]),
        ]
        return m
    }

    func random(_ shape: [Int]) -> HostTensor {
        var rng = SystemRandomNumberGenerator()
        return HostTensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in Float.random(in: -2...2, using: &rng) })
    }

    func testRewritesKeepTheResult() throws {
        for padNode in [false, true] {
            let model = convChain(padNode: padNode)
            var plain = SessionOptions()
            plain.optimize = false
            let reference = try Session(model: model, options: plain)
            let optimized = try Session(model: model)
            // Everything folds into one Conv node.
            XCTAssertEqual(optimized.steps.map(\.node.opType), ["Conv"])
            XCTAssertEqual(reference.steps.count, padNode ? 5 : 4)
            let x = random([3, 2, 4, 4])
            let want = try reference.run(["x": x])["y"]!.floats
            let got = try optimized.run(["x": x])["y"]!.floats
            XCTAssertTrue(want.contains { $0 == 0 } && want.contains { $0 == 6 }, "the clip should bite at both ends")
            for (g, w) in zip(got, want) { XCTAssertEqual(g, w, accuracy: 1e-5 + 1e-5 * abs(w)) }
        }
    }

    func testRewritesSkipSharedIntermediates() throws {
        var model = convChain()
        // Conv's output is also a graph output: nothing may be folded into it.
        model.graph.outputs.append(ValueInfo(name: "c", type: nil))
        let optimized = try Session(model: model)
        XCTAssertEqual(optimized.steps.map(\.node.opType), ["Conv", "Mul", "Add", "Clip"])
    }

    func testInputErrorsNameTheInputAndExpectedShape() throws {
        let session = try Session(model: convChain())
        func message(_ feeds: [String: HostTensor]) -> String {
            do { _ = try session.run(feeds); return "no error" } catch { return "\(error)" }
        }
        XCTAssertTrue(message(["pixels": random([1, 2, 4, 4])]).contains("unknown input 'pixels'"))
        XCTAssertTrue(message([:]).contains("missing input 'x' float32[N,2,4,4]"))
        XCTAssertTrue(message(["x": random([2, 4, 4])]).contains("rank 3"))
        XCTAssertTrue(message(["x": random([1, 3, 4, 4])]).contains("axis 1 must be 2"))
        XCTAssertTrue(message(["x": HostTensor(shape: [1, 2, 4, 4], int64s: [Int64](repeating: 0, count: 32))]).contains("element type int64, expected float32"))
    }

    func testNodeFailureNamesNodeOpAndShapes() throws {
        var m = Model()
        m.opsetImports = [OpsetID(domain: "", version: 13)]
        m.graph.inputs = [ValueInfo(name: "a", type: .tensor(.float, nil)), ValueInfo(name: "b", type: .tensor(.float, nil))]
        m.graph.outputs = [ValueInfo(name: "y", type: .tensor(.float, nil))]
        m.graph.nodes = [Node(name: "mm", opType: "MatMul", inputs: ["a", "b"], outputs: ["y"])]
        let session = try Session(model: m)
        XCTAssertThrowsError(try session.run(["a": random([2, 3]), "b": random([4, 5])])) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("'mm' (MatMul)") && text.contains("float32[2, 3]") && text.contains("float32[4, 5]"), text)
        }
    }

    func testCheckFiniteNamesTheFirstNode() throws {
        var m = Model()
        m.opsetImports = [OpsetID(domain: "", version: 13)]
        m.graph.inputs = [ValueInfo(name: "x", type: .tensor(.float, [.known(3)]))]
        m.graph.outputs = [ValueInfo(name: "y", type: .tensor(.float, [.known(3)]))]
        m.graph.nodes = [
            Node(name: "root", opType: "Sqrt", inputs: ["x"], outputs: ["r"]),
            Node(name: "relu", opType: "Relu", inputs: ["r"], outputs: ["y"]),
        ]
        var options = SessionOptions()
        options.checkFinite = true
        let session = try Session(model: m, options: options)
        XCTAssertNoThrow(try session.run(["x": HostTensor(shape: [3], floats: [1, 4, 9])]))
        XCTAssertThrowsError(try session.run(["x": HostTensor(shape: [3], floats: [1, -4, 9])])) { error in
            XCTAssertTrue("\(error)".contains("'root' (Sqrt)") && "\(error)".contains("flat index 1"), "\(error)")
        }
    }

    func testPlansAreReusedPerShapeAndShareMemory() throws {
        let session = try Session(model: convChain())
        _ = try session.run(["x": random([2, 2, 4, 4])])
        _ = try session.run(["x": random([2, 2, 4, 4])])
        _ = try session.run(["x": random([5, 2, 4, 4])])
        XCTAssertEqual(session.planCount, 2)
        // Values whose lifetimes do not overlap share offsets.
        let (offsets, total) = Plan.assignOffsets([(100, 0, 1, "a"), (100, 2, 3, "b"), (50, 1, 2, "c")])
        XCTAssertEqual(offsets["a"], offsets["b"])
        XCTAssertNotEqual(offsets["a"], offsets["c"])
        XCTAssertEqual(total, 128 + 64)
    }
}
