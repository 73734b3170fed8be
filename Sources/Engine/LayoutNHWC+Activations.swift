import Foundation
import OnnxIO

extension LayoutNHWC {
    /// Swish and hard-swish after an NhwcConv, spelt out the ways exporters write them, become the conv's post
    /// activation (`FusedAttributes.activation`), applied to each output block while it is in cache instead of two to
    /// four more passes over memory:
    ///   y = NhwcConv(..); Mul(y, Sigmoid(y))                                        → swish
    ///   y = NhwcConv(..); HardSwish(y)  or  Mul(y, HardSigmoid(y), alpha 1/6, beta 1/2) → hardswish
    ///   y = NhwcConv(..); Mul(y, Mul(Clip(Add(y, 3), 0, 6), 1/6))  (or Div(.., 6))  → hardswish (tf2onnx's)
    /// Every value in between is read once, y only by the pattern, and the conv has no clamp yet (it runs first).
    static func fusePostActivations(_ graph: Graph) -> Graph {
        var g = graph
        let initializers = Dictionary(graph.initializers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        func scalar(_ name: String) -> Float? {
            guard let t = initializers[name], t.dataType == .float, t.data.count == 4, t.dims.reduce(1, *) == 1 else { return nil }
            return t.floats[0]
        }
        func near(_ v: Float?, _ want: Float) -> Bool { v.map { abs($0 - want) <= 1e-6 * abs(want) } ?? false }
        var changed = true
        while changed {
            changed = false
            var readers: [String: [Int]] = [:]
            for (i, n) in g.nodes.enumerated() { for input in Set(n.inputs) where !input.isEmpty { readers[input, default: []].append(i) } }
            let outputs = Set(g.outputs.map(\.name))
            func soleReader(_ v: String) -> Node? {
                guard !outputs.contains(v), let r = readers[v], r.count == 1, g.nodes[r[0]].domain.isEmpty else { return nil }
                return g.nodes[r[0]]
            }
            func other(_ n: Node, _ v: String) -> String? {
                guard n.inputs.count == 2, n.outputs.count == 1 else { return nil }
                return n.inputs[0] == v ? n.inputs[1] : n.inputs[1] == v ? n.inputs[0] : nil
            }
            for (c, conv) in g.nodes.enumerated() where conv.opType == "NhwcConv" && conv.domain == OpRegistry.internalDomain {
                guard conv.attribute(FusedAttributes.clipMin) == nil, conv.attribute(FusedAttributes.activation) == nil,
                      let y = conv.outputs.first, !outputs.contains(y), let r = readers[y] else { continue }
                let users = r.map { g.nodes[$0] }
                guard users.allSatisfy({ $0.domain.isEmpty && $0.outputs.count == 1 }) else { continue }
                var kind = "", removed: [Node] = [], result = ""
                if users.count == 1, users[0].opType == "HardSwish" {
                    (kind, removed, result) = ("hardswish", users, users[0].outputs[0])
                } else if users.count == 2, let mul = users.first(where: { $0.opType == "Mul" }), let t = other(mul, y), t != y,
                          let first = users.first(where: { $0 != mul }) {
                    // `first` starts the chain that ends in t.
                    var chain = [first], end = first
                    switch first.opType {
                    case "Sigmoid": kind = "swish"
                    case "HardSigmoid":
                        var alpha: Float = 0.2, beta: Float = 0.5
                        if case .float(let v)? = first.attribute("alpha") { alpha = v }
                        if case .float(let v)? = first.attribute("beta") { beta = v }
                        if near(alpha, 1 / 6) && near(beta, 0.5) { kind = "hardswish" }
                    case "Add":
                        guard let three = other(first, y), near(scalar(three), 3), let clip = soleReader(first.outputs[0]), clip.opType == "Clip",
                              clip.inputs.first == first.outputs[0], let (lo, hi) = clampBounds(clip, g), lo == 0, hi == 6,
                              let scale = soleReader(clip.outputs[0]), let k = other(scale, clip.outputs[0]),
                              (scale.opType == "Mul" && near(scalar(k), 1 / 6)) || (scale.opType == "Div" && scale.inputs[1] == k && near(scalar(k), 6))
                        else { break }
                        chain += [clip, scale]
                        end = scale
                        kind = "hardswish"
                    default: break
                    }
                    guard !kind.isEmpty, end.outputs[0] == t, chain.allSatisfy({ soleReader($0.outputs[0]) != nil }) else { continue }
                    (removed, result) = (chain + [mul], mul.outputs[0])
                }
                guard !kind.isEmpty else { continue }
                var fused = conv
                fused.attributes.append(Attribute(name: FusedAttributes.activation, value: .string(Data(kind.utf8))))
                fused.outputs = [result]
                g.nodes[c] = fused
                g.nodes.removeAll { node in removed.contains(node) }
                changed = true
                break
            }
        }
        return g
    }
}
