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

    /// A regular 3x3 stride-2 convolution with asymmetric pads, a strided 1x1 (the unfold path), a value read in both
    /// layouts (a MaxPool needs NCHW), Relu(Add) fused as residual + clamp, GlobalAveragePool, Flatten and Gemm.
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
        XCTAssertEqual(count("Transpose", g), 3, "x in; a for MaxPool; b as a graph output: \(g.nodes.map(\.opType))")
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
