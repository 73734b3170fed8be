import Engine
import Foundation
import OnnxIO

/// Turns a training graph into steps: shapes for one batch size, parameters by role, in-place decisions,
/// and which activations need gradients. Every node it cannot train is listed in one error.
struct ProgramCompiler {
    let graph: TrainingGraph
    let batch: Int
    let parameters: ParameterStore
    var steps: [Step] = []
    var values: [ValueSlot] = []
    var valueIndex: [String: Int] = [:]
    var inputValue = 0
    var outputValue = 0
    private var constants: [String: Tensor] = [:]
    private var problems: [String] = []
    /// How many nodes (and graph outputs) read each value, over the whole graph.
    private var readerCount: [String: Int] = [:]
    /// Steps that keep values from forward to backward (BatchNormalization's mean and invStd, L2 norms), in step order.
    private var savedCount = 0
    /// Zero Pads read only by a Conv: the Conv reads the Pad's input with the pads added to its own, so the padded
    /// copy is never made (forward) nor cropped back (backward). Keyed by the Pad's output name.
    private var foldedPads: [String: (source: String, pads: [Int])] = [:]
    /// Op types of the nodes reading each value.
    private var readerOps: [String: [String]] = [:]

    init(graph: TrainingGraph, batch: Int, parameters: ParameterStore) {
        self.graph = graph
        self.batch = batch
        self.parameters = parameters
        constants = Dictionary(graph.model.graph.initializers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    mutating func compile() throws {
        let g = graph.model.graph
        // 2^20 images keep every activation size far from Int overflow; the memory check follows in TrainingProgram.
        guard (1...(1 << 20)).contains(batch) else { throw TrainingError("the batch size must be between 1 and 1048576 (got \(batch))") }
        let inputs = g.inputs.filter { constants[$0.name] == nil }
        guard inputs.count == 1, let input = inputs.first, let dims = input.type?.shape, dims.count == 4,
              let h = dims[1].fixedSize, let w = dims[2].fixedSize, let c = dims[3].fixedSize else {
            throw TrainingError("a training graph has one image input [N, H, W, C] with fixed H, W and C")
        }
        guard g.outputs.count == 1 else { throw TrainingError("a training graph has one output (the embeddings); this one has \(g.outputs.count)") }
        inputValue = addValue(input.name, [batch, h, w, c])
        for node in g.nodes {
            for name in node.inputs where !name.isEmpty {
                readerCount[name, default: 0] += 1
                readerOps[name, default: []].append(node.opType)
            }
        }
        for output in g.outputs { readerCount[output.name, default: 0] += 1 }
        for node in g.nodes {
            let known = problems.count
            compile(node)
            // Keep going past an unsupported node (its output takes its input's shape) so one error lists them all.
            if problems.count > known, valueIndex[node.outputs.first ?? ""] == nil, let out = node.outputs.first, !out.isEmpty {
                let known = node.inputs.compactMap { valueIndex[$0] }
                let shape = known.first.map { values[$0].shape } ?? [batch]
                _ = addValue(out, shape)
            }
        }
        guard problems.isEmpty else {
            throw TrainingError("cannot train this graph; \(problems.count) node(s) unsupported:\n  " + problems.joined(separator: "\n  "))
        }
        guard let out = valueIndex[g.outputs[0].name], values[out].shape.count == 2 else {
            throw TrainingError("the output '\(g.outputs[0].name)' must be computed by the graph as [N, D]")
        }
        outputValue = out
        markGradients()
    }

    private mutating func addValue(_ name: String, _ shape: [Int], aliasOf: Int? = nil) -> Int {
        values.append(ValueSlot(name: name, shape: shape, aliasOf: aliasOf))
        valueIndex[name] = values.count - 1
        return values.count - 1
    }

    private func int(_ node: Node, _ name: String, _ fallback: Int) -> Int {
        if case .int(let v)? = node.attribute(name) { return Int(v) }
        return fallback
    }
    private func ints(_ node: Node, _ name: String) -> [Int]? {
        if case .ints(let v)? = node.attribute(name) { return v.map { Int($0) } }
        return nil
    }
    private func float(_ node: Node, _ name: String, _ fallback: Float) -> Float {
        if case .float(let v)? = node.attribute(name) { return v }
        return fallback
    }
    private func string(_ node: Node, _ name: String) -> String? {
        if case .string(let v)? = node.attribute(name) { return String(decoding: v, as: UTF8.self) }
        return nil
    }

    private mutating func compile(_ node: Node) {
        func refuse(_ why: String) { problems.append("\(node.label): \(why)") }
        func param(_ i: Int) -> Int? {
            guard i < node.inputs.count, let slot = parameters.slot(node.inputs[i]) else { return nil }
            return slot
        }
        guard node.domain.isEmpty || node.domain == "ai.onnx" else { return refuse("domain '\(node.domain)' is not supported") }
        guard node.outputs.count >= 1, !node.outputs[0].isEmpty else { return refuse("no output") }
        // A Conv reading a folded Pad reads the Pad's input instead (its pads are added below).
        let folded = node.opType == "Conv" ? node.inputs.first.flatMap { foldedPads[$0] } : nil
        let inputs = folded.map { [$0.source] + node.inputs.dropFirst() } ?? node.inputs
        let activations = inputs.filter { !$0.isEmpty && constants[$0] == nil }
        let x = activations.compactMap { valueIndex[$0] }
        guard x.count == activations.count else { return refuse("an input is not computed before this node") }
        guard let first = x.first else { return refuse("no activation input") }
        let s = values[first].shape
        var kind: StepKind
        var shape: [Int]
        var alias: Int?
        switch node.opType {
        case "Transpose":
            guard ints(node, "perm") == [0, 3, 1, 2], first == inputValue else {
                return refuse("only the NHWC → NCHW Transpose (perm [0,3,1,2]) of the image input is supported")
            }
            kind = .toChannelsFirst(height: s[1], width: s[2], channels: s[3])
            shape = [s[0], s[3], s[1], s[2]]
        case "Resize", "Upsample":
            let scalesName = node.opType == "Upsample" ? (node.inputs.count > 1 ? node.inputs[1] : "") : (node.inputs.count > 2 ? node.inputs[2] : "")
            guard let scales = constants[scalesName]?.elements(as: Float.self), scales.count == 4, scales[0] == 1, scales[1] == 1,
                  scales[2] >= 1, scales[3] >= 1, scales[2] == scales[2].rounded(), scales[3] == scales[3].rounded(),
                  (string(node, "mode") ?? "nearest") == "nearest", s.count == 4 else {
                return refuse("only nearest upsampling of H and W by constant integer scales is supported")
            }
            let fh = Int(scales[2]), fw = Int(scales[3])
            kind = .upsample(factorH: fh, factorW: fw)
            shape = [s[0], s[1], s[2] * fh, s[3] * fw]
        case "Pad":
            guard node.inputs.count > 1, let p = constants[node.inputs[1]]?.elements(as: Int64.self).map({ Int($0) }), p.count == 8,
                  p[0] == 0, p[1] == 0, p[4] == 0, p[5] == 0, p.allSatisfy({ $0 >= 0 }), (string(node, "mode") ?? "constant") == "constant",
                  node.inputs.count < 3 || node.inputs[2].isEmpty || constants[node.inputs[2]]?.elements(as: Float.self) == [0] else {
                return refuse("only zero padding of H and W (non-negative constant pads) is supported")
            }
            if readerOps[node.outputs[0]] == ["Conv"], !graph.model.graph.outputs.contains(where: { $0.name == node.outputs[0] }) {
                foldedPads[node.outputs[0]] = (node.inputs[0], [p[2], p[3], p[6], p[7]])
                return
            }
            kind = .pad([p[2], p[3], p[6], p[7]])
            shape = [s[0], s[1], s[2] + p[2] + p[6], s[3] + p[3] + p[7]]
        case "Conv":
            guard let w = param(1), node.inputs.count < 3 || node.inputs[2].isEmpty else {
                return refuse("needs a weight initializer and no bias")
            }
            let ws = parameters.infos[w].shape, group = int(node, "group", 1)
            let strides = ints(node, "strides") ?? [1, 1]
            var pads = ints(node, "pads") ?? [0, 0, 0, 0]
            if let extra = folded?.pads, pads.count == 4 { pads = zip(pads, extra).map { $0 + $1 } }
            guard s.count == 4, ws.count == 4, ints(node, "dilations").map({ $0.allSatisfy { $0 == 1 } }) ?? true,
                  string(node, "auto_pad").map({ $0 == "NOTSET" }) ?? true, strides.count == 2, pads.count == 4,
                  group >= 1, s[1] % group == 0, ws[0] % group == 0, ws[1] * group == s[1] else {
                return refuse("only 2-D convolutions without dilation or auto_pad, with matching channels, are supported")
            }
            let shape2 = Conv2DShape(batch: s[0], inChannels: s[1], height: s[2], width: s[3], outChannels: ws[0], kernelH: ws[2],
                                     kernelW: ws[3], strideH: strides[0], strideW: strides[1], group: group, padTop: pads[0],
                                     padLeft: pads[1], padBottom: pads[2], padRight: pads[3])
            guard shape2.outHeight >= 1, shape2.outWidth >= 1 else { return refuse("the output would be empty") }
            kind = .conv(shape2, weight: w)
            shape = [s[0], ws[0], shape2.outHeight, shape2.outWidth]
        case "BatchNormalization":
            guard let gamma = param(1), let beta = param(2), let mean = param(3), let variance = param(4), s.count >= 2,
                  [gamma, beta, mean, variance].allSatisfy({ parameters.infos[$0].shape == [s[1]] }) else {
                return refuse("needs scale, bias, mean and variance initializers of the channel count")
            }
            let spatial = s.dropFirst(2).reduce(1, *)
            let bn = BatchNormShape(batch: s[0], channels: s[1], spatial: spatial, epsilon: float(node, "epsilon", 1e-5),
                                    momentum: float(node, "momentum", 0.9))
            kind = .batchNorm(bn, gamma: gamma, beta: beta, mean: mean, variance: variance, saved: savedCount, relu6: false)
            savedCount += 1
            shape = s
        case "Clip":
            let lo = node.inputs.count > 1 ? constants[node.inputs[1]]?.elements(as: Float.self) : nil
            let hi = node.inputs.count > 2 ? constants[node.inputs[2]]?.elements(as: Float.self) : nil
            guard lo == [0], hi == [6] else { return refuse("only Clip(0, 6) (ReLU6) is supported") }
            // Over a BatchNormalization output read by this node only, the ReLU6 is fused into the BatchNormalization
            // (one pass fewer each way, no copy kept): the BN step now outputs this node's value.
            if readerCount[node.inputs[0]] == 1, let i = steps.lastIndex(where: { $0.output == first }),
               case let .batchNorm(bn, gamma, beta, mean, variance, saved, false) = steps[i].kind {
                steps[i].kind = .batchNorm(bn, gamma: gamma, beta: beta, mean: mean, variance: variance, saved: saved, relu6: true)
                steps[i].op = "BatchNormalization+Relu6"
                values[first].name = node.outputs[0]
                valueIndex[node.outputs[0]] = first
                return
            }
            kind = .relu6
            shape = s
        case "Add":
            guard x.count == 2, values[x[1]].shape == s else { return refuse("only the Add of two computed values of one shape is supported") }
            kind = .add
            shape = s
        case "GlobalAveragePool":
            guard s.count == 4 else { return refuse("needs a 4-D input") }
            kind = .globalAveragePool
            shape = [s[0], s[1], 1, 1]
        case "Flatten":
            guard int(node, "axis", 1) == 1, s.count >= 2 else { return refuse("only axis 1 is supported") }
            kind = .flatten
            shape = [s[0], s.dropFirst().reduce(1, *)]
            alias = first
        case "LpNormalization":
            guard int(node, "p", 2) == 2, s.count == 2, [1, -1].contains(int(node, "axis", -1)) else {
                return refuse("only the L2 normalisation (p 2) of the rows of an [N, D] value is supported")
            }
            kind = .l2Normalize(saved: savedCount)
            savedCount += 1
            shape = s
        case "Gemm":
            guard let w = param(1), let b = param(2), s.count == 2, int(node, "transA", 0) == 0, int(node, "transB", 0) == 0,
                  float(node, "alpha", 1) == 1, float(node, "beta", 1) == 1,
                  parameters.infos[w].shape.count == 2, parameters.infos[w].shape[0] == s[1],
                  parameters.infos[b].shape == [parameters.infos[w].shape[1]] else {
                return refuse("only Gemm(x, W [in, out], b [out]) without transposes or scaling is supported")
            }
            kind = .dense(weight: w, bias: b)
            shape = [s[0], parameters.infos[w].shape[1]]
        default:
            return refuse("the operator has no training kernel")
        }
        let out = addValue(node.outputs[0], shape, aliasOf: alias)
        steps.append(Step(op: node.opType, kind: kind, inputs: x, output: out))
    }

    /// A value needs a gradient when a parameter influences it: anything computed from a parameter's output.
    private mutating func markGradients() {
        for step in steps {
            let hasParameter: Bool
            switch step.kind {
            case .conv, .batchNorm, .dense: hasParameter = true
            default: hasParameter = false
            }
            values[step.output].requiresGradient = hasParameter || step.inputs.contains { values[$0].requiresGradient }
        }
    }
}
