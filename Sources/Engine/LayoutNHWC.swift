import Foundation
import OnnxIO

/// Gives convolutional networks the NHWC layout inside: every eligible Conv becomes an `NhwcConv`
/// (ConvNHWC.swift), elementwise ops between them stay NHWC, and Transposes appear only at the edges,
/// where an NHWC value meets an op that needs NCHW (or a graph output) and where an NCHW value enters a convolution.
///
///   NHWC value `v`: stored as `v<suffix>`; its NCHW name `v` is produced (by a Transpose) only if something reads it.
///   Conv(2-D, constant weights, group 1 or depthwise, explicit pads, no dilation)  → NhwcConv
///   Relu / Clip / Sigmoid / ... of an NHWC value                                  → the same op, on NHWC
///   Add / Mul / Sub / Div of two values with NHWC forms, one NHWC only (both rank 4: broadcasting is kept) → on NHWC
///   GlobalAveragePool of an NHWC value                                            → NhwcGlobalAveragePool (writes NCHW)
///   MaxPool(2-D, no dilation, no Indices output) of a value with an NHWC form     → NhwcMaxPool
///   Pad (constant pads, all axes) of a value with an NHWC form                     → Pad on NHWC, pads permuted
///   Transpose to NHWC of a value with an NHWC form → that form (readers renamed); Transpose to NCHW of t → no node,
///   t its NHWC form
///   Pad → NhwcConv, NhwcConv → Mul / Add of per-channel constants (GraphOptimizer.optimizeNHWC) → folded into the conv
///   NhwcConv → Add(NHWC), the conv without activation and read once               → the Add fused as the conv's residual
///   NhwcConv(+residual) → Relu / Clip, read once                                  → the clamp fused into the conv
///   NhwcConv → swish or hard-swish as exporters spell them (LayoutNHWC+Activations.swift) → the conv's post activation
enum LayoutNHWC {
    static let unary: Set<String> = ["Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "LeakyRelu", "Tanh", "Elu", "Identity"]
    static let binary: Set<String> = ["Add", "Mul", "Sub", "Div"]
    static let toNHWC: [Int64] = [0, 2, 3, 1]
    static let toNCHW: [Int64] = [0, 3, 1, 2]

    static func rewrite(_ graph: Graph) -> Graph {
        guard let order = try? Session.topologicalOrder(graph) else { return graph }  // a cycle: the planner reports it
        var r = Rewrite(graph)
        for node in order { r.visit(node) }
        for output in graph.outputs {
            if let same = r.alias[output.name] {
                r.nodes.append(Node(name: output.name + "/alias", opType: "Identity", inputs: [same], outputs: [output.name]))
            } else {
                _ = r.nchw(output.name)
            }
        }
        var g = graph
        g.nodes = r.nodes
        g.initializers += r.added
        return fuseIntoConvs(fusePostActivations(GraphOptimizer.optimizeNHWC(g)))
    }

    /// Whether `node` can run as an NhwcConv (its weights constant and well formed).
    static func eligible(_ node: Node, _ initializers: [String: Tensor]) -> Bool {
        guard node.opType == "Conv", node.domain.isEmpty, (2...3).contains(node.inputs.count), node.outputs.count == 1,
              !node.inputs[0].isEmpty, !node.outputs[0].isEmpty,
              let w = initializers[node.inputs[1]], w.dataType == .float, w.dims.count == 4, w.dims.allSatisfy({ $0 > 0 }),
              (try? TensorSize.bytes(w.dims, .float)) == w.data.count else { return false }
        if node.inputs.count == 3 && !node.inputs[2].isEmpty {
            guard let b = initializers[node.inputs[2]], b.dataType == .float, b.dims == [w.dims[0]],
                  b.data.count == w.dims[0] * 4 else { return false }
        }
        func ints(_ name: String) -> [Int64]? { if case .ints(let v)? = node.attribute(name) { return v }; return nil }
        if case .string(let p)? = node.attribute("auto_pad"), String(decoding: p, as: UTF8.self) != "NOTSET" { return false }
        if let d = ints("dilations"), d.contains(where: { $0 != 1 }) { return false }
        if let s = ints("strides"), s.count != 2 { return false }
        if let p = ints("pads"), p.count != 4 { return false }
        var group: Int64 = 1
        if case .int(let v)? = node.attribute("group") { group = v }
        return group == 1 || (group == Int64(w.dims[0]) && w.dims[1] == 1)
    }

    /// A MaxPool NhwcMaxPool can run: 2-D kernel, no dilation (other attributes are checked by the kernel).
    static func poolEligible(_ node: Node) -> Bool {
        guard case .ints(let k)? = node.attribute("kernel_shape"), k.count == 2 else { return false }
        if case .ints(let d)? = node.attribute("dilations"), d.contains(where: { $0 != 1 }) { return false }
        return true
    }

    private struct Rewrite {
        var nodes: [Node] = []
        /// Initializers the rewrite made (permuted Pad pads).
        var added: [Tensor] = []
        /// Outputs of removed Transposes → the value they equal (readers are renamed).
        var alias: [String: String] = [:]
        let initializers: [String: Tensor]
        /// NCHW name → NHWC name, for values that have an NHWC form.
        var nhwcName: [String: String] = [:]
        /// Values whose NCHW form exists (graph inputs, initializers, outputs of NCHW nodes, materialised ones).
        var nchwAvailable: Set<String>
        var taken: Set<String>

        init(_ graph: Graph) {
            initializers = Dictionary(graph.initializers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            nchwAvailable = Set(graph.inputs.map(\.name) + graph.initializers.map(\.name))
            taken = nchwAvailable.union(graph.nodes.flatMap { $0.outputs + $0.inputs })
        }

        mutating func fresh(_ base: String) -> String {
            var name = base + "__nhwc", i = 1
            while taken.contains(name) { i += 1; name = "\(base)__nhwc\(i)" }
            taken.insert(name)
            return name
        }

        func isNHWC(_ v: String) -> Bool { !v.isEmpty && nhwcName[v] != nil && !nchwAvailable.contains(v) }

        /// The NCHW form of `v`, made by a Transpose the first time an NHWC-only value is read as NCHW.
        mutating func nchw(_ v: String) -> String {
            guard isNHWC(v) else { return v }
            nodes.append(Node(name: v + "/to_nchw", opType: "Transpose", inputs: [nhwcName[v]!], outputs: [v],
                              attributes: [Attribute(name: "perm", value: .ints(LayoutNHWC.toNCHW))]))
            nchwAvailable.insert(v)
            return v
        }

        /// The NHWC form of `v`, made by a Transpose the first time an NCHW value enters a convolution.
        mutating func nhwc(_ v: String) -> String {
            if let n = nhwcName[v] { return n }
            let n = fresh(v)
            nodes.append(Node(name: v + "/to_nhwc", opType: "Transpose", inputs: [v], outputs: [n],
                              attributes: [Attribute(name: "perm", value: .ints(LayoutNHWC.toNHWC))]))
            nhwcName[v] = n
            return n
        }

        /// `node` with input `i` and every output renamed to NHWC forms.
        mutating func nhwcNode(_ node: Node, dataInputs: [Int]) -> Node {
            var n = node
            for i in dataInputs { n.inputs[i] = nhwc(node.inputs[i]) }
            n.outputs = node.outputs.map { o in
                guard !o.isEmpty else { return o }
                let name = fresh(o)
                nhwcName[o] = name
                return name
            }
            return n
        }

        /// `node` (a Pad of a value with an NHWC form) on that form: its 8 pads (begins then ends, NCHW axes) reordered
        /// to NHWC, in a new initializer (opset 11+) or the attribute (before); nil when the pads are not constant.
        mutating func nhwcPad(_ node: Node) -> Node? {
            func permuted(_ p: [Int64]) -> [Int64] { [p[0], p[2], p[3], p[1], p[4], p[6], p[7], p[5]] }
            var n: Node
            if node.inputs.count >= 2 {
                guard let t = initializers[node.inputs[1]], t.dataType == .int64, t.dims == [8], t.data.count == 64 else { return nil }
                n = nhwcNode(node, dataInputs: [0])
                let name = fresh(node.inputs[1])
                added.append(Tensor(name: name, int64s: permuted(t.int64s), dims: [8]))
                n.inputs[1] = name
            } else {
                guard case .ints(let p)? = node.attribute("pads"), p.count == 8 else { return nil }
                n = nhwcNode(node, dataInputs: [0])
                n.attributes = node.attributes.map { $0.name == "pads" ? Attribute(name: "pads", value: .ints(permuted(p))) : $0 }
            }
            return n
        }

        mutating func visit(_ original: Node) {
            var node = original
            node.inputs = original.inputs.map { alias[$0] ?? $0 }
            if LayoutNHWC.eligible(node, initializers) {
                var n = nhwcNode(node, dataInputs: [0])
                n.domain = OpRegistry.internalDomain
                n.opType = "NhwcConv"
                nodes.append(n)
                return
            }
            let std = node.domain.isEmpty || node.domain == "ai.onnx"
            // An exporter's own layout Transposes (tf2onnx leaves them around ops it could not move them through):
            // NCHW → NHWC of a value that has an NHWC form is that form; NHWC → NCHW of any tensor has it as NHWC form.
            if std, node.opType == "Transpose", node.inputs.count == 1, node.outputs.count == 1, !node.outputs[0].isEmpty,
               case .ints(let perm)? = node.attribute("perm") {
                if perm == LayoutNHWC.toNHWC, let n = nhwcName[node.inputs[0]] {
                    alias[node.outputs[0]] = n
                    return
                }
                if perm == LayoutNHWC.toNCHW, !node.inputs[0].isEmpty {
                    nhwcName[node.outputs[0]] = node.inputs[0]
                    return
                }
            }
            if std, LayoutNHWC.unary.contains(node.opType), node.outputs.count == 1, isNHWC(node.inputs.first ?? "") {
                nodes.append(nhwcNode(node, dataInputs: [0]))
                return
            }
            // Both inputs have an NHWC form and one has only that: NHWC costs no Transpose at all.
            if std, LayoutNHWC.binary.contains(node.opType), node.inputs.count == 2, node.outputs.count == 1,
               node.inputs.allSatisfy({ nhwcName[$0] != nil }), node.inputs.contains(where: isNHWC) {
                nodes.append(nhwcNode(node, dataInputs: [0, 1]))
                return
            }
            if std, node.opType == "GlobalAveragePool", node.inputs.count == 1, node.outputs.count == 1, nhwcName[node.inputs[0]] != nil {
                var n = node
                n.inputs = [nhwcName[node.inputs[0]]!]
                n.domain = OpRegistry.internalDomain
                n.opType = "NhwcGlobalAveragePool"
                nodes.append(n)
                for o in n.outputs { nchwAvailable.insert(o) }
                return
            }
            if std, node.opType == "MaxPool", node.inputs.count == 1, node.outputs.count == 1 || node.outputs.dropFirst().allSatisfy(\.isEmpty),
               nhwcName[node.inputs[0]] != nil, LayoutNHWC.poolEligible(node) {
                var n = nhwcNode(node, dataInputs: [0])
                n.outputs = [n.outputs[0]]
                n.domain = OpRegistry.internalDomain
                n.opType = "NhwcMaxPool"
                nodes.append(n)
                return
            }
            if std, node.opType == "Pad", (1...3).contains(node.inputs.count), node.outputs.count == 1, nhwcName[node.inputs[0]] != nil,
               let padded = nhwcPad(node) {
                nodes.append(padded)
                return
            }
            var n = node
            n.inputs = node.inputs.map { nchw($0) }
            nodes.append(n)
            for o in node.outputs where !o.isEmpty { nchwAvailable.insert(o) }
        }
    }

    /// Residual Adds and then activations folded into the NhwcConv before them (see the table above).
    static func fuseIntoConvs(_ graph: Graph) -> Graph {
        var g = graph
        var changed = true
        while changed {
            changed = false
            var uses: [String: Int] = [:]
            for n in g.nodes { for i in n.inputs where !i.isEmpty { uses[i, default: 0] += 1 } }
            for o in g.outputs { uses[o.name, default: 0] += 1 }
            var producer: [String: Int] = [:]
            for (i, n) in g.nodes.enumerated() { for o in n.outputs where !o.isEmpty { producer[o] = i } }
            for (a, op) in g.nodes.enumerated() where op.domain.isEmpty && op.outputs.count == 1 {
                let isAdd = op.opType == "Add" && op.inputs.count == 2
                let isClamp = op.opType == "Relu" || op.opType == "Clip"
                guard isAdd || isClamp else { continue }
                for (k, input) in op.inputs.enumerated() where isAdd || k == 0 {
                    guard uses[input] == 1, let c = producer[input], g.nodes[c].opType == "NhwcConv",
                          g.nodes[c].domain == OpRegistry.internalDomain, g.nodes[c].attribute(FusedAttributes.clipMin) == nil,
                          g.nodes[c].attribute(FusedAttributes.activation) == nil else { continue }
                    var conv = g.nodes[c]
                    if isAdd {
                        guard conv.inputs.count <= 3 else { continue }
                        let other = op.inputs[1 - k]
                        guard other != input, other != conv.outputs[0] else { continue }
                        while conv.inputs.count < 3 { conv.inputs.append("") }
                        conv.inputs.append(other)
                    } else {
                        guard let (lo, hi) = clampBounds(op, g) else { continue }
                        conv.attributes.append(Attribute(name: FusedAttributes.clipMin, value: .float(lo)))
                        conv.attributes.append(Attribute(name: FusedAttributes.clipMax, value: .float(hi)))
                    }
                    conv.outputs = op.outputs
                    g.nodes[c] = conv
                    g.nodes.remove(at: a)
                    changed = true
                    break
                }
                if changed { break }
            }
        }
        return g
    }

    /// The bounds of a Relu or a Clip whose bounds are attributes or scalar constants.
    static func clampBounds(_ node: Node, _ g: Graph) -> (Float, Float)? {
        if node.opType == "Relu" { return node.inputs.count == 1 ? (0, .infinity) : nil }
        var lo = -Float.infinity, hi = Float.infinity
        if case .float(let v)? = node.attribute("min") { lo = v }
        if case .float(let v)? = node.attribute("max") { hi = v }
        for (i, name) in node.inputs.enumerated().dropFirst() where !name.isEmpty {
            guard let t = g.initializers.first(where: { $0.name == name }), t.dataType == .float, t.data.count == 4 else { return nil }
            if i == 1 { lo = t.floats[0] } else { hi = t.floats[0] }
        }
        return (lo, hi)
    }
}
