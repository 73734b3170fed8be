import Foundation
import OnnxIO

extension OpRegistry {
    static let reduceOps: [String: KernelFactory] = [
        "ReduceSum": { info in try ReduceKernel(info, .sum) },
        "ReduceMean": { info in try ReduceKernel(info, .mean) },
        "ReduceMax": { info in try ReduceKernel(info, .max) },
    ]
}

// data: any shape; axes: int64 [k] (attribute before opset 13 for ReduceSum / 18 for Mean and Max,
// then optional input 1) -> reduced: data's shape with the reduced axes set to 1 (keepdims=1) or removed.
// No axes means every axis, or no reduction at all with noop_with_empty_axes=1.
final class ReduceKernel: Kernel {
    enum Op: String { case sum = "ReduceSum", mean = "ReduceMean", max = "ReduceMax" }
    let op: Op
    let axesFromInput: Bool
    let axesAttribute: [Int]?
    let keepdims: Bool
    let noopWithEmptyAxes: Bool

    init(_ info: NodeInfo, _ op: Op) throws {
        self.op = op
        axesFromInput = info.opset >= (op == .sum ? 13 : 18)
        axesAttribute = try info.ints("axes")
        if axesFromInput && axesAttribute != nil {
            throw KernelError("\(op.rawValue) takes axes as an input from opset \(op == .sum ? 13 : 18), not as an attribute")
        }
        keepdims = try info.int("keepdims", 1) != 0
        noopWithEmptyAxes = try info.int("noop_with_empty_axes", 0) != 0
    }

    /// Sorted reduced axes, or nil for no reduction (empty axes with noop_with_empty_axes=1).
    func reducedAxes(rank: Int, input: [Int]?) throws -> [Int]? {
        let list = axesFromInput ? input : axesAttribute
        guard let list, !list.isEmpty else { return noopWithEmptyAxes ? nil : Array(0..<rank) }
        if rank == 0 { return [] }  // a scalar reduces to itself (normalizeAxis accepts axis 0 for it)
        let axes = Set(try list.map { try normalizeAxis($0, rank: rank) }).sorted()
        guard axes.count == list.count else { throw KernelError("axes \(list) repeat an axis") }
        return axes
    }

    /// The element type to compute in: bool max is "any", the same as the max of 0/1 bytes.
    func computeType(_ dtype: DataType) throws -> DataType {
        if dtype == .bool && op == .max { return .uint8 }
        guard isNumeric(dtype) else { throw unsupportedType(dtype, op.rawValue) }
        return dtype
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0)
        _ = try computeType(x.dtype)
        let axesInput = axesFromInput ? try inputs.optionalValue(1)?.integers() : nil
        guard let axes = try reducedAxes(rank: x.shape.count, input: axesInput) else { return [ValueSpec(x.dtype, x.shape)] }
        if op == .max, let a = axes.first(where: { x.shape[$0] == 0 }), x.dtype != .float && x.dtype != .double {
            throw KernelError("ReduceMax over the empty axis \(a) has no value for \(x.dtype)")
        }
        var shape: [Int] = []
        for (i, d) in x.shape.enumerated() {
            if !axes.contains(i) { shape.append(d) } else if keepdims { shape.append(1) }
        }
        return [ValueSpec(x.dtype, shape)]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0), out = outputs[0]
        var axesInput: [Int]?
        if axesFromInput, inputs.count > 1, let a = inputs[1] {
            axesInput = a.dtype == .int32 ? (0..<a.count).map { Int(a.typed(Int32.self)[$0]) }
                                          : (0..<a.count).map { Int(a.typed(Int64.self)[$0]) }
        }
        guard let axes = try reducedAxes(rank: x.shape.count, input: axesInput) else {
            out.data.copyMemory(from: x.data, byteCount: x.byteCount)
            return
        }
        // The output read with the input's rank: reduced axes have size 1.
        var kept = x.shape
        for a in axes { kept[a] = 1 }
        try dispatchNumeric(try computeType(x.dtype), op.rawValue, Loop(op: op, x: x, out: out, kept: kept, context: context))
    }

    private struct Loop: NumericLoop {
        let op: Op
        let x: TensorRef, out: TensorRef
        let kept: [Int]
        let context: RunContext

        func run<T: ElementwiseNumber>(_: T.Type) throws {
            let po = out.typed(T.self), px = UnsafePointer(x.typed(T.self))
            let identity: T = op == .max ? T.lowest : 0
            for i in 0..<out.count { po[i] = identity }
            let isMax = op == .max
            // Iterate over the input; the output is an operand broadcast over it (stride 0 on reduced axes).
            // Within a run the output either stays put (sum the run into one value) or walks along
            // with the input (accumulate the run elementwise).
            let layout = try BroadcastLayout(shape: x.shape, operands: [x.shape, kept])
            let horizontal = layout.innerStrides[1] == 0
            let body = { (r: Int, offsets: UnsafePointer<Int>) in
                let src = px + offsets[0], dst = po + offsets[1], n = layout.runLength
                if horizontal {
                    dst[0] = isMax ? maxNaN(dst[0], reduceMax(src, n)) : T.plus(dst[0], reduceSum(src, n))
                } else if isMax {
                    binaryLoop(UnsafePointer(dst), 1, src, 1, dst, n, VectorMax.self)
                } else {
                    binaryLoop(UnsafePointer(dst), 1, src, 1, dst, n, VectorAdd.self)
                }
            }
            // Runs that differ in the outermost dimension write disjoint outputs when the output walks
            // that dimension: split there across threads.
            let outer = layout.dims.count >= 2 && layout.strides[1] != 0 ? layout.dims[0] : 1
            if outer > 1 && x.count >= 1 << 15 {
                let per = layout.runCount / outer
                context.parallelFor(outer) { blocks in
                    layout.forEachRun((blocks.lowerBound * per)..<(blocks.upperBound * per), body)
                }
            } else {
                layout.forEachRun(0..<layout.runCount, body)
            }
            if op == .mean {
                // Divide in double: exact enough for float32, and truncates toward zero for integers
                // (the mean of an empty set is NaN for floats and left 0 for integers).
                let k = out.count == 0 ? 0 : x.count / out.count
                if k > 0 || !T.isInteger {
                    for i in 0..<out.count { po[i] = T(fromDouble: po[i].doubleValue / Double(k)) }
                }
            }
        }
    }
}

/// The larger of two values; NaN wins, as in NumPy.
@inline(__always)
func maxNaN<T: Comparable>(_ a: T, _ b: T) -> T { (b > a || b != b) ? b : a }

/// Sum of `n` contiguous values, 16 lanes at a time.
@inline(__always)
func reduceSum<T: ElementwiseNumber>(_ p: UnsafePointer<T>, _ n: Int) -> T {
    var acc = SIMD16<T>()
    var i = 0
    while i + 16 <= n { acc = T.add(acc, load16(p + i)); i += 16 }
    if i < n { acc = T.add(acc, loadPartial(p + i, n - i, fill: 0)) }
    return T.total(acc)
}

/// Max of `n` contiguous values (NaN propagates), 16 lanes at a time.
@inline(__always)
func reduceMax<T: ElementwiseNumber>(_ p: UnsafePointer<T>, _ n: Int) -> T {
    var acc = SIMD16<T>(repeating: T.lowest)
    var i = 0
    while i + 16 <= n { acc = T.max(acc, load16(p + i)); i += 16 }
    if i < n { acc = T.max(acc, loadPartial(p + i, n - i, fill: T.lowest)) }
    var m = acc[0]
    for j in 1..<16 { m = maxNaN(m, acc[j]) }
    return m
}
