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
        var rng = TestRandom(41)  // seeded: whether the clip bites both ends must not depend on luck
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

    func random(_ shape: [Int]) throws -> HostTensor {
        var rng = TestRandom(UInt64(shape.reduce(7, &*)))
        return try HostTensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in Float.random(in: -2...2, using: &rng) })
    }

    /// The NCHW rewrites alone (GraphOptimizer); LayoutNHWCTests covers the NHWC layout that follows them.
    var nchwOnly: SessionOptions { var o = SessionOptions(); o.nhwc = false; return o }

    func testRewritesKeepTheResult() throws {
        for padNode in [false, true] {
            let model = convChain(padNode: padNode)
            var plain = SessionOptions()
            plain.optimize = false
            let reference = try Session(model: model, options: plain)
            let optimized = try Session(model: model, options: nchwOnly)
            // Everything folds into one Conv node.
            XCTAssertEqual(optimized.steps.map(\.node.opType), ["Conv"])
            XCTAssertEqual(reference.steps.count, padNode ? 5 : 4)
            let x = try random([3, 2, 4, 4])
            let want = try reference.run(["x": x])["y"]!.floats
            let got = try optimized.run(["x": x])["y"]!.floats
            XCTAssertTrue(want.contains { $0 == 0 } && want.contains { $0 == 6 }, "the clip should bite at both ends")
            for (g, w) in zip(got, want) { XCTAssertEqual(g, w, accuracy: 1e-5 + 1e-5 * abs(w)) }
        }
    }

    /// x → Conv (no bias, as Kizuki's training form) → BatchNormalization → Clip(0, 6): from opset 9 the BN folds into
    /// the Conv's weights and bias (the rest into its epilogue) with the BN kernel's result; at opset 8 it stays a node.
    func testBatchNormalizationFoldsIntoTheConvBeforeIt() throws {
        for opset: Int64 in [13, 8] {
            var m = convChain()
            m.opsetImports = [OpsetID(domain: "", version: opset)]
            m.graph.initializers += [
                Tensor(name: "gamma", floats: [1.5, -0.7, 0.9], dims: [3]), Tensor(name: "beta", floats: [0.2, 3, -0.4], dims: [3]),
                Tensor(name: "mean", floats: [0.3, -1, 2], dims: [3]), Tensor(name: "var", floats: [0.5, 2, 0.01], dims: [3]),
            ]
            m.graph.nodes[0].inputs = ["x", "w"]
            m.graph.nodes = [m.graph.nodes[0],
                             Node(name: "bn", opType: "BatchNormalization", inputs: ["c", "gamma", "beta", "mean", "var"], outputs: ["n"],
                                  attributes: [Attribute(name: "epsilon", value: .float(1e-3))]),
                             Node(name: "clip", opType: "Clip", inputs: ["n", "lo", "hi"], outputs: ["y"])]
            if opset < 11 {  // Clip takes its bounds as inputs from opset 11: end at the BN instead
                m.graph.nodes.removeLast()
                m.graph.nodes[1].outputs = ["y"]
            }
            var plain = SessionOptions()
            plain.optimize = false
            let reference = try Session(model: m, options: plain)
            let optimized = try Session(model: m, options: nchwOnly)
            XCTAssertEqual(optimized.steps.map(\.node.opType), opset >= 9 ? ["Conv"] : ["Conv", "BatchNormalization"], "opset \(opset)")
            let x = try random([3, 2, 4, 4])
            let want = try reference.run(["x": x])["y"]!.floats
            let got = try optimized.run(["x": x])["y"]!.floats
            if opset >= 11 { XCTAssertTrue(want.contains { $0 == 0 } && want.contains { $0 == 6 }, "the clip should bite at both ends") }
            for (g, w) in zip(got, want) { XCTAssertEqual(g, w, accuracy: 1e-5 + 1e-5 * abs(w)) }
        }
    }

    func testRewritesSkipSharedIntermediates() throws {
        var model = convChain()
        // Conv's output is also a graph output: nothing may be folded into it.
        model.graph.outputs.append(ValueInfo(name: "c", type: nil))
        let optimized = try Session(model: model, options: nchwOnly)
        XCTAssertEqual(optimized.steps.map(\.node.opType), ["Conv", "Mul", "Add", "Clip"])
    }

    func testInputErrorsNameTheInputAndExpectedShape() throws {
        let session = try Session(model: convChain())
        func message(_ feeds: [String: HostTensor]) -> String {
            do { _ = try session.run(feeds); return "no error" } catch { return "\(error)" }
        }
        XCTAssertTrue(message(["pixels": try random([1, 2, 4, 4])]).contains("unknown input 'pixels'"))
        XCTAssertTrue(message([:]).contains("missing input 'x' float32[N,2,4,4]"))
        XCTAssertTrue(message(["x": try random([2, 4, 4])]).contains("rank 3"))
        XCTAssertTrue(message(["x": try random([1, 3, 4, 4])]).contains("axis 1 must be 2"))
        XCTAssertTrue(message(["x": try HostTensor(shape: [1, 2, 4, 4], int64s: [Int64](repeating: 0, count: 32))]).contains("element type int64, expected float32"))
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
        var options = SessionOptions()
        options.batchLanes = false  // plans of this session, not of its lanes
        let session = try Session(model: convChain(), options: options)
        _ = try session.run(["x": random([2, 2, 4, 4])])
        _ = try session.run(["x": random([2, 2, 4, 4])])
        _ = try session.run(["x": random([5, 2, 4, 4])])
        XCTAssertEqual(session.planCount, 2)
        // Values whose lifetimes do not overlap share offsets.
        let (offsets, total) = try Plan.assignOffsets([(100, 0, 1, "a"), (100, 2, 3, "b"), (50, 1, 2, "c")])
        XCTAssertEqual(offsets["a"], offsets["b"])
        XCTAssertNotEqual(offsets["a"], offsets["c"])
        XCTAssertEqual(total, 128 + 64)
    }

    // MARK: - Free dims

    func oneRelu(_ inputs: [(String, [ShapeDim])]) -> Model {
        var m = Model()
        m.opsetImports = [OpsetID(domain: "", version: 13)]
        m.graph.inputs = inputs.map { ValueInfo(name: $0.0, type: .tensor(.float, $0.1)) }
        m.graph.nodes = inputs.map { Node(opType: "Relu", inputs: [$0.0], outputs: ["\($0.0)_y"]) }
        m.graph.outputs = inputs.map { ValueInfo(name: "\($0.0)_y", type: nil) }
        return m
    }

    /// A PaddleOCR classifier declares x: [-1,3,?,?]; each free axis takes any size on its own.
    func testFreeDimsAreEachUnknown() throws {
        let paddle = try Session(model: oneRelu([("x", [.known(-1), .known(3), .symbol("?"), .symbol("?")])]))
        XCTAssertEqual(try paddle.run(["x": random([2, 3, 48, 192])])["x_y"]?.shape, [2, 3, 48, 192])
        XCTAssertThrowsError(try paddle.run(["x": random([2, 4, 48, 192])])) { XCTAssertTrue("\($0)".contains("axis 1 must be 3"), "\($0)") }
        let unnamed = try Session(model: oneRelu([("a", [.symbol(""), .unknown]), ("b", [.symbol(""), .symbol("?")])]))
        XCTAssertNoThrow(try unnamed.run(["a": random([5, 7]), "b": random([2, 9])]))
        // Real names still tie axes together, across inputs.
        let named = try Session(model: oneRelu([("a", [.symbol("N")]), ("b", [.symbol("N")])]))
        XCTAssertNoThrow(try named.run(["a": random([3]), "b": random([3])]))
        XCTAssertThrowsError(try named.run(["a": random([2]), "b": random([3])])) { XCTAssertTrue("\($0)".contains("'N' is 2"), "\($0)") }
    }

    // MARK: - Rewrites on malformed nodes

    /// Graph rewrites look at input and output counts first: a malformed node is not rewritten (no trap),
    /// and is left to its kernel and the planner.
    func testRewritesLeaveMalformedNodesToTheirKernels() throws {
        func model(_ nodes: [Node]) -> Model {
            var m = Model()
            m.opsetImports = [OpsetID(domain: "", version: 13)]
            m.graph.inputs = [ValueInfo(name: "x", type: nil)]
            m.graph.outputs = [ValueInfo(name: "y", type: nil)]
            m.graph.initializers = [
                Tensor(name: "w", floats: [Float](repeating: 0.5, count: 6), dims: [3, 2, 1, 1]),
                Tensor(name: "wempty", floats: [], dims: [0, 2, 1, 1]),
                Tensor(name: "s", floats: [1, 2, 3], dims: [3, 1, 1]),
                Tensor(name: "pads", int64s: [0, 0, 1, 1, 0, 0, 1, 1], dims: [8]),
                Tensor(name: "oddpads", int64s: [0, 0, 1, 1, 0, 0, 1], dims: [7]),
                Tensor(name: "six", floats: [6], dims: []),
            ]
            m.graph.nodes = nodes
            return m
        }
        func conv(_ inputs: [String] = ["x", "w"], _ outputs: [String] = ["c"]) -> Node {
            Node(name: "conv", opType: "Conv", inputs: inputs, outputs: outputs)
        }
        let cases: [(String, [Node])] = [
            ("Conv without outputs", [conv(["x", "w"], []), Node(name: "mul", opType: "Mul", inputs: ["c", "s"], outputs: ["y"])]),
            ("Conv with four inputs", [conv(["x", "w", "", "s"]), Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["y"])]),
            ("Mul with one input", [conv(), Node(name: "mul", opType: "Mul", inputs: ["c"], outputs: ["y"])]),
            ("Add with three inputs", [conv(), Node(name: "add", opType: "Add", inputs: ["c", "s", "s"], outputs: ["y"])]),
            ("Add without outputs", [conv(), Node(name: "add", opType: "Add", inputs: ["c", "s"], outputs: []),
                                     Node(name: "id", opType: "Identity", inputs: ["c"], outputs: ["y"])]),
            ("Clip without outputs", [conv(), Node(name: "clip", opType: "Clip", inputs: ["c", "", "six"], outputs: [])]),
            ("Relu with two inputs", [conv(), Node(name: "relu", opType: "Relu", inputs: ["c", "six"], outputs: ["y"])]),
            ("Pad without inputs", [Node(name: "pad", opType: "Pad", inputs: [], outputs: ["p"]), conv(["p", "w"], ["y"])]),
            ("Pad without outputs", [Node(name: "pad", opType: "Pad", inputs: ["x", "pads"], outputs: []), conv(["p", "w"], ["y"])]),
            ("Pad with an odd pads count", [Node(name: "pad", opType: "Pad", inputs: ["x", "oddpads"], outputs: ["p"]), conv(["p", "w"], ["y"])]),
            ("Conv with no output channels then Mul", [conv(["x", "wempty"]), Node(name: "mul", opType: "Mul", inputs: ["c", "s"], outputs: ["y"])]),
        ]
        for (name, nodes) in cases {
            // Nothing is rewritten (the optimiser used to index the missing input or output and trap)...
            let session = try Session(model: model(nodes), options: nchwOnly)
            XCTAssertEqual(session.steps.count, nodes.count, name)
            // ...and planning reports the node (or, where the kernel tolerates the extra input, runs).
            do { _ = try session.run(["x": random([1, 2, 4, 4])]) } catch {
                XCTAssertTrue(error is EngineError, "\(name): \(error)")
            }
        }
    }

    /// Which Clip / Relu nodes the optimiser folds into a Conv, and that folding keeps the result.
    func testActivationFusionReadsBoundsFromConstantsOnly() throws {
        func model(_ act: Node, opset: Int = 13) -> Model {
            var m = Model()
            m.opsetImports = [OpsetID(domain: "", version: Int64(opset))]
            m.graph.inputs = [ValueInfo(name: "x", type: nil), ValueInfo(name: "computed", type: nil)]
            m.graph.outputs = [ValueInfo(name: "y", type: nil)]
            m.graph.initializers = [
                Tensor(name: "w", floats: [1, -2, 3, -4, 0.5, 6], dims: [3, 2, 1, 1]),
                Tensor(name: "lo", floats: [-1], dims: []), Tensor(name: "hi", floats: [2], dims: []),
            ]
            m.graph.nodes = [Node(opType: "Conv", inputs: ["x", "w"], outputs: ["c"]), act]
            return m
        }
        let cases: [(Node, Int, Bool)] = [
            (Node(opType: "Relu", inputs: ["c"], outputs: ["y"]), 13, true),
            (Node(opType: "Clip", inputs: ["c", "lo", "hi"], outputs: ["y"]), 13, true),
            (Node(opType: "Clip", inputs: ["c", "", "hi"], outputs: ["y"]), 13, true),
            (Node(opType: "Clip", inputs: ["c", "lo"], outputs: ["y"]), 13, true),
            (Node(opType: "Clip", inputs: ["c"], outputs: ["y"], attributes: [Attribute(name: "min", value: .float(-1)),
                                                                             Attribute(name: "max", value: .float(2))]), 6, true),
            (Node(opType: "Clip", inputs: ["c", "computed"], outputs: ["y"]), 13, false),
        ]
        var plain = SessionOptions()
        plain.optimize = false
        let feeds = ["x": try random([2, 2, 3, 3]), "computed": try HostTensor(shape: [], floats: [0.5])]
        for (act, opset, fused) in cases {
            let optimized = try Session(model: model(act, opset: opset), options: nchwOnly)
            XCTAssertEqual(optimized.steps.count, fused ? 1 : 2, "\(act.opType) \(act.inputs) opset \(opset)")
            let want = try Session(model: model(act, opset: opset), options: plain).run(feeds)["y"]!.floats
            XCTAssertEqual(try optimized.run(feeds)["y"]!.floats, want, "\(act.opType) \(act.inputs) opset \(opset)")
        }
    }

    // MARK: - Defects found reading the code

    /// Outputs are matched to the node's output names by position: a named output the kernel does not
    /// make is reported as such (not as a graph output "never produced").
    func testNamedOutputBeyondTheKernelsIsReported() throws {
        var m = Model()
        m.opsetImports = [OpsetID(domain: "", version: 13)]
        m.graph.inputs = [ValueInfo(name: "x", type: nil)]
        m.graph.outputs = [ValueInfo(name: "y", type: nil)]
        m.graph.nodes = [Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["", "y"])]
        XCTAssertThrowsError(try Session(model: m).run(["x": random([2])])) { error in
            XCTAssertEqual((error as? EngineError)?.kind, .invalidModel)
            XCTAssertTrue("\(error)".contains("'relu' (Relu) declares output 1 ('y')"), "\(error)")
        }
    }

    /// With --check-finite, a NaN already in an input is named as the input's, not the first node's.
    func testCheckFiniteNamesANonFiniteInput() throws {
        var options = SessionOptions()
        options.checkFinite = true
        let session = try Session(model: oneRelu([("x", [.known(3)])]), options: options)
        XCTAssertThrowsError(try session.run(["x": HostTensor(shape: [3], floats: [1, .nan, 2])])) { error in
            XCTAssertEqual((error as? EngineError)?.kind, .nonFinite)
            XCTAssertTrue("\(error)".contains("input 'x'") && "\(error)".contains("flat index 1"), "\(error)")
            XCTAssertFalse("\(error)".contains("Relu"), "\(error)")
        }
    }

    /// BatchNormalization without its planned scratch fails like Conv does, instead of leaving Y unwritten.
    func testBatchNormWithoutScratchThrows() throws {
        let kernel = try BatchNormKernel(NodeInfo(node: Node(opType: "BatchNormalization", inputs: ["x", "s", "b", "m", "v"], outputs: ["y"]),
                                                  opset: 15))
        let x = try random([1, 2, 3]), y = try HostTensor(dtype: .float, shape: [1, 2, 3]), p = try random([2])
        XCTAssertThrowsError(try kernel.run(inputs: [x.ref, p.ref, p.ref, p.ref, p.ref], outputs: [y.ref],
                                            context: RunContext(threads: 1, scratch: nil)))
    }

    /// Convolution scratch has one slot per session thread, not per core of the machine.
    func testConvScratchFollowsTheThreadCount() throws {
        let info = NodeInfo(node: Node(opType: "Conv", inputs: ["x", "w"], outputs: ["y"],
                                       attributes: [Attribute(name: "pads", value: .ints([1, 1, 1, 1]))]), opset: 13)
        let window = try WindowAttributes(info)
        // 3×3 im2col over 4 images: columns of Cg·kvol × oS = 2·9 × 5·5 floats, padded to 16.
        let columns = (2 * 9 * 25 + 15) / 16 * 16
        for threads in [1, 2, 3, 7] {
            let g = try ConvGeometry(x: [4, 2, 5, 5], w: [3, 2, 3, 3], attributes: window, group: 1, threads: threads)
            XCTAssertEqual(g.path, .im2col)
            XCTAssertEqual(g.scratchFloats, min(threads, 4) * columns, "threads \(threads)")
        }
    }

    /// Convolution geometry is made when a shape is planned; later runs of that shape only look it up.
    func testConvGeometryIsMadeOncePerPlannedShape() throws {
        var options = nchwOnly
        options.batchLanes = false  // the geometry of this session's kernel, not of its lanes'
        options.microBatch = nil  // nor of a one-image plan sizing chunks
        let session = try Session(model: convChain(), options: options)
        let conv = try XCTUnwrap(session.steps.first?.kernel as? ConvKernel)
        for _ in 0..<3 { _ = try session.run(["x": random([2, 2, 4, 4])]) }
        XCTAssertEqual(conv.geometries.map(\.x), [[2, 2, 4, 4]])
        _ = try session.run(["x": random([5, 2, 4, 4])])
        _ = try session.run(["x": random([2, 2, 4, 4])])
        XCTAssertEqual(conv.geometries.map(\.x), [[2, 2, 4, 4], [5, 2, 4, 4]])
    }

    /// A node writing a graph input (MaxPool -> [y, x], found by the fuzzer) wrote past the caller's tensor;
    /// a value with two producers would be written into a block planned for the other. Both are refused.
    func testEveryValueHasOneProducer() throws {
        var model = convChain()
        model.graph.nodes.append(Node(name: "pool", opType: "MaxPool", inputs: ["y"], outputs: ["z", "x"],
                                      attributes: [Attribute(name: "kernel_shape", value: .ints([2, 2]))]))
        XCTAssertThrowsError(try Session(model: model)) { XCTAssertTrue("\($0)".contains("(MaxPool) writes 'x', which is a graph input"), "\($0)") }
        XCTAssertThrowsError(try Model(serialized: model.serialized())) { XCTAssertTrue("\($0)".contains("'x' is produced twice"), "\($0)") }

        var twice = convChain()
        twice.graph.nodes.append(Node(name: "again", opType: "Relu", inputs: ["x"], outputs: ["m"]))
        XCTAssertThrowsError(try Session(model: twice)) { XCTAssertTrue("\($0)".contains("another node already produces"), "\($0)") }
    }
}
