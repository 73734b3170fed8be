import Engine
import Foundation
import OnnxIO

/// Structure-aware mutations of a decoded model: the values a hostile or buggy exporter could
/// write in well-formed protobuf (astronomical or negative sizes, wrong counts of inputs and
/// outputs, other op types and element types, free dims), so the input gets past decoding and
/// reaches validation, session building, planning and kernels.
struct ModelMutator {
    /// Op types to swap in: every operator the engine has a kernel for, and one it does not know.
    let opTypes = OpRegistry.supportedOps + ["NotAnOp"]
    static let attributeNames = ["axis", "axes", "pads", "kernel_shape", "strides", "dilations", "group", "perm",
                                 "value", "mode", "shape", "repeats", "scales", "sizes", "keepdims", "to",
                                 "auto_pad", "output_padding", "output_shape", "allowzero", "coordinate_transformation_mode"]

    func mutate(_ model: Model, _ rng: inout TrialRandom) -> Model {
        var m = model
        for _ in 0..<rng.int(in: 1...3) { mutateOnce(&m, &rng) }
        return m
    }

    func mutateOnce(_ m: inout Model, _ rng: inout TrialRandom) {
        switch rng.below(10) {
        case 0: mutateInitializer(&m.graph, &rng)
        case 1, 2: mutateValueInfo(&m.graph, &rng)
        case 3, 4: mutateAttribute(&m.graph, &rng)
        case 5: mutateNodeWiring(&m.graph, &rng)
        case 6:
            guard !m.graph.nodes.isEmpty else { return }
            m.graph.nodes[rng.below(m.graph.nodes.count)].opType = rng.pick(opTypes)
        case 7: mutateGraphLists(&m.graph, &rng)
        case 8: freezeInput(&m.graph, &rng)
        default:
            if rng.chance(0.5), !m.opsetImports.isEmpty {
                m.opsetImports[0].version = rng.pick([0, 1, 6, 7, 9, 10, 11, 13, 18, 19, 21, 99, Int64.max, -1])
            } else {
                m.irVersion = rng.pick([0, 3, 8, 11, 99, -1])
            }
        }
    }

    /// Dims that disagree with the data, data that is cut or grown, another element type, or interesting values.
    func mutateInitializer(_ g: inout Graph, _ rng: inout TrialRandom) {
        guard !g.initializers.isEmpty else { return }
        let i = rng.below(g.initializers.count)
        mutateTensor(&g.initializers[i], &rng)
    }

    func mutateTensor(_ t: inout Tensor, _ rng: inout TrialRandom) {
        switch rng.below(5) {
        case 0:
            if t.dims.isEmpty || rng.chance(0.2) { t.dims.append(Int(rng.sizeLike())) } else {
                t.dims[rng.below(t.dims.count)] = Int(rng.sizeLike())
            }
        case 1: t.dims = rng.chance(0.5) ? [] : t.dims + [1]
        case 2: t.data = rng.chance(0.5) ? t.data.prefix(rng.below(t.data.count + 1)) : t.data + Data(count: rng.int(in: 1...64))
        case 3: t.dataType = DataType(rawValue: Int32(rng.int(in: 0...27)))
        default:  // interesting values, which shape inputs (Reshape, Expand, Tile, Pad...) turn into sizes
            let width = t.dataType.bitWidth.map { $0 / 8 } ?? 0
            guard width > 0, t.data.count >= width else { return }
            var bytes = [UInt8](t.data)
            for _ in 0..<rng.int(in: 1...3) {
                let at = rng.below(bytes.count / width) * width
                let value: UInt64 = t.dataType == .float || t.dataType == .double
                    ? (width == 8 ? Double(rng.interestingFloat()).bitPattern : UInt64(rng.interestingFloat().bitPattern))
                    : UInt64(bitPattern: rng.interestingInt())
                for k in 0..<width { bytes[at + k] = UInt8(truncatingIfNeeded: value >> UInt64(8 * k)) }
            }
            t.data = Data(bytes)
        }
    }

    /// Graph inputs, outputs and value_info: free dims written every way exporters do, huge or
    /// negative sizes, other ranks and element types.
    func mutateValueInfo(_ g: inout Graph, _ rng: inout TrialRandom) {
        let list = rng.below(3)
        let count = [g.inputs.count, g.outputs.count, g.valueInfo.count][list]
        guard count > 0 else { return }
        let i = rng.below(count)
        var info = [g.inputs, g.outputs, g.valueInfo][list][i]
        guard case .tensor(var element, var shape, let denotation, let dimDenotations) = info.type else { return }
        switch rng.below(4) {
        case 0:
            var dims = shape ?? []
            let dim: ShapeDim = rng.pick([.known(Int(rng.sizeLike())), .known(-1), .symbol("?"), .symbol(""), .unknown,
                                          .symbol("N"), .symbol("batch")])
            if dims.isEmpty || rng.chance(0.2) { dims.append(dim) } else { dims[rng.below(dims.count)] = dim }
            shape = dims
        case 1: shape = rng.chance(0.5) ? nil : Array((shape ?? []).dropLast())
        case 2: element = DataType(rawValue: Int32(rng.int(in: 0...27)))
        default: info.type = nil
        }
        if info.type != nil { info.type = .tensor(elementType: element, shape: shape, denotation: denotation, dimDenotations: dimDenotations) }
        switch list {
        case 0: g.inputs[i] = info
        case 1: g.outputs[i] = info
        default: g.valueInfo[i] = info
        }
    }

    /// Attribute values set to the sizes that break kernels (ConstantOfShape values, Pad pads,
    /// Resize scales, Tile repeats...), dropped, given another type, or added where none was.
    func mutateAttribute(_ g: inout Graph, _ rng: inout TrialRandom) {
        guard !g.nodes.isEmpty else { return }
        let n = rng.below(g.nodes.count)
        var node = g.nodes[n]
        if node.attributes.isEmpty || rng.chance(0.15) {
            node.attributes.append(Attribute(name: rng.pick(Self.attributeNames), value: randomAttributeValue(&rng)))
        } else {
            let a = rng.below(node.attributes.count)
            switch node.attributes[a].value {
            case .int where rng.chance(0.8): node.attributes[a].value = .int(rng.sizeLike())
            case .float where rng.chance(0.8): node.attributes[a].value = .float(rng.interestingFloat())
            case .ints(var v) where rng.chance(0.8):
                if v.isEmpty || rng.chance(0.3) { v.append(rng.sizeLike()) } else if rng.chance(0.2) { v.removeLast() } else {
                    v[rng.below(v.count)] = rng.sizeLike()
                }
                node.attributes[a].value = .ints(v)
            case .floats(var v) where rng.chance(0.8):
                if v.isEmpty || rng.chance(0.3) { v.append(rng.interestingFloat()) } else { v[rng.below(v.count)] = rng.interestingFloat() }
                node.attributes[a].value = .floats(v)
            case .tensor(var t) where rng.chance(0.8):
                mutateTensor(&t, &rng)
                node.attributes[a].value = .tensor(t)
            default:
                if rng.chance(0.5) { node.attributes.remove(at: a) } else { node.attributes[a].value = randomAttributeValue(&rng) }
            }
        }
        g.nodes[n] = node
    }

    func randomAttributeValue(_ rng: inout TrialRandom) -> AttributeValue {
        switch rng.below(6) {
        case 0: return .int(rng.sizeLike())
        case 1: return .float(rng.interestingFloat())
        case 2: return .ints((0..<rng.int(in: 0...6)).map { _ in rng.sizeLike() })
        case 3: return .floats((0..<rng.int(in: 0...4)).map { _ in rng.interestingFloat() })
        case 4: return .string(Data(rng.pick(["nearest", "linear", "cubic", "constant", "reflect", "edge", "wrap", "SAME_UPPER", "VALID", "", "x"]).utf8))
        default:
            return .tensor(Tensor(dataType: rng.pick([.float, .int64, .int32, .uint8, .double]),
                                  dims: rng.chance(0.5) ? [] : [Int(rng.sizeLike())], data: Data(count: rng.pick([0, 1, 4, 8]))))
        }
    }

    /// Node inputs and outputs added, removed, renamed to other values (cycles, dangling names)
    /// or left empty: graph rewrites and kernels index them before anything checked the count.
    func mutateNodeWiring(_ g: inout Graph, _ rng: inout TrialRandom) {
        guard !g.nodes.isEmpty else { return }
        let n = rng.below(g.nodes.count)
        let names = g.nodes.flatMap(\.outputs) + g.inputs.map(\.name) + g.initializers.map(\.name) + ["", "nowhere"]
        let onInputs = rng.chance(0.6)
        var list = onInputs ? g.nodes[n].inputs : g.nodes[n].outputs
        switch rng.below(4) {
        case 0: if !list.isEmpty { list.remove(at: rng.below(list.count)) }
        case 1: list.append(rng.pick(names))
        case 2: if !list.isEmpty { list[rng.below(list.count)] = rng.pick(names) }
        default: list = rng.chance(0.5) ? [] : list + Array(repeating: rng.pick(names), count: rng.int(in: 1...4))
        }
        if onInputs { g.nodes[n].inputs = list } else { g.nodes[n].outputs = list }
    }

    /// Whole nodes, inputs and outputs duplicated, dropped or reordered.
    func mutateGraphLists(_ g: inout Graph, _ rng: inout TrialRandom) {
        switch rng.below(6) {
        case 0: if !g.nodes.isEmpty { g.nodes.append(g.nodes[rng.below(g.nodes.count)]) }
        case 1: if !g.nodes.isEmpty { g.nodes.remove(at: rng.below(g.nodes.count)) }
        case 2: g.nodes.shuffle(using: &rng)
        case 3: if !g.inputs.isEmpty { g.inputs.append(g.inputs[rng.below(g.inputs.count)]) }
        case 4: if !g.outputs.isEmpty { g.outputs.append(g.outputs[rng.below(g.outputs.count)]) } else { g.outputs = [] }
        default: if !g.outputs.isEmpty { g.outputs.remove(at: rng.below(g.outputs.count)) }
        }
    }

    /// Turns a graph input into an initializer of interesting values, so planning folds the nodes
    /// that read it (shape inputs of Reshape, Expand, Tile, ConstantOfShape, Resize...) with them.
    func freezeInput(_ g: inout Graph, _ rng: inout TrialRandom) {
        let free = g.inputs.filter { input in !g.initializers.contains { $0.name == input.name } }
        guard let info = free.isEmpty ? nil : rng.pick(free) else { return }
        let element = info.type?.elementType ?? .int64
        let dims = (info.type?.shape ?? [.known(1)]).map { $0.fixedSize.map { min($0, 8) } ?? rng.int(in: 1...4) }
        let count = dims.reduce(1, *)
        guard let bytes = element.byteCount(elements: count), element.bitWidth.map({ $0 >= 8 }) == true else { return }
        var tensor = Tensor(name: info.name, dataType: element, dims: dims, data: Data(count: bytes))
        for _ in 0..<rng.int(in: 0...3) { mutateTensor(&tensor, &rng) }
        tensor.name = info.name
        g.initializers.append(tensor)
    }
}

extension TrialRandom: RandomNumberGenerator {}
