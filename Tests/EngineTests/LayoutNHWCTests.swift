import Foundation
@testable import Engine
import OnnxIO
import XCTest

/// The NHWC rewrite (LayoutNHWC.swift) keeps every graph's meaning: each small network below gives, in NHWC,
/// what the NCHW engine gives (whose Conv is checked against a naive reference in ConvTests), on 1 and 2 threads;
/// and the rewritten graph has Transposes only at its edges, residual Adds and activations fused into convolutions.
final class LayoutNHWCTests: XCTestCase {
    /// A graph under construction: fed input "x", random initializers, named nodes.
    struct Net {
        var graph = Graph()
        var random = TestRandom(11)
        var count = 0

        init(input shape: [Int]) { graph.inputs = [ValueInfo(name: "x", type: nil)]; self.shape = shape }
        let shape: [Int]

        mutating func constant(_ dims: [Int], scale: Float = 0.5) -> String {
            count += 1
            let name = "c\(count)"
            graph.initializers.append(Tensor(name: name, floats: random.floats(dims.reduce(1, *)).map { $0 * scale }, dims: dims))
            return name
        }

        mutating func int64s(_ values: [Int64]) -> String {
            count += 1
            graph.initializers.append(Tensor(name: "c\(count)", int64s: values, dims: [values.count]))
            return "c\(count)"
        }

        mutating func node(_ op: String, _ inputs: [String], _ attributes: [Attribute] = []) -> String {
            count += 1
            let out = "v\(count)"
            graph.nodes.append(Node(name: "n\(count)", opType: op, inputs: inputs, outputs: [out], attributes: attributes))
            return out
        }

        /// Conv with weights [m, c/group, k, k] and (optionally) a bias.
        mutating func conv(_ x: String, c: Int, m: Int, k: Int, stride: Int = 1, pads: [Int] = [0, 0, 0, 0], group: Int = 1,
                           bias: Bool = true) -> String {
            let w = constant([m, c / group, k, k], scale: 1 / Float(k * k * c / group).squareRoot())
            let inputs = bias ? [x, w, constant([m])] : [x, w]
            return node("Conv", inputs, [attr("kernel_shape", [k, k]), attr("strides", [stride, stride]), attr("pads", pads), attr("group", group)])
        }

        mutating func output(_ names: String...) { graph.outputs = names.map { ValueInfo(name: $0, type: nil) } }
    }

    /// Runs `net` with and without the NHWC rewrite and compares every output; returns the rewritten graph.
    @discardableResult
    func check(_ net: Net, file: StaticString = #filePath, line: UInt = #line) throws -> Graph {
        var model = Model()
        model.opsetImports = [OpsetID(domain: "", version: 17)]
        model.graph = net.graph
        var random = TestRandom(5)
        let x = try random.tensor(net.shape)
        var rewritten = Graph()
        for threads in [1, 2] {
            var nchw = SessionOptions(), nhwc = SessionOptions()
            nchw.nhwc = false
            nchw.threads = threads; nhwc.threads = threads
            let want = try Session(model: model, options: nchw).run(["x": x])
            let session = try Session(model: model, options: nhwc)
            rewritten = session.graph
            XCTAssertTrue(rewritten.nodes.contains { $0.opType == "NhwcConv" }, "nothing was rewritten", file: file, line: line)
            let got = try session.run(["x": x])
            for o in net.graph.outputs {
                let g = got[o.name]!, w = want[o.name]!
                XCTAssertEqual(g.shape, w.shape, o.name, file: file, line: line)
                let scale = w.floats.map(abs).max() ?? 0
                let err = zip(g.floats, w.floats).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(err, 1e-5 * max(scale, 1), "\(o.name), \(threads) thread(s)", file: file, line: line)
            }
        }
        return rewritten
    }

    func count(_ op: String, _ g: Graph) -> Int { g.nodes.filter { $0.opType == op }.count }

    /// An inverted-residual block: expand, depthwise, project, residual Add, as MobileNetV2 has them.
    func testInvertedResidualBlock() throws {
        var n = Net(input: [2, 8, 9, 7])
        let h = n.conv("x", c: 8, m: 8, k: 3, pads: [1, 1, 1, 1])
        var y = n.node("Clip", [n.conv(h, c: 8, m: 24, k: 1), n.constant([], scale: 0), n.constant([], scale: 0)])
        y = n.node("Relu", [n.conv(y, c: 24, m: 24, k: 3, pads: [1, 1, 1, 1], group: 24)])
        y = n.node("Add", [h, n.conv(y, c: 24, m: 8, k: 1, bias: false)])
        // A stride-2 depthwise with asymmetric pads, then the graph output.
        y = n.conv(y, c: 8, m: 8, k: 3, stride: 2, pads: [0, 0, 1, 1], group: 8)
        n.output(y)
        let g = try check(n)
        XCTAssertEqual(count("Transpose", g), 2, "one in, one out: \(g.nodes.map(\.opType))")
        XCTAssertEqual(count("Add", g), 0, "the residual Add is fused")
        XCTAssertEqual(g.nodes.filter { $0.opType == "NhwcConv" && $0.inputs.count == 4 }.count, 1)
    }

    /// A regular 3x3 stride-2 convolution with asymmetric pads, a strided 1x1 (the unfold path), a MaxPool whose
    /// output is a graph output (made NCHW at the edge), Relu(Add) fused as residual + clamp, GlobalAveragePool, Flatten and Gemm.
    func testMixedLayoutsAndResNetStyleFusion() throws {
        var n = Net(input: [3, 3, 13, 10])
        let a = n.node("Relu", [n.conv("x", c: 3, m: 16, k: 3, stride: 2, pads: [1, 0, 1, 1])])
        let pooled = n.node("MaxPool", [a], [attr("kernel_shape", [2, 2])])
        let b = n.node("Relu", [n.node("Add", [a, n.conv(a, c: 16, m: 16, k: 3, pads: [1, 1, 1, 1])])])
        let c = n.conv(b, c: 16, m: 24, k: 1, stride: 2)
        let gap = n.node("GlobalAveragePool", [c])
        let flat = n.node("Flatten", [gap])
        let out = n.node("Gemm", [flat, n.constant([24, 5]), n.constant([5])])
        n.output(out, pooled, b)
        let g = try check(n)
        XCTAssertEqual(count("Add", g) + count("Relu", g), 0, "Relu(Add) fused: \(g.nodes.map(\.opType))")
        XCTAssertEqual(count("NhwcGlobalAveragePool", g), 1)
        XCTAssertEqual(count("NhwcMaxPool", g), 1)
        XCTAssertEqual(count("Transpose", g), 3, "x in; pooled and b as graph outputs: \(g.nodes.map(\.opType))")
    }

    /// MaxPool and Pad in NHWC against NCHW: ResNet's 3x3 stride 2 pad 1, ceil_mode with asymmetric pads,
    /// auto_pad SAME_UPPER, a 1x1 stride 2 (no overlap); 19 channels so both the vector and the scalar lanes run.
    func testMaxPoolAndPadInNHWC() throws {
        var n = Net(input: [2, 5, 11, 10])
        let a = n.node("Relu", [n.conv("x", c: 5, m: 19, k: 3, pads: [1, 1, 1, 1])])
        let p1 = n.node("MaxPool", [a], [attr("kernel_shape", [3, 3]), attr("strides", [2, 2]), attr("pads", [1, 1, 1, 1])])
        let p2 = n.node("MaxPool", [p1], [attr("kernel_shape", [2, 3]), attr("strides", [2, 2]), attr("pads", [0, 1, 1, 0]),
                                          attr("ceil_mode", 1)])
        let p3 = n.node("MaxPool", [a], [attr("kernel_shape", [2, 2]), attr("auto_pad", "SAME_UPPER"), attr("strides", [2, 2])])
        let p4 = n.node("MaxPool", [a], [attr("kernel_shape", [1, 1]), attr("strides", [2, 2])])
        // Keras's ZeroPadding2D before its MaxPool, here with uneven pads (and a reflecting one), on NHWC.
        let padded = n.node("Pad", [a, n.int64s([0, 0, 1, 2, 0, 0, 2, 1])])
        let p5 = n.node("MaxPool", [padded], [attr("kernel_shape", [3, 3]), attr("strides", [2, 2])])
        let reflected = n.node("Pad", [p5, n.int64s([0, 0, 1, 0, 0, 0, 1, 1])], [attr("mode", "reflect")])
        n.output(n.conv(p2, c: 19, m: 3, k: 1), n.conv(p3, c: 19, m: 3, k: 1), p4, n.conv(reflected, c: 19, m: 2, k: 1))
        let g = try check(n)
        XCTAssertEqual(count("NhwcMaxPool", g), 5, "\(g.nodes.map(\.opType))")
        XCTAssertEqual(count("Transpose", g), 5, "x in, four outputs: \(g.nodes.map(\.opType))")
    }

    /// Squeeze-and-excitation: an NHWC tensor times a [N, 1, 1, C] one computed from its pooled NCHW mean
    /// (broadcasting between two NHWC values), and a convolution without bias whose output is read twice.
    func testSqueezeExcitationBroadcast() throws {
        var n = Net(input: [2, 16, 6, 5])
        let h = n.conv("x", c: 16, m: 16, k: 1, bias: false)
        let s = n.node("Sigmoid", [n.conv(n.node("GlobalAveragePool", [h]), c: 16, m: 16, k: 1)])
        let y = n.node("Mul", [h, s])
        n.output(y, h)
        let g = try check(n)
        XCTAssertEqual(count("Mul", g), 1)
    }

    /// An exporter's own NHWC sections (tf2onnx: Transpose to NHWC, elementwise ops, Transpose back) cost no Transpose:
    /// the first is the conv's NHWC output itself, the second makes no copy at all.
    func testExporterTransposesAroundNHWCOpsDisappear() throws {
        var n = Net(input: [2, 8, 6, 7])
        let a = n.conv("x", c: 8, m: 16, k: 3, pads: [1, 1, 1, 1])
        let t = n.node("Transpose", [a], [attr("perm", [0, 2, 3, 1])])
        let hs = n.node("Mul", [t, n.node("HardSigmoid", [t])])
        let back = n.node("Transpose", [hs], [attr("perm", [0, 3, 1, 2])])
        let y = n.conv(back, c: 16, m: 4, k: 1)
        n.output(y, t)
        let g = try check(n)
        XCTAssertEqual(count("Transpose", g), 2, "x in and y out only: \(g.nodes.map(\.opType))")
    }

    /// Swish and hard-swish as exporters write them become the convolutions' post activations (pointwise, depthwise and
    /// unfolded paths, several row chunks), BatchNormalization's Mul/Add and a stride-2 Pad on NHWC values fold into the
    /// convolutions, and a pattern whose middle value is read elsewhere is left alone.
    func testActivationsAndAffineOpsFoldIntoNHWCConvolutions() throws {
        var n = Net(input: [2, 6, 20, 17])
        func nhwc(_ v: String, _ n: inout Net) -> String { n.node("Transpose", [v], [attr("perm", [0, 2, 3, 1])]) }
        func nchw(_ v: String, _ n: inout Net) -> String { n.node("Transpose", [v], [attr("perm", [0, 3, 1, 2])]) }
        // tf2onnx's spelling: conv, Transpose to NHWC, Mul and Add per channel, hard-swish from Add, Clip, Mul, Mul.
        var y = nhwc(n.conv("x", c: 6, m: 24, k: 3, pads: [1, 1, 1, 1], bias: false), &n)
        y = n.node("Add", [n.node("Mul", [y, n.constant([24])]), n.constant([1, 1, 1, 24])])
        let three = n.constant([]), six = n.constant([]), zero = n.constant([]), sixth = n.constant([])
        n.graph.initializers = n.graph.initializers.map { t in
            var t = t
            if t.name == three { t = Tensor(name: three, floats: [3], dims: []) }
            if t.name == six { t = Tensor(name: six, floats: [6], dims: []) }
            if t.name == zero { t = Tensor(name: zero, floats: [0], dims: []) }
            if t.name == sixth { t = Tensor(name: sixth, floats: [1 / 6], dims: []) }
            return t
        }
        y = n.node("Mul", [y, n.node("Mul", [n.node("Clip", [n.node("Add", [y, three]), zero, six]), sixth])])
        // A stride-2 depthwise after an NHWC Pad, with swish as Sigmoid and Mul.
        y = n.node("Pad", [y, n.int64s([0, 1, 1, 0, 0, 0, 1, 0])])
        y = n.conv(nchw(y, &n), c: 24, m: 24, k: 3, stride: 2, group: 24)
        y = n.node("Mul", [n.node("Sigmoid", [y]), y])
        // Pointwise with HardSigmoid(1/6, 1/2)·x; then HardSwish itself.
        y = n.conv(y, c: 24, m: 40, k: 1)
        y = n.node("Mul", [y, n.node("HardSigmoid", [y], [attr("alpha", Float(1) / 6), attr("beta", Float(0.5))])])
        y = n.node("HardSwish", [n.conv(y, c: 40, m: 16, k: 1)])
        // Not fused: the sigmoid is also a graph output.
        let z = n.conv(y, c: 16, m: 8, k: 1)
        let s = n.node("Sigmoid", [z])
        n.output(n.node("Mul", [z, s]), s)
        let g = try check(n)
        let posts = g.nodes.compactMap { node -> String? in
            guard case .string(let v)? = node.attribute(FusedAttributes.activation) else { return nil }
            return String(decoding: v, as: UTF8.self)
        }
        XCTAssertEqual(posts, ["hardswish", "swish", "hardswish", "hardswish"], "\(g.nodes.map(\.opType))")
        XCTAssertEqual(count("Pad", g) + count("Add", g) + count("Clip", g) + count("HardSigmoid", g) + count("HardSwish", g), 0,
                       "\(g.nodes.map(\.opType))")
        XCTAssertEqual(count("Mul", g), 1, "only the unfused swish: \(g.nodes.map(\.opType))")
        XCTAssertEqual(count("Sigmoid", g), 1)
    }

    /// Convolutions the rewrite leaves in NCHW: grouped (not depthwise), dilated, auto_pad, weights fed at run time.
    func testIneligibleConvolutionsStayNCHW() throws {
        var n = Net(input: [1, 8, 7, 7])
        let grouped = n.conv("x", c: 8, m: 8, k: 3, pads: [1, 1, 1, 1], group: 2)
        let dilated = n.node("Conv", [grouped, n.constant([8, 8, 3, 3])], [attr("dilations", [2, 2]), attr("pads", [2, 2, 2, 2])])
        let same = n.node("Conv", [dilated, n.constant([8, 8, 3, 3])], [attr("auto_pad", "SAME_UPPER")])
        let last = n.conv(same, c: 8, m: 4, k: 1)
        n.output(last)
        let g = try check(n)
        XCTAssertEqual(count("Conv", g), 3)
        XCTAssertEqual(count("NhwcConv", g), 1)
    }

    /// Models may not use the engine's own domain.
    func testReservedDomainIsRefused() throws {
        var model = Model()
        model.opsetImports = [OpsetID(domain: "", version: 17)]
        model.graph.inputs = [ValueInfo(name: "x", type: nil)]
        model.graph.nodes = [Node(name: "sneaky", opType: "NhwcGlobalAveragePool", domain: OpRegistry.internalDomain, inputs: ["x"], outputs: ["y"])]
        model.graph.outputs = [ValueInfo(name: "y", type: nil)]
        XCTAssertThrowsError(try Session(model: model)) { XCTAssertTrue("\($0)".contains("reserved"), "\($0)") }
    }
}
