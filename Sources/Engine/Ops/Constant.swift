import Foundation
import OnnxIO

extension OpRegistry {
    static let constantOps: [String: KernelFactory] = [
        "Constant": { info in try ConstantKernel(info) },
        "ConstantOfShape": { info in try ConstantOfShapeKernel(info) },
        "Identity": { _ in IdentityKernel() },
        "Dropout": { info in try DropoutKernel(info) },
    ]
}

/// An attribute tensor as an engine tensor; element types the engine cannot hold make the op unsupported.
func attributeTensor(_ t: Tensor, _ info: NodeInfo) throws -> HostTensor {
    guard t.dataType.isEngineType else { throw info.unsupported("a tensor of element type \(t.dataType)") }
    return try HostTensor(t)
}

// (no inputs) -> output: the attribute's value (value, value_float(s), value_int(s)); known at plan time.
final class ConstantKernel: Kernel {
    let value: HostTensor

    init(_ info: NodeInfo) throws {
        let node = info.node
        switch (node.attributes.first?.name ?? "", node.attributes.first?.value) {
        case ("value", .tensor(let t)?): value = try attributeTensor(t, info)
        case ("value_float", .float(let f)?): value = try HostTensor(shape: [], floats: [f])
        case ("value_floats", .floats(let f)?): value = try HostTensor(shape: [f.count], floats: f)
        case ("value_int", .int(let i)?): value = try HostTensor(shape: [], int64s: [i])
        case ("value_ints", .ints(let i)?): value = try HostTensor(shape: [i.count], int64s: i)
        case ("value_string", _), ("value_strings", _), ("sparse_value", _):
            throw info.unsupported("attribute '\(node.attributes[0].name)'")
        default:
            throw KernelError("Constant needs exactly one of value, value_float(s), value_int(s); got "
                + "[\(node.attributes.map(\.name).joined(separator: ", "))]")
        }
        guard node.attributes.count == 1 else {
            throw KernelError("Constant has several value attributes: \(node.attributes.map(\.name).joined(separator: ", "))")
        }
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        [ValueSpec(value.dtype, value.shape, constant: value)]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        outputs[0].data.copyMemory(from: value.storage.pointer, byteCount: value.byteCount)
    }
}

// input: int64 [k], known at plan time -> output: shape = the input's values, every element `value`
// (a one-element tensor attribute; default float32 0).
final class ConstantOfShapeKernel: Kernel {
    let value: HostTensor

    init(_ info: NodeInfo) throws {
        if case .tensor(let t)? = info.node.attribute("value") {
            value = try attributeTensor(t, info)
            guard value.count == 1 else { throw KernelError("ConstantOfShape value must hold one element, got shape \(value.shape)") }
        } else {
            value = try HostTensor(shape: [1], floats: [0])
        }
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let shape = try inputs.value(0).integers()
        guard shape.allSatisfy({ $0 >= 0 }) else { throw KernelError("ConstantOfShape shape \(shape) has a negative dimension") }
        return [ValueSpec(value.dtype, shape)]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        fillRepeating(outputs[0].data, value.storage.pointer, outputs[0].count, value.dtype.elementSize)
    }
}

// input: any shape and type -> output: the same tensor.
final class IdentityKernel: Kernel {
    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0)
        return [ValueSpec(x.dtype, x.shape, constant: x.constant)]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0)
        if x.data != outputs[0].data { outputs[0].data.copyMemory(from: x.data, byteCount: x.byteCount) }
    }
}

// data: any shape; ratio (opset >= 12, ignored); training_mode: bool scalar (opset >= 12, must be false)
// -> output: data unchanged; mask (optional): all true, bool from opset 10 (data's type before).
// Inference never drops anything; training mode (random drops) is refused.
final class DropoutKernel: Kernel {
    let opset: Int
    let outputCount: Int

    init(_ info: NodeInfo) throws {
        opset = info.opset
        outputCount = info.node.outputs.count
        // Before opset 7 the mode is an attribute whose default, is_test=0, is training.
        if opset < 7, try info.int("is_test", 0) == 0 { throw info.unsupported("is_test=0 (training mode)") }
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0)
        if opset >= 12, inputs.has(2) {
            let mode = try inputs.value(2)
            guard mode.count == 1 else { throw KernelError("training_mode must be a scalar") }
            if mode.storage.pointer.load(as: UInt8.self) != 0 { throw KernelError("Dropout with training_mode=true is not supported", unsupported: true) }
        }
        var specs = [ValueSpec(x.dtype, x.shape)]
        if outputCount > 1 {
            let maskType: DataType = opset >= 10 ? .bool : x.dtype
            guard maskType == .bool || maskType == .float || maskType == .double else { throw unsupportedType(x.dtype, "Dropout mask") }
            specs.append(ValueSpec(maskType, x.shape))
        }
        return specs
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0)
        outputs[0].data.copyMemory(from: x.data, byteCount: x.byteCount)
        if outputs.count > 1 {
            let mask = outputs[1]
            switch mask.dtype {
            case .bool: memset(mask.data, 1, mask.count)
            case .float: mask.floats.update(repeating: 1, count: mask.count)
            default: mask.typed(Double.self).update(repeating: 1, count: mask.count)
            }
        }
    }
}
