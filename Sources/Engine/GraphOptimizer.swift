import Foundation
import OnnxIO

/// Graph rewrites applied before planning. Each keeps the graph's meaning exactly (up to float
/// rounding in folded weights) and only fires when the pattern's intermediate values are used once:
///   Pad(constant 0, spatial) → Conv            pads merged into the Conv
///   Conv → Mul(per-channel constant)           scale folded into W and B
///   Conv → Add(per-channel constant)           shift folded into B
///   Conv → BatchNormalization (inference)      scale and shift folded into W and B (opset ≥ 9; a trained
///                                              model in Kizuki's training form keeps BN as nodes)
///   Conv → Clip / Relu                         activation applied in the Conv's epilogue
/// The fused activation travels as internal attributes on the Conv node (`FusedAttributes`).
/// After the NHWC rewrite, `optimizeNHWC` folds the same pads and per-channel constants into NhwcConv, whose
/// channels are the last axis (exporters such as tf2onnx leave a convolution's bias and BatchNormalization as
/// Add/Mul on its NHWC output, and a stride-2 convolution's Pad on its NHWC input).
enum GraphOptimizer {
    /// `opset`: the default domain's; BatchNormalization folds only where its inference meaning is settled (≥ 9).
    static func optimize(_ graph: Graph, opset: Int = 13) -> Graph {
        var g = Rewriter(graph)
        g.foldBatchNorms = opset >= 9
        g.foldPadsIntoConv()
        g.foldAffineIntoConv()
        g.fuseActivations()
        return g.graph
    }

    static func optimizeNHWC(_ graph: Graph) -> Graph {
        var g = Rewriter(graph, layout: .nhwc)
        g.foldPadsIntoConv()
        g.foldAffineIntoConv()
        return g.graph
    }
}

/// Internal attribute names; the leading "_kizuki." cannot clash with ONNX attributes.
enum FusedAttributes {
    static let clipMin = "_kizuki.clip_min"
    static let clipMax = "_kizuki.clip_max"
    /// An activation NhwcConv applies after the clamp, to each block of output while it is in cache: "swish"
    /// (x · sigmoid(x)) or "hardswish" (LayoutNHWC+Activations.swift).
    static let activation = "_kizuki.activation"
}

private struct Rewriter {
    /// Which convolutions the passes fold into: ONNX's Conv (NCHW, channels on axis 1) or the engine's NhwcConv
    /// (channels on the last axis).
    enum Layout { case nchw, nhwc }

    var graph: Graph
    let layout: Layout
    var initializers: [String: Int] = [:]
    /// Whether `foldAffineIntoConv` also folds inference BatchNormalizations (NCHW Convs only).
    var foldBatchNorms = false

    init(_ graph: Graph, layout: Layout = .nchw) {
        self.graph = graph
        self.layout = layout
        for (i, t) in graph.initializers.enumerated() { initializers[t.name] = i }
    }

    /// How many node inputs (and graph outputs) read each value.
    func useCounts() -> [String: Int] {
        var uses: [String: Int] = [:]
        for n in graph.nodes { for i in n.inputs where !i.isEmpty { uses[i, default: 0] += 1 } }
        for o in graph.outputs { uses[o.name, default: 0] += 1 }
        return uses
    }

    func constant(_ name: String) -> Tensor? {
        initializers[name].map { graph.initializers[$0] }
    }

    /// A constant of `type` whose data holds exactly what its dims call for (else it is left to the kernels to report).
    func wellFormed(_ name: String, _ type: DataType) -> Tensor? {
        guard let t = constant(name), t.dataType == type, (try? TensorSize.bytes(t.dims, type)) == t.data.count else { return nil }
        return t
    }

    func floats(_ name: String) -> [Float]? { wellFormed(name, .float)?.floats }

    func ints(_ name: String) -> [Int]? { wellFormed(name, .int64)?.int64s.map { Int($0) } }

    mutating func setInitializer(_ tensor: Tensor) {
        if let i = initializers[tensor.name] { graph.initializers[i] = tensor } else {
            initializers[tensor.name] = graph.initializers.count
            graph.initializers.append(tensor)
        }
    }

    /// The node that reads `value` (the only one, else nil) and its index.
    func soleConsumer(of value: String, _ uses: [String: Int]) -> Int? {
        guard uses[value] == 1 else { return nil }
        return graph.nodes.firstIndex { $0.inputs.contains(value) }
    }

    /// Rewrites only touch nodes whose input and output counts are valid for their op (and whose first
    /// output is named): a malformed node is left as it is, for its kernel to report.
    static func hasArity(_ n: Node, inputs: ClosedRange<Int>, outputs: ClosedRange<Int> = 1...1) -> Bool {
        inputs.contains(n.inputs.count) && outputs.contains(n.outputs.count) && !n.outputs[0].isEmpty
    }

    /// A convolution of this pass's layout without a residual input (the fusions below go before a residual's).
    func isDefaultConv(_ n: Node) -> Bool {
        switch layout {
        case .nchw: return n.opType == "Conv" && n.domain.isEmpty && Rewriter.hasArity(n, inputs: 2...3)
        case .nhwc:
            return n.opType == "NhwcConv" && n.domain == OpRegistry.internalDomain && Rewriter.hasArity(n, inputs: 2...3)
                && n.attribute(FusedAttributes.clipMin) == nil
        }
    }

    /// The first spatial axis of a convolution's input in this layout (N, C, spatial... or N, spatial..., C).
    var firstSpatialAxis: Int { layout == .nchw ? 2 : 1 }

    // MARK: Pad → Conv

    mutating func foldPadsIntoConv() {
        var uses = useCounts()
        var removed = Set<Int>()
        for (p, pad) in graph.nodes.enumerated() where pad.opType == "Pad" && pad.domain.isEmpty && Rewriter.hasArity(pad, inputs: 1...4) {
            guard let c = soleConsumer(of: pad.outputs[0], uses), isDefaultConv(graph.nodes[c]),
                  graph.nodes[c].inputs.first == pad.outputs[0] else { continue }
            var conv = graph.nodes[c]
            if case .string(let mode)? = pad.attribute("mode"), String(decoding: mode, as: UTF8.self) != "constant" { continue }
            if case .string(let autoPad)? = conv.attribute("auto_pad"), String(decoding: autoPad, as: UTF8.self) != "NOTSET" { continue }
            // Pads come from the attribute (opset < 11) or a constant input; the fill value must be 0.
            var pads: [Int]
            if case .ints(let v)? = pad.attribute("pads") { pads = v.map { Int($0) } }
            else if pad.inputs.count > 1, let v = ints(pad.inputs[1]) { pads = v } else { continue }
            if case .float(let v)? = pad.attribute("value"), v != 0 { continue }
            if pad.inputs.count > 2, !pad.inputs[2].isEmpty { guard let v = floats(pad.inputs[2]), v.allSatisfy({ $0 == 0 }) else { continue } }
            if pad.inputs.count > 3, !pad.inputs[3].isEmpty { continue }  // axes: keep it simple
            let rank = pads.count / 2
            guard pads.count % 2 == 0, rank >= 3, pads.allSatisfy({ $0 >= 0 }) else { continue }
            // Only spatial axes may be padded: N and C (axes 0 and 1, or 0 and rank − 1) not.
            let s0 = firstSpatialAxis, spatial = rank - 2
            let spatialAxes = s0..<(s0 + spatial)
            guard (0..<rank).allSatisfy({ spatialAxes.contains($0) || (pads[$0] == 0 && pads[rank + $0] == 0) }) else { continue }
            var convPads = [Int](repeating: 0, count: 2 * spatial)
            if case .ints(let v)? = conv.attribute("pads") { convPads = v.map { Int($0) } }
            guard convPads.count == 2 * spatial else { continue }
            for i in 0..<spatial {
                convPads[i] += pads[s0 + i]
                convPads[spatial + i] += pads[rank + s0 + i]
            }
            conv.attributes.removeAll { $0.name == "pads" || $0.name == "auto_pad" }
            conv.attributes.append(Attribute(name: "pads", value: .ints(convPads.map(Int64.init))))
            conv.inputs[0] = pad.inputs[0]
            graph.nodes[c] = conv
            removed.insert(p)
            uses[pad.outputs[0]] = 0
        }
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    // MARK: Conv → Mul / Add with per-channel constants

    /// Per-output-channel values of a constant that broadcasts as [M,1,...] against [N,M,...] (or a scalar);
    /// in NHWC, as [M], [1,M], ... [1,..,1,M] against [N,...,M].
    func perChannel(_ name: String, channels m: Int, rank: Int) -> [Float]? {
        guard let t = wellFormed(name, .float) else { return nil }
        let v = t.floats
        // A scalar, or a tensor of one value of rank at most the output's, broadcasts to every channel.
        if v.count == 1 && t.dims.count <= rank { return [Float](repeating: v[0], count: m) }
        guard v.count == m else { return nil }
        if layout == .nhwc {
            return t.dims.count <= rank && t.dims.last == m && t.dims.dropLast().allSatisfy({ $0 == 1 }) ? v : nil
        }
        // Shapes [M,1,..,1] (rank-1 dims) or [1,M,1,..] (rank dims) broadcast per channel.
        let dims = t.dims
        let ok = (dims.count == rank - 1 && dims[0] == m && dims.dropFirst().allSatisfy { $0 == 1 })
            || (dims.count == rank && dims[0] == 1 && dims[1] == m && dims.dropFirst(2).allSatisfy { $0 == 1 })
        return ok ? v : nil
    }

    mutating func foldAffineIntoConv() {
        var changed = true
        while changed {
            changed = false
            let uses = useCounts()
            for c in graph.nodes.indices where isDefaultConv(graph.nodes[c]) {
                let conv = graph.nodes[c]
                // Weights whose data matches their dims, with at least one output channel.
                guard let wName = conv.inputs.dropFirst().first, let w = wellFormed(wName, .float), w.dims.count >= 3, w.dims[0] > 0,
                      let next = soleConsumer(of: conv.outputs[0], uses), graph.nodes[next].domain.isEmpty else { continue }
                let op = graph.nodes[next]
                let m = w.dims[0]
                // y = x · scale + shift per output channel (nil scale: 1).
                let scale: [Float]?, shift: [Float]?
                switch op.opType {
                case "Mul", "Add":
                    guard Rewriter.hasArity(op, inputs: 2...2) else { continue }
                    let other = op.inputs[0] == conv.outputs[0] ? op.inputs[1] : op.inputs[0]
                    guard other != conv.outputs[0], let values = perChannel(other, channels: m, rank: w.dims.count) else { continue }
                    (scale, shift) = op.opType == "Mul" ? (values, nil) : (nil, values)
                case "BatchNormalization":
                    guard let folded = batchNormAffine(op, channels: m) else { continue }
                    (scale, shift) = (folded.scale, folded.shift)
                default:
                    continue
                }
                var bias = conv.inputs.count > 2 && !conv.inputs[2].isEmpty ? floats(conv.inputs[2]) : [Float](repeating: 0, count: m)
                guard bias?.count == m else { continue }
                var newConv = conv
                if let scale {
                    var weights = w.floats
                    let per = weights.count / m
                    for o in 0..<m { for j in 0..<per { weights[o * per + j] *= scale[o] } }
                    let wNew = "\(wName)/kizuki_scaled_\(c)"
                    setInitializer(Tensor(name: wNew, floats: weights, dims: w.dims))
                    newConv.inputs[1] = wNew
                    for o in 0..<m { bias![o] *= scale[o] }
                }
                if let shift { for o in 0..<m { bias![o] += shift[o] } }
                let bName = "\(conv.name.isEmpty ? conv.outputs[0] : conv.name)/kizuki_bias_\(c)_\(op.opType)"
                setInitializer(Tensor(name: bName, floats: bias!, dims: [m]))
                if newConv.inputs.count < 3 { newConv.inputs.append(bName) } else { newConv.inputs[2] = bName }
                newConv.outputs[0] = op.outputs[0]
                graph.nodes[c] = newConv
                graph.nodes.remove(at: next)
                changed = true
                break
            }
        }
    }

    /// An inference BatchNormalization over `channels` as y = x · scale + shift: scale = gamma / sqrt(var + epsilon),
    /// shift = beta − mean · scale (in double, rounded once). Nil unless it is the plain inference form (NCHW pass,
    /// opset ≥ 9, one output, no training_mode, float constants of the channel count).
    func batchNormAffine(_ bn: Node, channels m: Int) -> (scale: [Float], shift: [Float])? {
        guard foldBatchNorms, layout == .nchw, Rewriter.hasArity(bn, inputs: 5...5) else { return nil }
        if case .int(let mode)? = bn.attribute("training_mode"), mode != 0 { return nil }
        let epsilon: Double
        switch bn.attribute("epsilon") {
        case nil: epsilon = 1e-5
        case .float(let e)?: epsilon = Double(e)
        default: return nil
        }
        guard let gamma = floats(bn.inputs[1]), let beta = floats(bn.inputs[2]), let mean = floats(bn.inputs[3]),
              let variance = floats(bn.inputs[4]), [gamma, beta, mean, variance].allSatisfy({ $0.count == m }) else { return nil }
        var scale = [Float](repeating: 0, count: m), shift = [Float](repeating: 0, count: m)
        for c in 0..<m {
            let s = Double(gamma[c]) / (Double(variance[c]) + epsilon).squareRoot()
            scale[c] = Float(s)
            shift[c] = Float(Double(beta[c]) - Double(mean[c]) * s)
        }
        return (scale, shift)
    }

    // MARK: Conv → Clip / Relu

    mutating func fuseActivations() {
        let uses = useCounts()
        var removed = Set<Int>()
        for c in graph.nodes.indices where isDefaultConv(graph.nodes[c]) {
            guard let a = soleConsumer(of: graph.nodes[c].outputs[0], uses) else { continue }
            let act = graph.nodes[a]
            guard act.domain.isEmpty, Rewriter.hasArity(act, inputs: act.opType == "Relu" ? 1...1 : 1...3), act.inputs.first == graph.nodes[c].outputs[0] else { continue }
            var lo = -Float.infinity, hi = Float.infinity
            switch act.opType {
            case "Relu": lo = 0
            case "Clip":
                if case .float(let v)? = act.attribute("min") { lo = v }
                if case .float(let v)? = act.attribute("max") { hi = v }
                if act.inputs.count > 1, !act.inputs[1].isEmpty {
                    guard let v = floats(act.inputs[1]), v.count == 1 else { continue }
                    lo = v[0]
                }
                if act.inputs.count > 2, !act.inputs[2].isEmpty {
                    guard let v = floats(act.inputs[2]), v.count == 1 else { continue }
                    hi = v[0]
                }
            default: continue
            }
            var conv = graph.nodes[c]
            conv.attributes.append(Attribute(name: FusedAttributes.clipMin, value: .float(lo)))
            conv.attributes.append(Attribute(name: FusedAttributes.clipMax, value: .float(hi)))
            conv.outputs[0] = act.outputs[0]
            graph.nodes[c] = conv
            removed.insert(a)
        }
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }
}
