import Foundation
import OnnxIO

// NumPy multidirectional broadcasting, shared by every op that combines tensors of different
// shapes (binary arithmetic, Expand, reductions seen as "the output broadcast over the input").
//
// For another op:
//   - output shape: `broadcastShape([a.shape, b.shape, ...])`;
//   - numeric binary op: `broadcastBinary(a, b, out, context, VectorAdd.self, Float.self)`, or a new
//     `BinaryVectorOp` type;
//   - anything else (several operands, mixed types, a condition tensor): build a
//     `BroadcastLayout(shape: out.shape, operands: [...])` and write the contiguous/splat loop for
//     one segment inside `layout.parallelSegments(context) { start, offsets, n in ... }`;
//   - copy with repetition (any element size): `broadcastCopy(x, out, context)`.

/// The NumPy broadcast of several shapes: right-aligned, each dimension equal or 1.
func broadcastShape(_ shapes: [[Int]]) throws -> [Int] {
    let rank = shapes.map(\.count).max() ?? 0
    var out = [Int](repeating: 1, count: rank)
    for shape in shapes {
        let pad = rank - shape.count
        for (i, d) in shape.enumerated() {
            let o = out[pad + i]
            if d == o || d == 1 { continue }
            guard o == 1 else {
                throw KernelError("shapes \(shapes.map { "\($0)" }.joined(separator: " and ")) do not broadcast (dimension \(pad + i): \(o) vs \(d))")
            }
            out[pad + i] = d
        }
    }
    return out
}

func broadcastShape(_ a: [Int], _ b: [Int]) throws -> [Int] { try broadcastShape([a, b]) }

/// How to walk an iteration shape while reading several operands broadcast to it.
///
/// Dimensions of size 1 are dropped and neighbours that every operand walks contiguously are
/// merged, so the common cases collapse to few dimensions: same shapes → one run of all elements;
/// a scalar operand → one run where it has stride 0; `[C,1,1]` against `[N,C,H,W]` → runs of
/// `H·W` elements where it has stride 0. Within a run every operand has stride 0 or 1
/// (`innerStrides`), so kernels need only contiguous and splat loops; everything between runs
/// is handled here with counters (the general strided fallback).
struct BroadcastLayout {
    /// Merged dimensions, outermost first; the last one is the run.
    let dims: [Int]
    /// Element strides, `strides[d * operandCount + k]` for operand `k` along merged dimension `d`.
    let strides: [Int]
    let operandCount: Int
    /// Elements per run and number of runs (the product of the outer dimensions).
    let runLength: Int
    let runCount: Int
    /// Stride (0 or 1) of each operand within a run.
    let innerStrides: [Int]

    var total: Int { runLength * runCount }

    /// `operands` are contiguous tensors whose shapes broadcast to `shape` (right-aligned, equal or 1).
    init(shape: [Int], operands: [[Int]]) throws {
        let rank = shape.count
        let k = operands.count
        operandCount = k
        // Per-dimension strides of each operand read in the iteration shape (0 where broadcast).
        var full = [Int](repeating: 0, count: rank * k)
        for (j, op) in operands.enumerated() {
            guard op.count <= rank else { throw KernelError("shape \(op) does not broadcast to \(shape)") }
            let pad = rank - op.count
            var step = 1
            for i in stride(from: op.count - 1, through: 0, by: -1) {
                let d = op[i]
                guard d == shape[pad + i] || d == 1 else { throw KernelError("shape \(op) does not broadcast to \(shape)") }
                full[(pad + i) * k + j] = d == 1 ? 0 : step
                step *= d
            }
        }
        // Drop size-1 dimensions, then merge d into the previous one when every operand steps
        // through both as one contiguous (or entirely broadcast) range.
        var dims: [Int] = []
        var strides: [Int] = []
        for d in 0..<rank where shape[d] != 1 {
            let s = Array(full[(d * k)..<(d * k + k)])
            if let last = dims.last {
                let prev = strides.suffix(k)
                let mergeable = zip(prev, s).allSatisfy { p, c in p == c * shape[d] }
                if mergeable {
                    dims[dims.count - 1] = last * shape[d]
                    strides.replaceSubrange((strides.count - k)..., with: s)
                    continue
                }
            }
            dims.append(shape[d])
            strides.append(contentsOf: s)
        }
        if dims.isEmpty {  // a scalar, or all dimensions 1: one run of one element
            dims = [1]
            strides = [Int](repeating: 0, count: k)
        }
        self.dims = dims
        self.strides = strides
        runLength = dims.last!
        runCount = dims.dropLast().reduce(1, *)
        innerStrides = Array(strides.suffix(k))
    }

    /// Calls `body(run, offsets)` for each run in `runs`, in order; `offsets[k]` is operand k's
    /// element offset at the start of the run (the iteration offset itself is `run * runLength`).
    func forEachRun(_ runs: Range<Int>, _ body: (Int, UnsafePointer<Int>) -> Void) {
        guard !runs.isEmpty, runLength > 0 else { return }
        let outer = dims.count - 1
        let k = operandCount
        withUnsafeTemporaryAllocation(of: Int.self, capacity: outer + k) { buffer in
            let counter = buffer.baseAddress!
            let offsets = counter + outer
            strides.withUnsafeBufferPointer { st in
                let st = st.baseAddress!
                // Mixed-radix decomposition of the first run index.
                for j in 0..<k { offsets[j] = 0 }
                var rest = runs.lowerBound
                for d in stride(from: outer - 1, through: 0, by: -1) {
                    counter[d] = rest % dims[d]
                    rest /= dims[d]
                    for j in 0..<k { offsets[j] += counter[d] * st[d * k + j] }
                }
                for r in runs {
                    body(r, UnsafePointer(offsets))
                    // Odometer step to the next run.
                    var d = outer - 1
                    while d >= 0 {
                        counter[d] += 1
                        for j in 0..<k { offsets[j] += st[d * k + j] }
                        if counter[d] < dims[d] { break }
                        for j in 0..<k { offsets[j] -= st[d * k + j] * dims[d] }
                        counter[d] = 0
                        d -= 1
                    }
                }
            }
        }
    }

    /// Calls `body(start, offsets, count)` for contiguous segments covering the whole iteration,
    /// split over threads: `start` is the iteration (output) offset, `offsets[k]` operand k's offset,
    /// and each operand then advances by `innerStrides[k]` per element. Few long runs are split
    /// inside the run so a same-shape operation still uses every thread.
    func parallelSegments(_ context: RunContext, minChunk: Int = 1 << 14,
                          _ body: (Int, UnsafePointer<Int>, Int) -> Void) {
        guard total > 0 else { return }
        let inner = innerStrides
        if runCount >= context.threads || total < 2 * minChunk {
            context.parallelFor(runCount, minChunk: max(1, minChunk / runLength)) { runs in
                forEachRun(runs) { r, offsets in body(r * runLength, offsets, runLength) }
            }
        } else {
            forEachRun(0..<runCount) { r, offsets in
                let k = operandCount
                context.parallelFor(runLength, minChunk: minChunk) { part in
                    withUnsafeTemporaryAllocation(of: Int.self, capacity: k) { moved in
                        for j in 0..<k { moved[j] = offsets[j] + part.lowerBound * inner[j] }
                        body(r * runLength + part.lowerBound, UnsafePointer(moved.baseAddress!), part.count)
                    }
                }
            }
        }
    }
}

// MARK: - Vector loops over one segment (operand strides 0 or 1)

/// Loads up to 16 elements into a vector, padding the rest with `fill`.
@inline(__always)
func loadPartial<T: SIMDScalar>(_ p: UnsafePointer<T>, _ n: Int, fill: T) -> SIMD16<T> {
    var v = SIMD16<T>(repeating: fill)
    for j in 0..<n { v[j] = p[j] }
    return v
}

@inline(__always)
func storePartial<T: SIMDScalar>(_ v: SIMD16<T>, _ p: UnsafeMutablePointer<T>, _ n: Int) {
    for j in 0..<n { p[j] = v[j] }
}

@inline(__always)
func load16<T: SIMDScalar>(_ p: UnsafePointer<T>) -> SIMD16<T> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<T>.self)
}

@inline(__always)
func store16<T: SIMDScalar>(_ v: SIMD16<T>, _ p: UnsafeMutablePointer<T>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<T>.self)
}

/// A binary operation on 16 lanes, named by a type so that loops are specialised for it (a closure
/// passed to a generic loop goes through a reabstraction thunk per call, which stays slow).
protocol BinaryVectorOp {
    static func apply<T: ElementwiseNumber>(_ a: SIMD16<T>, _ b: SIMD16<T>) -> SIMD16<T>
}

enum VectorAdd: BinaryVectorOp {
    @inline(__always) static func apply<T: ElementwiseNumber>(_ a: SIMD16<T>, _ b: SIMD16<T>) -> SIMD16<T> { T.add(a, b) }
}
enum VectorSub: BinaryVectorOp {
    @inline(__always) static func apply<T: ElementwiseNumber>(_ a: SIMD16<T>, _ b: SIMD16<T>) -> SIMD16<T> { T.sub(a, b) }
}
enum VectorMul: BinaryVectorOp {
    @inline(__always) static func apply<T: ElementwiseNumber>(_ a: SIMD16<T>, _ b: SIMD16<T>) -> SIMD16<T> { T.mul(a, b) }
}
enum VectorDiv: BinaryVectorOp {
    @inline(__always) static func apply<T: ElementwiseNumber>(_ a: SIMD16<T>, _ b: SIMD16<T>) -> SIMD16<T> { T.div(a, b) }
}
enum VectorMax: BinaryVectorOp {
    @inline(__always) static func apply<T: ElementwiseNumber>(_ a: SIMD16<T>, _ b: SIMD16<T>) -> SIMD16<T> { T.max(a, b) }
}

/// `out[i] = Op(a[i·sa], b[i·sb])` for `n` elements, strides 0 or 1, 16 lanes at a time.
/// The tail is padded with 1 (so integer division never sees a padding zero).
@inline(__always)
func binaryLoop<T: ElementwiseNumber, Op: BinaryVectorOp>(_ a: UnsafePointer<T>, _ sa: Int, _ b: UnsafePointer<T>, _ sb: Int,
                                                          _ out: UnsafeMutablePointer<T>, _ n: Int, _: Op.Type) {
    var i = 0
    switch (sa, sb) {
    case (1, 1):
        while i + 16 <= n { store16(Op.apply(load16(a + i), load16(b + i)), out + i); i += 16 }
        if i < n { storePartial(Op.apply(loadPartial(a + i, n - i, fill: 1), loadPartial(b + i, n - i, fill: 1)), out + i, n - i) }
    case (1, 0):
        let vb = SIMD16<T>(repeating: b[0])
        while i + 16 <= n { store16(Op.apply(load16(a + i), vb), out + i); i += 16 }
        if i < n { storePartial(Op.apply(loadPartial(a + i, n - i, fill: 1), vb), out + i, n - i) }
    case (0, 1):
        let va = SIMD16<T>(repeating: a[0])
        while i + 16 <= n { store16(Op.apply(va, load16(b + i)), out + i); i += 16 }
        if i < n { storePartial(Op.apply(va, loadPartial(b + i, n - i, fill: 1)), out + i, n - i) }
    default:  // both broadcast along the run: one value repeated
        let v = Op.apply(SIMD16<T>(repeating: a[0]), SIMD16<T>(repeating: b[0]))[0]
        for j in 0..<n { out[j] = v }
    }
}

/// Applies a binary operation to two tensors with NumPy broadcasting, over threads.
func broadcastBinary<T: ElementwiseNumber, Op: BinaryVectorOp>(_ a: TensorRef, _ b: TensorRef, _ out: TensorRef,
                                                               _ context: RunContext, _ op: Op.Type, _: T.Type) throws {
    let layout = try BroadcastLayout(shape: out.shape, operands: [a.shape, b.shape])
    let pa = UnsafePointer(a.typed(T.self)), pb = UnsafePointer(b.typed(T.self)), po = out.typed(T.self)
    // One operand whole, the other a short row repeated along it ([N, H, W, C] and [C] in NHWC): runs of C elements
    // are too short for vectors, so the row is tiled once into a pattern and the loop runs over whole patterns.
    if layout.dims.count == 2, layout.runLength < 64, layout.runCount > 1 {
        let p = layout.runLength
        if layout.strides == [p, 0, 1, 1] { periodicBinary(pa, row: pb, po, period: p, rows: layout.runCount, rowFirst: false, context, op); return }
        if layout.strides == [0, p, 1, 1] { periodicBinary(pb, row: pa, po, period: p, rows: layout.runCount, rowFirst: true, context, op); return }
    }
    let sa = layout.innerStrides[0], sb = layout.innerStrides[1]
    layout.parallelSegments(context) { start, offsets, n in
        binaryLoop(pa + offsets[0], sa, pb + offsets[1], sb, po + start, n, op)
    }
}

/// out[r·period + j] = Op(whole[r·period + j], row[j]) (or Op(row[j], whole[...]) when `rowFirst`) for r < rows, j < period:
/// the row tiled into a pattern of whole periods at least 256 elements long, then contiguous loops of that length.
private func periodicBinary<T: ElementwiseNumber, Op: BinaryVectorOp>(_ whole: UnsafePointer<T>, row: UnsafePointer<T>,
                                                                      _ out: UnsafeMutablePointer<T>, period: Int, rows: Int,
                                                                      rowFirst: Bool, _ context: RunContext, _ op: Op.Type) {
    let reps = max(1, 256 / period), span = reps * period
    withUnsafeTemporaryAllocation(of: T.self, capacity: span) { pattern in
        for r in 0..<reps { for j in 0..<period { pattern[r * period + j] = row[j] } }
        let tiled = UnsafePointer(pattern.baseAddress!)
        let blocks = (rows + reps - 1) / reps
        context.parallelFor(blocks, minChunk: max(1, (1 << 14) / span)) { range in
            for block in range {
                let start = block * span, n = min(reps, rows - block * reps) * period
                if rowFirst { binaryLoop(tiled, 1, whole + start, 1, out + start, n, op) } else { binaryLoop(whole + start, 1, tiled, 1, out + start, n, op) }
            }
        }
    }
}

/// A function on 16 float lanes, as a type. Loops specialised for it inline it; a closure, even
/// of concrete type, is not reliably inlined into the loop and costs about twice as much.
protocol VectorMap {
    func callAsFunction(_ v: SIMD16<Float>) -> SIMD16<Float>
}

/// `out[i] = f(x[i])` for `n` contiguous floats, 16 lanes at a time (tail padded with `pad`).
@inline(__always)
func mapLoop<F: VectorMap>(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int, pad: Float = 0, _ f: F) {
    var i = 0
    while i + 16 <= n { store16(f(load16(x + i)), out + i); i += 16 }
    if i < n { storePartial(f(loadPartial(x + i, n - i, fill: pad)), out + i, n - i) }
}

/// `out[i] = f(x[i])` for other element types (rarely hot: integer Clip and Relu, float64 Sqrt).
@inline(__always)
func unaryLoop<T: SIMDScalar>(_ x: UnsafePointer<T>, _ out: UnsafeMutablePointer<T>, _ n: Int, pad: T,
                              _ f: (SIMD16<T>) -> SIMD16<T>) {
    var i = 0
    while i + 16 <= n { store16(f(load16(x + i)), out + i); i += 16 }
    if i < n { storePartial(f(loadPartial(x + i, n - i, fill: pad)), out + i, n - i) }
}
