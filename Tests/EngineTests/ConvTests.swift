import XCTest
@testable import Engine
import OnnxIO

// Conv, pooling, MatMul/Gemm and Resize against naive references written here (test-backend-ops style):
// a table of shapes and attributes per op, random data from a seeded generator, a loop reference,
// comparison with a tolerance. Every table ends with randomised cases.

// MARK: - Harness

func attr(_ name: String, _ v: Int) -> Attribute { Attribute(name: name, value: .int(Int64(v))) }
func attr(_ name: String, _ v: [Int]) -> Attribute { Attribute(name: name, value: .ints(v.map { Int64($0) })) }
func attr(_ name: String, _ v: Float) -> Attribute { Attribute(name: name, value: .float(v)) }
func attr(_ name: String, _ v: [Float]) -> Attribute { Attribute(name: name, value: .floats(v)) }
func attr(_ name: String, _ v: String) -> Attribute { Attribute(name: name, value: .string(Data(v.utf8))) }

func assertClose(_ got: HostTensor, _ want: [Float], shape: [Int], rtol: Float = 1e-4, atol: Float = 1e-4,
                 _ label: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(got.shape, shape, "\(label): shape", file: file, line: line)
    guard got.shape == shape else { return }
    let g = got.floats
    var bad = 0
    for i in g.indices where !(abs(g[i] - want[i]) <= atol + rtol * abs(want[i])) {
        if bad < 3 { XCTFail("\(label): element \(i) is \(g[i]), expected \(want[i])", file: file, line: line) }
        bad += 1
    }
}

// MARK: - Conv

struct ConvCase {
    var x: [Int]
    var m: Int
    var kernel: [Int]
    var group = 1
    var strides: [Int]? = nil
    var dilations: [Int]? = nil
    var pads: [Int]? = nil
    var autoPad: String? = nil
    var bias = true
}

/// Naive convolution of any spatial rank (1–3) with explicit begin pads and output sizes.
func referenceConv(x: HostTensor, w: HostTensor, b: HostTensor?, group: Int, strides: [Int], dilations: [Int],
                   padBegin: [Int], output: [Int]) -> [Float] {
    let xs = x.shape, ws = w.shape
    let r = xs.count - 2
    let n = xs[0], c = xs[1], m = ws[0], cg = c / group, mg = m / group
    let inSp = Array(xs[2...]), k = Array(ws[2...])
    let xv = x.floats, wv = w.floats, bv = b?.floats
    let outCount = output.reduce(1, *), kCount = k.reduce(1, *), inCount = inSp.reduce(1, *)
    var y = [Float](repeating: 0, count: n * m * outCount)
    func unflatten(_ i: Int, _ dims: [Int]) -> [Int] {
        var i = i, out = [Int](repeating: 0, count: dims.count)
        for a in stride(from: dims.count - 1, through: 0, by: -1) { out[a] = i % dims[a]; i /= dims[a] }
        return out
    }
    for ni in 0..<n {
        for mi in 0..<m {
            let gr = mi / mg
            for o in 0..<outCount {
                let oc = unflatten(o, output)
                var s: Double = Double(bv?[mi] ?? 0)
                for ci in 0..<cg {
                    for kk in 0..<kCount {
                        let kc = unflatten(kk, k)
                        var inside = true
                        var flat = 0
                        for a in 0..<r {
                            let p = oc[a] * strides[a] - padBegin[a] + kc[a] * dilations[a]
                            if p < 0 || p >= inSp[a] { inside = false; break }
                            flat = flat * inSp[a] + p
                        }
                        if !inside { continue }
                        let xi = (ni * c + gr * cg + ci) * inCount + flat
                        let wi = (mi * cg + ci) * kCount + kk
                        s += Double(xv[xi]) * Double(wv[wi])
                    }
                }
                y[(ni * m + mi) * outCount + o] = Float(s)
            }
        }
    }
    return y
}

/// ONNX's output size and begin pads for a sliding window (Conv: no ceil mode), written independently.
func referenceWindow(input: [Int], kernel: [Int], strides: [Int], dilations: [Int], pads: [Int]?, autoPad: String?,
                     ceil: Bool = false) -> (output: [Int], begin: [Int], end: [Int]) {
    let r = input.count
    var out = [Int](), begin = [Int](), end = [Int]()
    for i in 0..<r {
        let ek = (kernel[i] - 1) * dilations[i] + 1
        switch autoPad {
        case "SAME_UPPER", "SAME_LOWER":
            let o = Int((Double(input[i]) / Double(strides[i])).rounded(.up))
            let total = max(0, (o - 1) * strides[i] + ek - input[i])
            let small = total / 2
            out.append(o)
            begin.append(autoPad == "SAME_UPPER" ? small : total - small)
            end.append(total - begin.last!)
        case "VALID":
            out.append((input[i] - ek) / strides[i] + 1); begin.append(0); end.append(0)
        default:
            let pb = pads?[i] ?? 0, pe = pads?[i + r] ?? 0
            let span = Double(input[i] + pb + pe - ek) / Double(strides[i])
            var o = Int(ceil ? span.rounded(.up) : span.rounded(.down)) + 1
            if ceil && (o - 1) * strides[i] >= input[i] + pb { o -= 1 }
            out.append(o); begin.append(pb); end.append(pe)
        }
    }
    return (out, begin, end)
}

func convAttributes(_ cc: ConvCase) -> [Attribute] {
    var a = [attr("kernel_shape", cc.kernel), attr("group", cc.group)]
    if let s = cc.strides { a.append(attr("strides", s)) }
    if let d = cc.dilations { a.append(attr("dilations", d)) }
    if let p = cc.pads { a.append(attr("pads", p)) }
    if let ap = cc.autoPad { a.append(attr("auto_pad", ap)) }
    return a
}

final class ConvTests: XCTestCase {
    static let convTable: [ConvCase] = [
        // 1×1, one image of many pixels: one GEMM per image.
        ConvCase(x: [1, 8, 17, 17], m: 6, kernel: [1, 1]),
        ConvCase(x: [2, 8, 17, 17], m: 6, kernel: [1, 1], bias: false),
        // 1×1 over small images: batched into one GEMM.
        ConvCase(x: [3, 16, 4, 4], m: 12, kernel: [1, 1]),
        ConvCase(x: [5, 7, 3, 3], m: 9, kernel: [1, 1], bias: false),
        // 1×1 over at most 16 pixels in all: packed weight panels, 8/4/1-pixel kernels, M not a multiple of 8.
        ConvCase(x: [1, 20, 3, 3], m: 13, kernel: [1, 1]),
        ConvCase(x: [1, 16, 4, 4], m: 9, kernel: [1, 1], bias: false),
        ConvCase(x: [2, 5, 2, 3], m: 11, kernel: [1, 1]),
        ConvCase(x: [1, 3, 1, 1], m: 17, kernel: [1, 1]),
        ConvCase(x: [3, 33, 1, 1], m: 8, kernel: [1, 1]),
        ConvCase(x: [1, 7, 5], m: 3, kernel: [1]),
        // 1×1 grouped, and 1×1 strided (im2col path).
        ConvCase(x: [2, 6, 5, 5], m: 4, kernel: [1, 1], group: 2),
        ConvCase(x: [2, 4, 7, 7], m: 3, kernel: [1, 1], strides: [2, 2]),
        // Depthwise 3×3, stride 1 and 2, symmetric and TF-style asymmetric pads, widths not multiples of 8.
        ConvCase(x: [2, 5, 9, 11], m: 5, kernel: [3, 3], group: 5, pads: [1, 1, 1, 1]),
        ConvCase(x: [1, 3, 21, 21], m: 3, kernel: [3, 3], group: 3, pads: [1, 1, 1, 1], bias: false),
        ConvCase(x: [2, 4, 10, 13], m: 4, kernel: [3, 3], group: 4, strides: [2, 2], pads: [1, 1, 1, 1]),
        ConvCase(x: [1, 3, 8, 8], m: 3, kernel: [3, 3], group: 3, strides: [2, 2], pads: [0, 0, 1, 1]),
        ConvCase(x: [1, 2, 3, 3], m: 2, kernel: [3, 3], group: 2, pads: [1, 1, 1, 1]),
        // Depthwise 3×3 stride 2 on wide rows (deinterleaving copy, 16 at a time), odd and even left pads.
        ConvCase(x: [1, 3, 9, 37], m: 3, kernel: [3, 3], group: 3, strides: [2, 2], pads: [1, 1, 1, 1]),
        ConvCase(x: [1, 2, 7, 34], m: 2, kernel: [3, 3], group: 2, strides: [2, 2], pads: [0, 2, 1, 0]),
        ConvCase(x: [2, 5, 42, 42], m: 5, kernel: [3, 3], group: 5, strides: [2, 2], pads: [0, 0, 1, 1]),
        ConvCase(x: [1, 2, 6, 6], m: 2, kernel: [3, 3], group: 2),
        // Depthwise over small planes: 8 channels at once, a partial last group of channels.
        ConvCase(x: [2, 19, 4, 4], m: 19, kernel: [3, 3], group: 19, strides: [2, 2], pads: [1, 1, 1, 1]),
        ConvCase(x: [1, 11, 6, 5], m: 11, kernel: [3, 3], group: 11, pads: [1, 0, 1, 2]),
        ConvCase(x: [3, 9, 7, 7], m: 9, kernel: [5, 3], group: 9, dilations: [1, 2], pads: [2, 2, 2, 2], bias: false),
        // Depthwise, generic loop: 5×5 dilated, stride 3, 1-D.
        ConvCase(x: [1, 3, 12, 12], m: 3, kernel: [5, 5], group: 3, dilations: [2, 2], pads: [2, 3, 4, 1]),
        ConvCase(x: [2, 2, 11, 10], m: 2, kernel: [3, 2], group: 2, strides: [3, 2], pads: [1, 0, 1, 1]),
        ConvCase(x: [2, 3, 17], m: 3, kernel: [3], group: 3, strides: [1], pads: [1, 1]),
        // Depthwise with a channel multiplier: im2col per group.
        ConvCase(x: [1, 2, 6, 6], m: 4, kernel: [3, 3], group: 2, pads: [1, 1, 1, 1]),
        // General: MobileNet's first conv (3×3 stride 2), grouped, 1-D, 3-D, auto_pad.
        ConvCase(x: [2, 3, 15, 15], m: 8, kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1]),
        ConvCase(x: [1, 4, 7, 7], m: 6, kernel: [3, 3], group: 2, pads: [0, 1, 2, 1]),
        ConvCase(x: [2, 3, 10], m: 4, kernel: [3], strides: [2], dilations: [2], pads: [1, 2]),
        ConvCase(x: [1, 2, 4, 5, 6], m: 3, kernel: [2, 3, 3], strides: [1, 2, 1], pads: [0, 1, 1, 1, 0, 1]),
        ConvCase(x: [1, 3, 9, 8], m: 2, kernel: [4, 4], strides: [2, 2], autoPad: "SAME_UPPER"),
        ConvCase(x: [1, 3, 9, 8], m: 2, kernel: [4, 4], strides: [2, 2], autoPad: "SAME_LOWER"),
        ConvCase(x: [1, 3, 9, 8], m: 2, kernel: [3, 2], strides: [2, 3], autoPad: "VALID"),
        ConvCase(x: [1, 4, 6, 6], m: 4, kernel: [3, 3], group: 4, strides: [2, 2], autoPad: "SAME_UPPER"),
    ]

    private func check(_ cc: ConvCase, seed: UInt64, weightsConstant: Bool = true, threads: Int = 2,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        var rng = TestRandom(seed)
        let x = try rng.tensor(cc.x)
        let w = try rng.tensor([cc.m, cc.x[1] / cc.group] + cc.kernel)
        let b = cc.bias ? try rng.tensor([cc.m]) : nil
        let r = cc.kernel.count
        let strides = cc.strides ?? Array(repeating: 1, count: r), dil = cc.dilations ?? Array(repeating: 1, count: r)
        let win = referenceWindow(input: Array(cc.x[2...]), kernel: cc.kernel, strides: strides, dilations: dil,
                                  pads: cc.pads, autoPad: cc.autoPad)
        let want = referenceConv(x: x, w: w, b: b, group: cc.group, strides: strides, dilations: dil, padBegin: win.begin, output: win.output)
        let inputs: [NodeInput] = [.fed(x), weightsConstant ? .constant(w) : .fed(w)] + (b.map { [weightsConstant ? .constant($0) : .fed($0)] } ?? [])
        let got = try runNode("Conv", convAttributes(cc), inputs: inputs, threads: threads)[0]
        assertClose(got, want, shape: [cc.x[0], cc.m] + win.output, "Conv \(cc) seed \(seed)", file: file, line: line)
    }

    func testConvTable() throws {
        for (i, cc) in ConvTests.convTable.enumerated() {
            try check(cc, seed: UInt64(100 + i))
            try check(cc, seed: UInt64(200 + i), weightsConstant: false, threads: 1)
        }
    }

    func testConvRandomised() throws {
        var rng = TestRandom(7)
        for i in 0..<60 {
            let r = rng.int(1...2) + (i % 10 == 0 ? 1 : 0)
            let depthwise = rng.int(0...2) == 0
            let group = depthwise ? rng.int(1...6) : [1, 1, 2, 3][rng.int(0...3)]
            let c = depthwise ? group : group * rng.int(1...4)
            let m = depthwise ? group : group * rng.int(1...3)
            let kernel = (0..<r).map { _ in rng.int(1...(r == 3 ? 3 : 4)) }
            let strides = (0..<r).map { _ in rng.int(1...3) }
            let dil = (0..<r).map { _ in rng.int(1...2) }
            let pads = (0..<2 * r).map { _ in rng.int(0...2) }
            let spatial = (0..<r).map { a in (kernel[a] - 1) * dil[a] + 1 + rng.int(0...(r == 3 ? 5 : 12)) }
            let autoPad = ["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"][rng.int(0...4)]
            let cc = ConvCase(x: [rng.int(1...3), c] + spatial, m: m, kernel: kernel, group: group, strides: strides,
                              dilations: dil, pads: autoPad == "NOTSET" ? pads : nil, autoPad: autoPad == "NOTSET" ? nil : autoPad,
                              bias: rng.int(0...1) == 1)
            try check(cc, seed: UInt64(1000 + i))
        }
    }

    /// The fused epilogue: act(scale·(conv + b) + shift) for every path, as the graph optimiser folds a
    /// Conv → Mul → Add → Mul → Add → Relu / Clip chain (with constant weights into one Conv; with weights
    /// computed at run time nothing is folded and the chain runs node by node, to the same result).
    func testFusedAffineAndActivation() throws {
        let cases: [ConvCase] = [
            ConvCase(x: [1, 8, 17, 17], m: 6, kernel: [1, 1]),                                // pointwise
            ConvCase(x: [1, 16, 6, 6], m: 70, kernel: [1, 1]),                                // pointwise split by rows
            ConvCase(x: [4, 8, 3, 3], m: 5, kernel: [1, 1]),                                  // pointwise batched
            ConvCase(x: [1, 24, 3, 3], m: 19, kernel: [1, 1]),                                // pointwise panels
            ConvCase(x: [2, 5, 9, 11], m: 5, kernel: [3, 3], group: 5, pads: [1, 1, 1, 1]),   // depthwise s1
            ConvCase(x: [2, 4, 10, 13], m: 4, kernel: [3, 3], group: 4, strides: [2, 2], pads: [1, 1, 1, 1]),  // s2
            ConvCase(x: [1, 3, 12, 12], m: 3, kernel: [5, 5], group: 3, pads: [2, 2, 2, 2]),  // depthwise generic
            ConvCase(x: [2, 11, 5, 5], m: 11, kernel: [3, 3], group: 11, pads: [1, 1, 1, 1]), // depthwise small planes
            ConvCase(x: [2, 3, 15, 15], m: 8, kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], bias: false),  // im2col
        ]
        let activations: [FusedActivation] = [.none, .relu, .clip(min: -0.25, max: 0.3)]
        for (i, cc) in cases.enumerated() {
            for (j, act) in activations.enumerated() {
                for constant in [true, false] {
                    var rng = TestRandom(UInt64(500 + i * 10 + j))
                    let x = try rng.tensor(cc.x)
                    let w = try rng.tensor([cc.m, cc.x[1] / cc.group] + cc.kernel)
                    let b = cc.bias ? try rng.tensor([cc.m]) : nil
                    let scale1 = rng.floats(cc.m), shift1 = rng.floats(cc.m)
                    let scale2: [Float] = [1.5], shift2: [Float] = [-0.125]
                    let r = cc.kernel.count
                    let strides = cc.strides ?? Array(repeating: 1, count: r)
                    let win = referenceWindow(input: Array(cc.x[2...]), kernel: cc.kernel, strides: strides,
                                              dilations: Array(repeating: 1, count: r), pads: cc.pads, autoPad: nil)
                    let plain = referenceConv(x: x, w: w, b: b, group: cc.group, strides: strides,
                                              dilations: Array(repeating: 1, count: r), padBegin: win.begin, output: win.output)
                    let per = win.output.reduce(1, *)
                    let want = plain.enumerated().map { k, v -> Float in
                        let mi = (k / per) % cc.m
                        var y = (v * scale1[mi] + shift1[mi]) * scale2[0] + shift2[0]
                        switch act {
                        case .none: break
                        case .relu: y = max(y, 0)
                        case .clip(let lo, let hi): y = min(max(y, lo), hi)
                        }
                        return y
                    }

                    var model = Model()
                    model.opsetImports = [OpsetID(domain: "", version: 13)]
                    var feeds = ["x": x]
                    model.graph.inputs = [ValueInfo(name: "x", type: nil)]
                    func add(_ name: String, _ t: HostTensor, dims: [Int]? = nil) {
                        // Weights and bias fed or constant; the affine and clip bounds always constants.
                        if (name == "w" || name == "b") && !constant {
                            model.graph.inputs.append(ValueInfo(name: name, type: nil))
                            feeds[name] = t
                        } else {
                            var c = t.onnxTensor(name: name)
                            if let dims { c.dims = dims }
                            model.graph.initializers.append(c)
                        }
                    }
                    add("w", w)
                    if let b { add("b", b) }
                    add("s1", try HostTensor(shape: [cc.m], floats: scale1), dims: [cc.m] + Array(repeating: 1, count: r))
                    add("t1", try HostTensor(shape: [cc.m], floats: shift1), dims: [1, cc.m] + Array(repeating: 1, count: r))
                    add("s2", try HostTensor(shape: [], floats: scale2))
                    add("t2", try HostTensor(shape: [], floats: shift2))
                    var nodes = [
                        Node(opType: "Conv", inputs: ["x", "w"] + (b == nil ? [] : ["b"]), outputs: ["c"], attributes: convAttributes(cc)),
                        Node(opType: "Mul", inputs: ["c", "s1"], outputs: ["m1"]),
                        Node(opType: "Add", inputs: ["t1", "m1"], outputs: ["a1"]),
                        Node(opType: "Mul", inputs: ["a1", "s2"], outputs: ["m2"]),
                        Node(opType: "Add", inputs: ["m2", "t2"], outputs: ["y"]),
                    ]
                    switch act {
                    case .none: break
                    case .relu:
                        nodes[4].outputs = ["a2"]
                        nodes.append(Node(opType: "Relu", inputs: ["a2"], outputs: ["y"]))
                    case .clip(let lo, let hi):
                        nodes[4].outputs = ["a2"]
                        add("lo", try HostTensor(shape: [], floats: [lo]))
                        add("hi", try HostTensor(shape: [], floats: [hi]))
                        nodes.append(Node(opType: "Clip", inputs: ["a2", "lo", "hi"], outputs: ["y"]))
                    }
                    model.graph.nodes = nodes
                    model.graph.outputs = [ValueInfo(name: "y", type: nil)]
                    let session = try Session(model: model)
                    if constant {
                        // Transposes in and out when the Conv runs in NHWC (LayoutNHWC.swift).
                        let ops = session.steps.map(\.node.opType).filter { $0 != "Transpose" }
                        XCTAssertTrue(ops == ["Conv"] || ops == ["NhwcConv"], "\(cc) \(act): everything folds into the Conv, got \(ops)")
                    }
                    let got = try session.run(feeds)["y"]!
                    assertClose(got, want, shape: [cc.x[0], cc.m] + win.output, "fused \(cc) \(act) constant=\(constant)")
                }
            }
        }
    }

    /// The graph optimiser's fused Clip / Relu arrives as internal attributes on the Conv node.
    func testFusedActivationAttributes() throws {
        var rng = TestRandom(12)
        let cc = ConvCase(x: [2, 6, 5, 5], m: 4, kernel: [1, 1])
        let x = try rng.tensor(cc.x), w = try rng.tensor([4, 6, 1, 1]), b = try rng.tensor([4])
        let plain = referenceConv(x: x, w: w, b: b, group: 1, strides: [1, 1], dilations: [1, 1], padBegin: [0, 0], output: [5, 5])
        for (lo, hi) in [(Float(0), Float.infinity), (Float(-0.5), Float(0.5)), (-Float.infinity, Float(0.25))] {
            var attrs = convAttributes(cc)
            if lo > -.infinity { attrs.append(attr(FusedAttributes.clipMin, lo)) }
            if hi < .infinity { attrs.append(attr(FusedAttributes.clipMax, hi)) }
            let got = try runNode("Conv", attrs, inputs: [.fed(x), .constant(w), .constant(b)])[0]
            assertClose(got, plain.map { min(max($0, lo), hi) }, shape: [2, 4, 5, 5], "fused clip [\(lo), \(hi)]")
        }
    }

    func testConvRejectsBadShapes() {
        var rng = TestRandom(1)
        XCTAssertThrowsError(try runNode("Conv", [attr("group", 2)], inputs: [.fed(rng.tensor([1, 3, 5, 5])), .constant(rng.tensor([4, 1, 3, 3]))]))
        XCTAssertThrowsError(try runNode("Conv", [], inputs: [.fed(rng.tensor([1, 3, 5, 5])), .constant(rng.tensor([4, 2, 3, 3]))]))
        XCTAssertThrowsError(try runNode("Conv", [attr("kernel_shape", [2, 2])], inputs: [.fed(rng.tensor([1, 3, 5, 5])), .constant(rng.tensor([4, 3, 3, 3]))]))
    }

    // MARK: - ConvTranspose

    /// Naive transposed convolution: every input pixel scatters x·w into the output window it maps to.
    private func referenceConvTranspose(x: HostTensor, w: HostTensor, b: HostTensor?, group: Int, strides: [Int],
                                        dilations: [Int], padBegin: [Int], output: [Int]) -> [Float] {
        let xs = x.shape, ws = w.shape, r = xs.count - 2
        let n = xs[0], c = xs[1], cg = c / group, mg = ws[1], m = mg * group
        let inSp = Array(xs[2...]), k = Array(ws[2...])
        let inCount = inSp.reduce(1, *), kCount = k.reduce(1, *), outCount = output.reduce(1, *)
        let xv = x.floats, wv = w.floats, bv = b?.floats
        var y = [Float](repeating: 0, count: n * m * outCount)
        for ni in 0..<n { for mi in 0..<m { for o in 0..<outCount { y[(ni * m + mi) * outCount + o] = bv?[mi] ?? 0 } } }
        func unflatten(_ i: Int, _ dims: [Int]) -> [Int] {
            var i = i, out = [Int](repeating: 0, count: dims.count)
            for a in stride(from: dims.count - 1, through: 0, by: -1) { out[a] = i % dims[a]; i /= dims[a] }
            return out
        }
        for ni in 0..<n {
            for ci in 0..<c {
                let gr = ci / cg
                for i in 0..<inCount {
                    let ic = unflatten(i, inSp)
                    for ml in 0..<mg {
                        for kk in 0..<kCount {
                            let kc = unflatten(kk, k)
                            var flat = 0, inside = true
                            for a in 0..<r {
                                let q = ic[a] * strides[a] - padBegin[a] + kc[a] * dilations[a]
                                if q < 0 || q >= output[a] { inside = false; break }
                                flat = flat * output[a] + q
                            }
                            if !inside { continue }
                            let mi = gr * mg + ml
                            y[(ni * m + mi) * outCount + flat] += xv[(ni * c + ci) * inCount + i] * wv[(ci * mg + ml) * kCount + kk]
                        }
                    }
                }
            }
        }
        return y
    }

    func testConvTranspose() throws {
        struct Case { var x: [Int]; var mg: Int; var k: [Int]; var group = 1; var s: [Int]? = nil; var d: [Int]? = nil
                      var pads: [Int]? = nil; var outPad: [Int]? = nil; var autoPad: String? = nil; var bias = true }
        var table: [Case] = [
            Case(x: [1, 2, 3, 3], mg: 3, k: [3, 3]),
            Case(x: [2, 4, 4, 5], mg: 2, k: [3, 2], group: 2, s: [2, 3], pads: [1, 0, 1, 1], outPad: [1, 0]),
            Case(x: [1, 3, 5], mg: 2, k: [4], s: [2], d: [2], pads: [1, 2], bias: false),
            Case(x: [1, 2, 3, 3, 2], mg: 2, k: [2, 2, 3], s: [2, 1, 2]),
            Case(x: [1, 1, 4, 4], mg: 2, k: [3, 3], s: [2, 2], autoPad: "SAME_UPPER"),
            Case(x: [1, 1, 4, 3], mg: 2, k: [4, 3], s: [2, 2], autoPad: "SAME_LOWER"),
        ]
        var rng = TestRandom(401)
        for _ in 0..<15 {
            let r = rng.int(1...2), group = rng.int(1...2)
            table.append(Case(x: [rng.int(1...2), group * rng.int(1...2)] + (0..<r).map { _ in rng.int(1...5) }, mg: rng.int(1...3),
                              k: (0..<r).map { _ in rng.int(1...3) }, group: group, s: (0..<r).map { _ in rng.int(1...3) },
                              d: (0..<r).map { _ in rng.int(1...2) }, pads: (0..<2 * r).map { _ in rng.int(0...1) }, bias: rng.int(0...1) == 1))
        }
        for (i, tc) in table.enumerated() {
            var rng = TestRandom(UInt64(700 + i))
            let r = tc.k.count
            let x = try rng.tensor(tc.x), w = try rng.tensor([tc.x[1], tc.mg] + tc.k), b = tc.bias ? try rng.tensor([tc.mg * tc.group]) : nil
            let s = tc.s ?? Array(repeating: 1, count: r), d = tc.d ?? Array(repeating: 1, count: r)
            let op = tc.outPad ?? Array(repeating: 0, count: r)
            var begin = [Int](), output = [Int]()
            for a in 0..<r {
                let full = s[a] * (tc.x[a + 2] - 1) + op[a] + (tc.k[a] - 1) * d[a] + 1
                if let ap = tc.autoPad {
                    output.append(tc.x[a + 2] * s[a])
                    let total = full - output[a]
                    begin.append(ap == "SAME_UPPER" ? total / 2 : total - total / 2)
                } else {
                    let p = tc.pads ?? Array(repeating: 0, count: 2 * r)
                    begin.append(p[a]); output.append(full - p[a] - p[a + r])
                }
            }
            if output.contains(where: { $0 < 1 }) { continue }
            let want = referenceConvTranspose(x: x, w: w, b: b, group: tc.group, strides: s, dilations: d, padBegin: begin, output: output)
            var attrs = [attr("group", tc.group), attr("strides", s), attr("dilations", d)]
            if let p = tc.pads, tc.autoPad == nil { attrs.append(attr("pads", p)) }
            if let o = tc.outPad { attrs.append(attr("output_padding", o)) }
            if let ap = tc.autoPad { attrs.append(attr("auto_pad", ap)) }
            let got = try runNode("ConvTranspose", attrs, inputs: [.fed(x), .constant(w)] + (b.map { [.constant($0)] } ?? []))[0]
            assertClose(got, want, shape: [tc.x[0], tc.mg * tc.group] + output, "ConvTranspose \(tc)")
        }
    }

    // MARK: - Pooling

    struct PoolCase {
        var x: [Int]
        var kernel: [Int]
        var strides: [Int]? = nil
        var dilations: [Int]? = nil
        var pads: [Int]? = nil
        var autoPad: String? = nil
        var ceil = false
        var includePad = false
    }

    private func referencePool(_ x: HostTensor, _ pc: PoolCase, max isMax: Bool, lp: Int? = nil) -> ([Float], [Int]) {
        let r = pc.kernel.count
        let strides = pc.strides ?? Array(repeating: 1, count: r), dil = pc.dilations ?? Array(repeating: 1, count: r)
        let inSp = Array(pc.x[2...])
        let win = referenceWindow(input: inSp, kernel: pc.kernel, strides: strides, dilations: dil, pads: pc.pads,
                                  autoPad: pc.autoPad, ceil: pc.ceil)
        let planes = pc.x[0] * pc.x[1], inCount = inSp.reduce(1, *), outCount = win.output.reduce(1, *)
        let kCount = pc.kernel.reduce(1, *)
        let xv = x.floats
        var y: [Float] = []
        for p in 0..<planes {
            for o in 0..<outCount {
                var oc = [Int](repeating: 0, count: r), rem = o
                for a in stride(from: r - 1, through: 0, by: -1) { oc[a] = rem % win.output[a]; rem /= win.output[a] }
                var best = -Float.infinity, sum: Float = 0, count = 0, powerSum: Double = 0
                for kk in 0..<kCount {
                    var kc = [Int](repeating: 0, count: r), rem = kk
                    for a in stride(from: r - 1, through: 0, by: -1) { kc[a] = rem % pc.kernel[a]; rem /= pc.kernel[a] }
                    var inside = true, inPadded = true, flat = 0
                    for a in 0..<r {
                        let q = oc[a] * strides[a] - win.begin[a] + kc[a] * dil[a]
                        if q < 0 || q >= inSp[a] { inside = false }
                        if q < -win.begin[a] || q >= inSp[a] + win.end[a] { inPadded = false }
                        if inside { flat = flat * inSp[a] + q }
                    }
                    if inside {
                        let v = xv[p * inCount + flat]
                        best = max(best, v); sum += v; count += 1
                        if let p = lp { powerSum += pow(Double(abs(v)), Double(p)) }
                    } else if inPadded && pc.includePad {
                        count += 1
                    }
                }
                if let p = lp { y.append(Float(pow(powerSum, 1 / Double(p)))); continue }
                y.append(isMax ? best : sum / Float(count))
            }
        }
        return (y, [pc.x[0], pc.x[1]] + win.output)
    }

    private func poolAttributes(_ pc: PoolCase, max: Bool) -> [Attribute] {
        var a = [attr("kernel_shape", pc.kernel), attr("ceil_mode", pc.ceil ? 1 : 0)]
        if let s = pc.strides { a.append(attr("strides", s)) }
        if let d = pc.dilations { a.append(attr("dilations", d)) }
        if let p = pc.pads { a.append(attr("pads", p)) }
        if let ap = pc.autoPad { a.append(attr("auto_pad", ap)) }
        if !max { a.append(attr("count_include_pad", pc.includePad ? 1 : 0)) }
        return a
    }

    func testPoolTable() throws {
        var table: [PoolCase] = [
            PoolCase(x: [2, 3, 7, 7], kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1]),
            PoolCase(x: [2, 3, 7, 7], kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], includePad: true),
            PoolCase(x: [1, 2, 6, 6], kernel: [3, 3], strides: [2, 2], ceil: true),
            PoolCase(x: [1, 2, 6, 6], kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil: true, includePad: true),
            PoolCase(x: [1, 2, 9, 8], kernel: [2, 3], dilations: [2, 2]),
            PoolCase(x: [1, 2, 9, 8], kernel: [3, 3], strides: [2, 2], autoPad: "SAME_UPPER"),
            PoolCase(x: [1, 2, 9, 8], kernel: [4, 4], strides: [2, 2], autoPad: "SAME_LOWER", includePad: true),
            PoolCase(x: [3, 2, 11], kernel: [4], strides: [3], pads: [2, 1]),
            PoolCase(x: [1, 2, 5, 6, 4], kernel: [2, 3, 2], strides: [2, 1, 2], pads: [0, 1, 1, 1, 1, 0], ceil: true),
        ]
        var rng = TestRandom(77)
        for _ in 0..<30 {
            let r = rng.int(1...3)
            let k = (0..<r).map { _ in rng.int(1...3) }
            let pads = (0..<2 * r).map { i in rng.int(0...(k[i % r] - 1)) }
            let sp = (0..<r).map { a in k[a] * 2 + rng.int(0...6) }
            table.append(PoolCase(x: [rng.int(1...2), rng.int(1...3)] + sp, kernel: k, strides: (0..<r).map { _ in rng.int(1...3) },
                                  dilations: (0..<r).map { _ in rng.int(1...2) }, pads: pads, ceil: rng.int(0...1) == 1,
                                  includePad: rng.int(0...1) == 1))
        }
        for (i, pc) in table.enumerated() {
            var rng = TestRandom(UInt64(300 + i))
            let x = try rng.tensor(pc.x)
            for isMax in [true, false] {
                let (want, shape) = referencePool(x, pc, max: isMax)
                let got = try runNode(isMax ? "MaxPool" : "AveragePool", poolAttributes(pc, max: isMax), inputs: [.fed(x)])[0]
                assertClose(got, want, shape: shape, "\(isMax ? "MaxPool" : "AveragePool") \(pc)")
            }
            let p = 1 + i % 3
            let (want, shape) = referencePool(x, pc, max: false, lp: p)
            let got = try runNode("LpPool", poolAttributes(pc, max: true) + [attr("p", p)], inputs: [.fed(x)])[0]
            assertClose(got, want, shape: shape, "LpPool p=\(p) \(pc)")
        }
    }

    func testMaxPoolIndices() throws {
        // Row-major flat indices into the whole input, including the (n, c) offset.
        let x = try HostTensor(shape: [1, 2, 2, 3], floats: [1, 5, 2, 0, 3, 6, /**/ 9, 1, 1, 2, 8, 7])
        let out = try runNode("MaxPool", [attr("kernel_shape", [2, 2])], inputs: [.fed(x)], outputs: 2)
        XCTAssertEqual(out[0].floats, [5, 6, 9, 8])
        XCTAssertEqual(out[1].int64s, [1, 5, 6, 10])
    }

    func testMaxUnpoolInvertsMaxPool() throws {
        var rng = TestRandom(17)
        for (shape, k, st, outShape) in [([2, 3, 6, 6], [2, 2], [2, 2], nil), ([1, 2, 7, 6], [3, 2], [2, 2], [1, 2, 8, 7]),
                                         ([1, 1, 9], [3], [3], nil)] as [([Int], [Int], [Int], [Int]?)] {
            let x = try rng.tensor(shape)
            let pooled = try runNode("MaxPool", [attr("kernel_shape", k), attr("strides", st)], inputs: [.fed(x)], outputs: 2)
            var inputs: [NodeInput] = [.fed(pooled[0]), .fed(pooled[1])]
            if let o = outShape { inputs.append(.constant(try HostTensor(shape: [o.count], int64s: o.map { Int64($0) }))) }
            let got = try runNode("MaxUnpool", [attr("kernel_shape", k), attr("strides", st)], inputs: inputs)[0]
            // Default shape (D-1)·stride + kernel; a larger output_shape holds it at the origin.
            let spatial: [Int] = (0..<k.count).map { a -> Int in (pooled[0].shape[a + 2] - 1) * st[a] + k[a] }
            let inferred: [Int] = [shape[0], shape[1]] + spatial
            let final = outShape ?? inferred
            var want = [Float](repeating: 0, count: final.reduce(1, *))
            let values = pooled[0].floats, idx = pooled[1].int64s
            for (v, flat) in zip(values, idx) {
                var rem = Int(flat), off = 0, step = 1
                for a in stride(from: inferred.count - 1, through: 0, by: -1) { off += (rem % inferred[a]) * step; rem /= inferred[a]; step *= final[a] }
                want[off] = v
            }
            assertClose(got, want, shape: final, "MaxUnpool \(shape)")
        }
    }

    func testGlobalPools() throws {
        var rng = TestRandom(9)
        for shape in [[2, 3, 5, 7], [1, 4, 3], [3, 2, 2, 3, 4], [2, 5, 1, 1], [1, 2, 9, 9]] {
            let x = try rng.tensor(shape)
            let size = shape.dropFirst(2).reduce(1, *)
            let xv = x.floats
            let planes = shape[0] * shape[1]
            let mean = (0..<planes).map { p in xv[p * size..<(p + 1) * size].reduce(0, +) / Float(size) }
            let maxv = (0..<planes).map { p in xv[p * size..<(p + 1) * size].max()! }
            let outShape = [shape[0], shape[1]] + Array(repeating: 1, count: shape.count - 2)
            assertClose(try runNode("GlobalAveragePool", inputs: [.fed(x)])[0], mean, shape: outShape, "GlobalAveragePool \(shape)")
            assertClose(try runNode("GlobalMaxPool", inputs: [.fed(x)])[0], maxv, shape: outShape, "GlobalMaxPool \(shape)")
        }
    }

    // MARK: - MatMul and Gemm

    private func referenceMatMul(_ a: HostTensor, _ b: HostTensor) -> ([Float], [Int]) {
        var sa = a.shape, sb = b.shape
        if sa.count == 1 { sa = [1, sa[0]] }
        if sb.count == 1 { sb = [sb[0], 1] }
        let m = sa[sa.count - 2], k = sa[sa.count - 1], n = sb[sb.count - 1]
        let ba = Array(sa.dropLast(2)), bb = Array(sb.dropLast(2))
        let r = max(ba.count, bb.count)
        let pa = Array(repeating: 1, count: r - ba.count) + ba, pb = Array(repeating: 1, count: r - bb.count) + bb
        let batch = zip(pa, pb).map { max($0, $1) }
        let av = a.floats, bv = b.floats
        var y: [Float] = []
        for bi in 0..<batch.reduce(1, *) {
            var idx = [Int](repeating: 0, count: r), rem = bi
            for j in stride(from: r - 1, through: 0, by: -1) { idx[j] = rem % batch[j]; rem /= batch[j] }
            var oa = 0, ob = 0
            for j in 0..<r { oa = oa * pa[j] + (pa[j] == 1 ? 0 : idx[j]); ob = ob * pb[j] + (pb[j] == 1 ? 0 : idx[j]) }
            for i in 0..<m {
                for jn in 0..<n {
                    var s: Float = 0
                    for kk in 0..<k { s += av[oa * m * k + i * k + kk] * bv[ob * k * n + kk * n + jn] }
                    y.append(s)
                }
            }
        }
        let shape = batch + (a.shape.count == 1 ? [] : [m]) + (b.shape.count == 1 ? [] : [n])
        return (y, shape)
    }

    func testMatMul() throws {
        var cases: [([Int], [Int])] = [
            ([3, 4], [4, 5]), ([4], [4]), ([4], [2, 4, 3]), ([2, 3, 4], [4]), ([2, 1, 3, 4], [5, 4, 6]),
            ([5, 3, 4], [4, 2]), ([1, 3, 4], [2, 4, 2]), ([2, 3, 0], [0, 4]), ([7, 1, 6], [7, 6, 1]),
        ]
        var rng = TestRandom(11)
        for _ in 0..<20 {
            let m = rng.int(1...9), k = rng.int(1...9), n = rng.int(1...9)
            let ba = (0..<rng.int(0...2)).map { _ in [1, 2, 3][rng.int(0...2)] }
            let bb = ba.map { [1, $0][rng.int(0...1)] }
            cases.append((ba + [m, k], Array(bb.dropFirst(rng.int(0...bb.count))) + [k, n]))
        }
        for (i, (sa, sb)) in cases.enumerated() {
            var rng = TestRandom(UInt64(40 + i))
            let a = try rng.tensor(sa), b = try rng.tensor(sb)
            let (want, shape) = referenceMatMul(a, b)
            for constant in [false, true] {
                let got = try runNode("MatMul", inputs: [.fed(a), constant ? .constant(b) : .fed(b)])[0]
                assertClose(got, want, shape: shape, "MatMul \(sa) × \(sb)")
            }
        }
        var r2 = TestRandom(2)
        XCTAssertThrowsError(try runNode("MatMul", inputs: [.fed(r2.tensor([3, 4])), .fed(r2.tensor([5, 2]))]))
        XCTAssertThrowsError(try runNode("MatMul", inputs: [.fed(r2.tensor([2, 3, 4])), .fed(r2.tensor([3, 4, 2]))]))
    }

    func testGemm() throws {
        var rng = TestRandom(21)
        var cases: [(m: Int, k: Int, n: Int, ta: Bool, tb: Bool, alpha: Float, beta: Float, c: [Int]?)] = [
            (3, 4, 5, false, false, 1, 1, [5]), (3, 4, 5, true, false, 0.5, 2, [3, 5]), (3, 4, 5, false, true, 1, 1, [3, 1]),
            (3, 4, 5, true, true, -1, 0.25, [1]), (2, 6, 3, false, false, 1, 1, []), (2, 6, 3, false, false, 2, 1, nil),
            (4, 3, 2, false, true, 1, 0, [4, 2]),
        ]
        for _ in 0..<15 {
            let m = rng.int(1...8), n = rng.int(1...8)
            let cs: [[Int]?] = [nil, [n], [m, n], [m, 1], [1, n], [1]]
            cases.append((m, rng.int(1...8), n, rng.int(0...1) == 1, rng.int(0...1) == 1, rng.float() * 2, rng.float() * 2, cs[rng.int(0...5)]))
        }
        for (i, g) in cases.enumerated() {
            var rng = TestRandom(UInt64(60 + i))
            let a = try rng.tensor(g.ta ? [g.k, g.m] : [g.m, g.k]), b = try rng.tensor(g.tb ? [g.n, g.k] : [g.k, g.n])
            let c = try g.c.map { try rng.tensor($0) }
            let av = a.floats, bv = b.floats, cv = c?.floats ?? []
            var want: [Float] = []
            for i in 0..<g.m {
                for j in 0..<g.n {
                    var s: Float = 0
                    for kk in 0..<g.k { s += (g.ta ? av[kk * g.m + i] : av[i * g.k + kk]) * (g.tb ? bv[j * g.k + kk] : bv[kk * g.n + j]) }
                    var cval: Float = 0
                    if let cs = g.c {
                        let p = Array(repeating: 1, count: 2 - cs.count) + cs
                        cval = cv[(p[0] == 1 ? 0 : i) * p[1] + (p[1] == 1 ? 0 : j)]
                    }
                    want.append(g.alpha * s + g.beta * cval)
                }
            }
            let attrs = [attr("transA", g.ta ? 1 : 0), attr("transB", g.tb ? 1 : 0), attr("alpha", g.alpha), attr("beta", g.beta)]
            let got = try runNode("Gemm", attrs, inputs: [.fed(a), .constant(b)] + (c.map { [.constant($0)] } ?? []))[0]
            assertClose(got, want, shape: [g.m, g.n], "Gemm \(g)")
        }
    }

    // MARK: - Resize

    /// Source coordinate for an output coordinate, per ONNX's formulas (written independently).
    private func sourceCoordinate(_ x: Int, mode: String, inLen: Int, outLen: Int, scale: Double) -> Double {
        let x = Double(x), inL = Double(inLen)
        switch mode {
        case "half_pixel": return (x + 0.5) / scale - 0.5
        case "pytorch_half_pixel": return outLen > 1 ? (x + 0.5) / scale - 0.5 : 0
        // Like the ONNX reference, align_corners divides by the unrounded output length scale·in.
        case "align_corners": return scale * inL == 1 ? 0 : x * (inL - 1) / (scale * inL - 1)
        case "asymmetric": return x / scale
        case "tf_half_pixel_for_nn": return (x + 0.5) / scale
        default: fatalError(mode)
        }
    }

    private func nearestIndex(_ c: Double, _ mode: String, _ inLen: Int) -> Int {
        var i: Double
        switch mode {
        case "round_prefer_floor": i = c - c.rounded(.down) == 0.5 ? c.rounded(.down) : c.rounded()
        case "round_prefer_ceil": i = c - c.rounded(.down) == 0.5 ? c.rounded(.up) : c.rounded()
        case "floor": i = c.rounded(.down)
        default: i = c.rounded(.up)
        }
        return min(max(Int(i), 0), inLen - 1)
    }

    private func referenceResize(_ x: HostTensor, out: [Int], scales: [Double], linear: Bool, coord: String, nearest: String) -> [Float] {
        let n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
        let xv = x.floats
        var y: [Float] = []
        if !linear {
            // Nearest maps every axis, N and C included (tf_half_pixel_for_nn shifts even at scale 1).
            let maps = (0..<4).map { a in
                (0..<out[a]).map { i in
                    nearestIndex(sourceCoordinate(i, mode: coord, inLen: x.shape[a], outLen: out[a], scale: scales[a]), nearest, x.shape[a])
                }
            }
            for i0 in maps[0] { for i1 in maps[1] { for i2 in maps[2] { for i3 in maps[3] {
                y.append(xv[((i0 * c + i1) * h + i2) * w + i3])
            } } } }
            return y
        }
        let oh = out[2], ow = out[3]
        for p in 0..<n * c {
            for i in 0..<oh {
                for j in 0..<ow {
                    let sy = sourceCoordinate(i, mode: coord, inLen: h, outLen: oh, scale: scales[2])
                    let sx = sourceCoordinate(j, mode: coord, inLen: w, outLen: ow, scale: scales[3])
                    let cy = min(max(sy, 0), Double(h - 1)), cx = min(max(sx, 0), Double(w - 1))
                    let y0 = Int(cy), x0 = Int(cx), y1 = min(y0 + 1, h - 1), x1 = min(x0 + 1, w - 1)
                    let fy = Float(cy - Double(y0)), fx = Float(cx - Double(x0))
                    func at(_ a: Int, _ b: Int) -> Float { xv[p * h * w + a * w + b] }
                    y.append((1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1)) + fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1)))
                }
            }
        }
        return y
    }

    func testResize() throws {
        var cases: [(x: [Int], scales: [Float]?, sizes: [Int]?, linear: Bool, coord: String, nearest: String)] = [
            // The target model: 28×28 → 84×84 nearest by 3.
            ([2, 1, 28, 28], [1, 1, 3, 3], nil, false, "tf_half_pixel_for_nn", "round_prefer_floor"),
            ([2, 3, 28, 28], [1, 1, 3, 3], nil, false, "asymmetric", "floor"),
            ([1, 2, 5, 7], [1, 1, 2, 2.5], nil, false, "half_pixel", "round_prefer_ceil"),
            ([1, 2, 8, 9], [1, 1, 0.5, 0.7], nil, false, "align_corners", "ceil"),
            ([1, 2, 4, 5], nil, [1, 2, 9, 3], false, "pytorch_half_pixel", "round_prefer_floor"),
            ([2, 2, 4, 5], [1, 1, 2, 3], nil, true, "half_pixel", ""),
            ([1, 3, 9, 7], [1, 1, 0.6, 0.5], nil, true, "pytorch_half_pixel", ""),
            ([1, 1, 4, 4], nil, [1, 1, 7, 3], true, "align_corners", ""),
            ([1, 2, 3, 5], [1, 1, 1.5, 2], nil, true, "asymmetric", ""),
        ]
        var rng = TestRandom(31)
        let coords = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn"]
        let nearests = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]
        for _ in 0..<30 {
            let x = [rng.int(1...2), rng.int(1...3), rng.int(1...9), rng.int(1...9)]
            let linear = rng.int(0...1) == 1
            let coord = coords[rng.int(0...(linear ? 3 : 4))]
            if rng.int(0...1) == 0 {
                cases.append((x, [1, 1, Float(rng.int(1...12)) / 4, Float(rng.int(1...12)) / 4], nil, linear, coord, nearests[rng.int(0...3)]))
            } else {
                cases.append((x, nil, [x[0], x[1], rng.int(1...14), rng.int(1...14)], linear, coord, nearests[rng.int(0...3)]))
            }
        }
        for (i, rc) in cases.enumerated() {
            var rng = TestRandom(UInt64(80 + i))
            let x = try rng.tensor(rc.x)
            let out: [Int], scales: [Double]
            if let s = rc.scales {
                out = zip(rc.x, s).map { Int(Double($0) * Double($1)) }
                scales = s.map(Double.init)
            } else {
                out = rc.sizes!
                scales = zip(out, rc.x).map { Double($0) / Double($1) }
            }
            let want = referenceResize(x, out: out, scales: scales, linear: rc.linear, coord: rc.coord, nearest: rc.nearest)
            var attrs = [attr("mode", rc.linear ? "linear" : "nearest"), attr("coordinate_transformation_mode", rc.coord)]
            if !rc.linear { attrs.append(attr("nearest_mode", rc.nearest)) }
            let inputs: [NodeInput] = [.fed(x), .omitted,
                                       try rc.scales.map { .constant(try HostTensor(shape: [4], floats: $0)) } ?? .omitted,
                                       try rc.sizes.map { .constant(try HostTensor(shape: [4], int64s: $0.map(Int64.init))) } ?? .omitted]
            let got = try runNode("Resize", attrs, inputs: inputs, opset: 13)[0]
            assertClose(got, want, shape: out, rtol: 1e-4, atol: 1e-5, "Resize \(rc)")
        }
    }

    func testUpsampleAndLegacyResize() throws {
        var rng = TestRandom(5)
        let x = try rng.tensor([1, 2, 3, 4])
        let xv = x.floats
        // Upsample-7 (scales attribute), Upsample-9 and Resize-10 (scales input): asymmetric, floor.
        var want: [Float] = []
        for p in 0..<2 { for i in 0..<6 { for j in 0..<10 { want.append(xv[p * 12 + (i / 2) * 4 + Int(Double(j) / 2.5)]) } } }
        let up7 = try runNode("Upsample", [attr("scales", [Float(1), 1, 2, 2.5])], inputs: [.fed(x)], opset: 7)[0]
        assertClose(up7, want, shape: [1, 2, 6, 10], "Upsample-7")
        let scales = try HostTensor(shape: [4], floats: [1, 1, 2, 2.5])
        assertClose(try runNode("Upsample", inputs: [.fed(x), .constant(scales)], opset: 9)[0], want, shape: [1, 2, 6, 10], "Upsample-9")
        assertClose(try runNode("Resize", inputs: [.fed(x), .constant(scales)], opset: 10)[0], want, shape: [1, 2, 6, 10], "Resize-10")
        // Cubic and antialias are computed; an unknown mode is refused as unsupported.
        XCTAssertThrowsError(try runNode("Resize", [attr("mode", "bicubic")], inputs: [.fed(x), .omitted, .constant(scales)], opset: 13)) { e in
            XCTAssertEqual((e as? EngineError)?.kind, .unsupported)
        }
    }
}
