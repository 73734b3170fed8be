import Foundation
import OnnxIO

extension OpRegistry {
    static let shapeOps: [String: KernelFactory] = [
        "Shape": { info in try ShapeKernel(info) },
        "Size": { _ in SizeKernel() },
        "Reshape": { info in try ReshapeKernel(info) },
        "Flatten": { info in try FlattenKernel(info) },
        "Squeeze": { info in try SqueezeKernel(info) },
        "Unsqueeze": { info in try UnsqueezeKernel(info) },
    ]
}

// X: any tensor of rank r -> Y: int64 [end - start], the dims X.shape[start..<end]
final class ShapeKernel: Kernel {
    let start: Int
    let end: Int?

    init(_ info: NodeInfo) throws {
        // start/end arrived in opset 15; earlier the whole shape is returned.
        start = info.opset >= 15 ? try info.int("start", 0) : 0
        end = info.opset >= 15 ? try info.int("end") : nil
    }

    /// The requested dims; out-of-range start/end clamp to [0, r] as the spec says.
    func dims(of shape: [Int]) -> [Int] {
        let r = shape.count
        func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + r : v, 0), r) }
        let lo = clamp(start), hi = clamp(end ?? r)
        return lo < hi ? Array(shape[lo..<hi]) : []
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let dims = dims(of: try inputs.spec(0).shape)
        // The value follows from the input's shape alone, so it is a constant even when X is not.
        return [ValueSpec(.int64, [dims.count], constant: try HostTensor(shape: [dims.count], int64s: dims.map { Int64($0) }))]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let dims = dims(of: inputs.at(0).shape)
        let out = outputs[0].typed(Int64.self)
        for (i, d) in dims.enumerated() { out[i] = Int64(d) }
    }
}

// data: any tensor -> size: int64 scalar, the element count (a constant: it follows from the shape)
final class SizeKernel: Kernel {
    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let n = try inputs.spec(0).count
        return [ValueSpec(.int64, [], constant: try HostTensor(shape: [], int64s: [Int64(n)]))]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        outputs[0].typed(Int64.self).pointee = Int64(inputs.at(0).count)
    }
}

// data: any shape, shape: int64 [k] -> reshaped: the same elements with dims from `shape`
// (0 copies the input dim unless allowzero=1; one -1 is inferred from the element count)
final class ReshapeKernel: Kernel {
    let allowZero: Bool
    /// Opset 1-4 takes the target shape as an attribute.
    let attributeShape: [Int]?

    init(_ info: NodeInfo) throws {
        allowZero = try info.opset >= 14 && info.int("allowzero", 0) != 0
        if info.opset < 5 {
            guard let shape = try info.ints("shape") else { throw KernelError("Reshape-1 needs a 'shape' attribute") }
            attributeShape = shape
        } else {
            attributeShape = nil
        }
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let data = try inputs.spec(0)
        let requested = try attributeShape ?? DataMovement.integers(inputs, 1, "shape")
        return [ValueSpec(data.dtype, try ReshapeKernel.resolve(requested, input: data.shape, allowZero: allowZero))]
    }

    static func resolve(_ requested: [Int], input: [Int], allowZero: Bool) throws -> [Int] {
        var out = requested
        var inferred: Int?
        for (i, d) in requested.enumerated() {
            switch d {
            case 0 where !allowZero:
                guard i < input.count else { throw KernelError("shape \(requested): 0 at axis \(i) has no input dim to copy") }
                out[i] = input[i]
            case -1:
                guard inferred == nil else { throw KernelError("shape \(requested) has more than one -1") }
                inferred = i
            case let d where d < 0:
                throw KernelError("shape \(requested) has invalid dim \(d)")
            default: break
            }
        }
        let total = input.reduce(1, *)
        if let i = inferred {
            guard !(allowZero && requested.contains(0)) else {
                throw KernelError("shape \(requested): -1 cannot be combined with 0 when allowzero=1")
            }
            var others = out
            others.remove(at: i)
            let known = try checkedProduct(others, "shape \(requested)")
            guard known > 0, total % known == 0 else {
                throw KernelError("cannot reshape \(input) (\(total) elements) to \(requested)")
            }
            out[i] = total / known
        }
        guard try checkedProduct(out, "shape \(requested)") == total else { throw KernelError("cannot reshape \(input) (\(total) elements) to \(requested)") }
        return out
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        DataMovement.copyAll(from: inputs.at(0), to: outputs[0], context: context)
    }
}

// input: [d0, ..., d(r-1)] -> output: [d0*...*d(axis-1), d(axis)*...*d(r-1)]
final class FlattenKernel: Kernel {
    let axis: Int

    init(_ info: NodeInfo) throws { axis = try info.int("axis", 1) }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0)
        let r = x.shape.count
        let a = axis < 0 ? axis + r : axis
        guard a >= 0 && a <= r else { throw KernelError("axis \(axis) is out of range for rank \(r)") }
        let outer = x.shape[..<a].reduce(1, *), inner = x.shape[a...].reduce(1, *)
        return [ValueSpec(x.dtype, [outer, inner])]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        DataMovement.copyAll(from: inputs.at(0), to: outputs[0], context: context)
    }
}

// data: [..., 1, ...] -> squeezed: the dims listed in axes (which must be 1) removed; no axes = every 1 removed
final class SqueezeKernel: Kernel {
    /// Opset < 13 reads axes from the attribute; from 13 they are an optional input.
    let attributeAxes: [Int]?
    let axesFromInput: Bool

    init(_ info: NodeInfo) throws {
        axesFromInput = info.opset >= 13
        attributeAxes = axesFromInput ? nil : try info.ints("axes")
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0)
        let requested = axesFromInput ? (inputs.has(1) ? try DataMovement.integers(inputs, 1, "axes") : nil) : attributeAxes
        let shape: [Int]
        // No axes (or an empty list) removes every size-1 dim.
        if let requested, !requested.isEmpty {
            let axes = Set(try DataMovement.axes(requested, rank: x.shape.count))
            for a in axes where x.shape[a] != 1 {
                throw KernelError("cannot squeeze axis \(a) of size \(x.shape[a])")
            }
            shape = x.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
        } else {
            shape = x.shape.filter { $0 != 1 }
        }
        return [ValueSpec(x.dtype, shape)]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        DataMovement.copyAll(from: inputs.at(0), to: outputs[0], context: context)
    }
}

// data: rank r -> expanded: rank r + len(axes), with a 1 inserted at each output axis in axes
final class UnsqueezeKernel: Kernel {
    /// Opset < 13 reads axes from the attribute; from 13 they are a required input.
    let attributeAxes: [Int]?

    init(_ info: NodeInfo) throws {
        if info.opset < 13 {
            guard let axes = try info.ints("axes") else { throw KernelError("Unsqueeze needs an 'axes' attribute") }
            attributeAxes = axes
        } else {
            attributeAxes = nil
        }
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0)
        let requested = try attributeAxes ?? DataMovement.integers(inputs, 1, "axes")
        let rank = x.shape.count + requested.count
        // Axes index the output, so negative ones count from the output's end.
        let axes = Set(try DataMovement.axes(requested, rank: rank))
        var rest = x.shape.makeIterator()
        let shape = (0..<rank).map { axes.contains($0) ? 1 : rest.next()! }
        return [ValueSpec(x.dtype, shape)]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        DataMovement.copyAll(from: inputs.at(0), to: outputs[0], context: context)
    }
}
