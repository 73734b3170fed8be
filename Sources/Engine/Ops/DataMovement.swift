import Foundation
import OnnxIO

// Data-movement ops: they copy bytes of `dtype.elementSize`, so every element type takes the same path.
// Transpose lives in DataMovementTranspose.swift, Cast in DataMovementCast.swift, Pad in DataMovementPad.swift.
extension OpRegistry {
    static let dataMovementOps: [String: KernelFactory] = [
        "Transpose": { info in try TransposeKernel(info) },
        "Concat": { info in try ConcatKernel(info) },
        "Slice": { info in try SliceKernel(info) },
        "Gather": { info in try GatherKernel(info) },
        "Cast": { info in try CastKernel(info) },
        "CastLike": { info in try CastLikeKernel(info) },
        "Tile": { info in try TileKernel(info) },
        "Pad": { info in try PadKernel(info) },
    ]
}

extension DataMovement {
    /// Integer values of an int64/int32 tensor seen at run time (starts, pads, indices...).
    static func integers(_ t: TensorRef) throws -> [Int] {
        switch t.dtype {
        case .int64: return (0..<t.count).map { Int(t.typed(Int64.self)[$0]) }
        case .int32: return (0..<t.count).map { Int(t.typed(Int32.self)[$0]) }
        default: throw KernelError("expected an int64 or int32 tensor, got \(t.dtype)")
        }
    }
}

// inputs: n tensors of one rank, equal dims except on `axis` -> concat_result: dims summed along `axis`
final class ConcatKernel: Kernel {
    let axis: Int

    init(_ info: NodeInfo) throws {
        // Concat-1 defaulted the axis to 1; from opset 4 it is required.
        if let a = try info.int("axis") { axis = a } else if info.opset < 4 { axis = 1 } else {
            throw KernelError("Concat needs an 'axis' attribute")
        }
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        guard inputs.count > 0 else { throw KernelError("Concat needs at least one input") }
        let first = try inputs.spec(0)
        _ = try DataMovement.elementSize(first.dtype)
        let rank = first.shape.count
        guard rank > 0 else { throw KernelError("Concat cannot join scalars") }
        let a = try normalizeAxis(axis, rank: rank)
        var shape = first.shape
        shape[a] = 0
        for i in 0..<inputs.count {
            let s = try inputs.spec(i)
            guard s.dtype == first.dtype else { throw KernelError("input \(i) is \(s.dtype) but input 0 is \(first.dtype)") }
            guard s.shape.count == rank, s.shape.indices.allSatisfy({ $0 == a || s.shape[$0] == first.shape[$0] }) else {
                throw KernelError("input \(i) has shape \(s.shape), which differs from \(first.shape) off axis \(a)")
            }
            shape[a] = try checkedAdd(shape[a], s.shape[a], "Concat output axis \(a)")
        }
        return [ValueSpec(first.dtype, shape)]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let out = outputs[0]
        let a = try normalizeAxis(axis, rank: out.shape.count)
        let outer = out.shape[..<a].reduce(1, *)
        // Per outer index each input contributes one contiguous block; the output row is their concatenation.
        let innerBytes = out.shape[(a + 1)...].reduce(1, *) * out.dtype.elementSize
        let blocks = (0..<inputs.count).map { inputs.at($0).shape[a] * innerBytes }
        let sources = (0..<inputs.count).map { UnsafeRawPointer(inputs.at($0).data) }
        let rowBytes = blocks.reduce(0, +)
        guard rowBytes > 0 else { return }
        context.parallelFor(outer, minChunk: max(1, (1 << 18) / rowBytes)) { rows in
            for o in rows {
                var dst = out.data + o * rowBytes
                for (src, block) in zip(sources, blocks) where block > 0 {
                    DataMovement.copyRow(dst, src + o * block, block)
                    dst += block
                }
            }
        }
    }
}

// data: [d0, ..., d(r-1)], starts/ends/axes/steps: int [k] -> output: per sliced axis
// ceil((end - start) / step) elements taken at start, start + step, ...
final class SliceKernel: Kernel {
    /// Opset 1-9 gives starts/ends/axes as attributes; from 10 they (and steps) are inputs.
    let attributes: (starts: [Int], ends: [Int], axes: [Int]?)?

    init(_ info: NodeInfo) throws {
        if info.opset < 10 {
            guard let starts = try info.ints("starts"), let ends = try info.ints("ends") else {
                throw KernelError("Slice-1 needs 'starts' and 'ends' attributes")
            }
            attributes = (starts, ends, try info.ints("axes"))
        } else {
            attributes = nil
        }
    }

    /// Per axis of the data: first element, step and element count.
    struct AxisRange { var start: Int; var step: Int; var count: Int }

    static func ranges(shape: [Int], starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?) throws -> [AxisRange] {
        let rank = shape.count
        var ranges = shape.map { AxisRange(start: 0, step: 1, count: $0) }
        guard starts.count == ends.count else { throw KernelError("starts has \(starts.count) values but ends has \(ends.count)") }
        let axes = try DataMovement.axes(axes ?? Array(0..<starts.count), rank: rank)
        guard axes.count == starts.count else { throw KernelError("axes has \(axes.count) values but starts has \(starts.count)") }
        let steps = steps ?? [Int](repeating: 1, count: starts.count)
        guard steps.count == starts.count else { throw KernelError("steps has \(steps.count) values but starts has \(starts.count)") }
        for (i, axis) in axes.enumerated() {
            let dim = shape[axis], step = steps[i]
            guard step != 0 else { throw KernelError("step 0 on axis \(axis)") }
            // Negative indices count from the end; then clamp (huge INT_MAX-style values are common).
            var start = starts[i] < 0 ? starts[i] &+ dim : starts[i]
            var end = ends[i] < 0 ? ends[i] &+ dim : ends[i]
            // Element count = ceil(distance / |step|), in unsigned arithmetic so huge steps cannot overflow.
            let distance: Int
            if step > 0 {
                start = min(max(start, 0), dim)
                end = min(max(end, 0), dim)
                distance = end - start
            } else {
                start = min(max(start, 0), dim - 1)
                end = min(max(end, -1), dim - 1)
                distance = start - end
            }
            let count = distance > 0 ? Int((UInt(distance) - 1) / step.magnitude) + 1 : 0
            // With at most one element the step is irrelevant; 1 keeps step * stride from overflowing.
            ranges[axis] = AxisRange(start: start, step: count > 1 ? step : 1, count: count)
        }
        return ranges
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0)
        _ = try DataMovement.elementSize(x.dtype)
        let r: [AxisRange]
        if let attributes {
            r = try SliceKernel.ranges(shape: x.shape, starts: attributes.starts, ends: attributes.ends,
                                       axes: attributes.axes, steps: nil)
        } else {
            r = try SliceKernel.ranges(
                shape: x.shape, starts: DataMovement.integers(inputs, 1, "starts"), ends: DataMovement.integers(inputs, 2, "ends"),
                axes: inputs.has(3) ? DataMovement.integers(inputs, 3, "axes") : nil,
                steps: inputs.has(4) ? DataMovement.integers(inputs, 4, "steps") : nil)
        }
        return [ValueSpec(x.dtype, r.map(\.count))]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0), out = outputs[0]
        let ranges: [AxisRange]
        if let attributes {
            ranges = try SliceKernel.ranges(shape: x.shape, starts: attributes.starts, ends: attributes.ends,
                                            axes: attributes.axes, steps: nil)
        } else {
            ranges = try SliceKernel.ranges(
                shape: x.shape, starts: DataMovement.integers(inputs.at(1)), ends: DataMovement.integers(inputs.at(2)),
                axes: try inputs.count > 3 ? inputs[3].map(DataMovement.integers) : nil,
                steps: try inputs.count > 4 ? inputs[4].map(DataMovement.integers) : nil)
        }
        SliceKernel.copy(x, out, ranges, context: context)
    }

    static func copy(_ x: TensorRef, _ out: TensorRef, _ ranges: [AxisRange], context: RunContext) {
        guard out.count > 0 else { return }
        let es = x.dtype.elementSize
        let inStrides = DataMovement.strides(x.shape)
        let base = zip(ranges, inStrides).reduce(0) { $0 + $1.0.start * $1.1 }
        // Trailing axes taken whole are one contiguous run: `k` is the innermost axis really sliced.
        guard let k = ranges.indices.last(where: { a in
            ranges[a].start != 0 || ranges[a].step != 1 || ranges[a].count != x.shape[a]
        }) else {
            memcpy(out.data, x.data, out.byteCount)
            return
        }
        let run = x.shape[(k + 1)...].reduce(1, *)  // elements per contiguous run
        let runBytes = run * es
        let outStrides = DataMovement.strides(out.shape)
        let rowDims = Array(out.shape[..<k])
        let rowCount = rowDims.reduce(1, *)
        let count = ranges[k].count, step = ranges[k].step, hop = step * inStrides[k]
        let src = UnsafeRawPointer(x.data) + base * es
        context.parallelFor(rowCount, minChunk: max(1, (1 << 16) / max(1, count * runBytes))) { rows in
            let odo = DualOdometer(dims: rowDims, strideA: (0..<k).map { ranges[$0].step * inStrides[$0] },
                                   strideB: Array(outStrides[..<k]))
            odo.forEach(rows) { a, b in
                let s = src + a &* es, d = out.data + b &* es
                if step == 1 {
                    DataMovement.copyRow(d, s, count &* runBytes)
                } else if run == 1 {
                    DataMovement.gatherStrided(s, stride: hop, into: d, count: count, elementSize: es)
                } else {
                    for j in 0..<count { DataMovement.copyRow(d + j &* runBytes, s + j &* hop &* es, runBytes) }
                }
            }
        }
    }
}

extension DataMovement {
    /// dst[j] = src[j * stride] for single elements (a Slice with a step on its last axis).
    static func gatherStrided(_ src: UnsafeRawPointer, stride: Int, into dst: UnsafeMutableRawPointer, count: Int, elementSize: Int) {
        @inline(__always) func go<T>(_: T.Type) {
            let s = src.assumingMemoryBound(to: T.self), d = dst.assumingMemoryBound(to: T.self)
            var j = 0
            while j < count { d[j] = s[j &* stride]; j &+= 1 }
        }
        switch elementSize {
        case 1: go(UInt8.self)
        case 2: go(UInt16.self)
        case 4: go(UInt32.self)
        default: go(UInt64.self)
        }
    }
}

// data: [d0, ..., d(axis), ..., d(r-1)], indices: int32/int64 any shape
// -> output: data.shape[..<axis] + indices.shape + data.shape[(axis+1)...]
final class GatherKernel: Kernel {
    let axis: Int

    init(_ info: NodeInfo) throws { axis = try info.int("axis", 0) }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let data = try inputs.spec(0), indices = try inputs.spec(1)
        _ = try DataMovement.elementSize(data.dtype)
        guard indices.dtype == .int64 || indices.dtype == .int32 else { throw KernelError("indices must be int64 or int32, got \(indices.dtype)") }
        guard !data.shape.isEmpty else { throw KernelError("Gather needs data of rank >= 1") }
        let a = try normalizeAxis(axis, rank: data.shape.count)
        return [ValueSpec(data.dtype, Array(data.shape[..<a]) + indices.shape + Array(data.shape[(a + 1)...]))]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let data = inputs.at(0), out = outputs[0]
        let a = try normalizeAxis(axis, rank: data.shape.count)
        let dim = data.shape[a]
        // Indices are checked once up front; negative ones count from the end of the axis.
        var indices = try DataMovement.integers(inputs.at(1))
        for (j, i) in indices.enumerated() {
            guard i >= -dim && i < dim else { throw KernelError("index \(i) is out of range for axis \(a) of size \(dim)") }
            if i < 0 { indices[j] = i + dim }
        }
        let outer = data.shape[..<a].reduce(1, *)
        let blockBytes = data.shape[(a + 1)...].reduce(1, *) * data.dtype.elementSize
        let n = indices.count
        guard outer * n * blockBytes > 0 else { return }
        indices.withUnsafeBufferPointer { idx in
            context.parallelFor(outer * n, minChunk: max(1, (1 << 16) / blockBytes)) { units in
                for u in units {
                    let o = u / n, j = u % n
                    DataMovement.copyRow(out.data + u * blockBytes, data.data + (o * dim + idx[j]) * blockBytes, blockBytes)
                }
            }
        }
    }
}

// input: [d0, ..., d(r-1)], repeats: int64 [r] -> output: [d0*repeats[0], ..., d(r-1)*repeats[r-1]]
final class TileKernel: Kernel {
    init(_ info: NodeInfo) throws {
        // Tile-1 took `tiles` and `axis` inputs instead of `repeats`.
        guard info.opset >= 6 else { throw info.unsupported("opset \(info.opset) (tiles/axis inputs)") }
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0)
        _ = try DataMovement.elementSize(x.dtype)
        let repeats = try DataMovement.integers(inputs, 1, "repeats")
        guard repeats.count == x.shape.count else { throw KernelError("repeats has \(repeats.count) values for rank \(x.shape.count)") }
        guard repeats.allSatisfy({ $0 >= 0 }) else { throw KernelError("repeats \(repeats) must not be negative") }
        return [ValueSpec(x.dtype, try zip(x.shape, repeats).enumerated().map { a, pair in
            try checkedMul(pair.0, pair.1, "Tile output axis \(a)")
        })]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0), out = outputs[0]
        guard out.count > 0 else { return }
        guard let last = x.shape.indices.last else { memcpy(out.data, x.data, out.byteCount); return }
        let es = x.dtype.elementSize
        let inStrides = DataMovement.strides(x.shape)
        let rowBytes = x.shape[last] * es  // one input row, repeated along the output's last axis
        let outRowBytes = out.shape[last] * es
        let outerDims = Array(out.shape[..<last])
        context.parallelFor(outerDims.reduce(1, *), minChunk: max(1, (1 << 16) / outRowBytes)) { rows in
            for row in rows {
                // Output row index -> input row: each coordinate modulo the input dim.
                var rest = row, src = 0
                for axis in stride(from: last - 1, through: 0, by: -1) {
                    src += (rest % outerDims[axis]) % x.shape[axis] * inStrides[axis]
                    rest /= outerDims[axis]
                }
                DataMovement.fill(out.data + row * outRowBytes, count: out.shape[last] / x.shape[last],
                                  pattern: x.data + src * es, elementSize: rowBytes)
            }
        }
    }
}
