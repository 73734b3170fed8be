import Foundation
import OnnxIO

extension OpRegistry {
    static let activationOps: [String: KernelFactory] = [
        "Relu": { _ in ReluKernel() },
        "LeakyRelu": { info in ActivationKernel("LeakyRelu", .leakyRelu(alpha: try info.float("alpha", 0.01))) },
        "Sigmoid": { _ in ActivationKernel("Sigmoid", .sigmoid) },
        "HardSigmoid": { info in
            ActivationKernel("HardSigmoid", .hardSigmoid(alpha: try info.float("alpha", 0.2), beta: try info.float("beta", 0.5)))
        },
        "HardSwish": { _ in ActivationKernel("HardSwish", .hardSwish) },
        "Tanh": { _ in ActivationKernel("Tanh", .tanh) },
        "Clip": { info in try ClipKernel(info) },
        "Softmax": { info in try SoftmaxKernel(info) },
    ]
}

// MARK: - Fusable activations

/// A float32 activation applied in place or from one buffer to another, vectorised.
/// Conv (and any kernel producing float rows) can apply one to its output block while it is in cache.
enum Activation: Equatable {
    case none
    case relu
    case leakyRelu(alpha: Float)
    /// min(max(x, min), max): when min > max every element becomes max, as ONNX specifies.
    case clip(min: Float, max: Float)
    case sigmoid
    case hardSigmoid(alpha: Float, beta: Float)
    case hardSwish
    /// x · sigmoid(x) (SiLU; EfficientNet's activation, which exporters write as Sigmoid and Mul).
    case swish
    case tanh

    /// Applies the activation in place to `count` contiguous floats.
    func apply(_ p: UnsafeMutablePointer<Float>, count: Int) { apply(UnsafePointer(p), p, count: count) }

    /// y = f(x) for `count` contiguous floats (`y` may be `x`).
    func apply(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .none:
            if UnsafePointer(y) != x { y.update(from: x, count: count) }
        case .relu: mapLoop(x, y, count, ReluMap())
        case .leakyRelu(let alpha): mapLoop(x, y, count, LeakyReluMap(alpha: alpha))
        case .clip(let lo, let hi): mapLoop(x, y, count, ClipMap(lo: lo, hi: hi))
        case .sigmoid: mapLoop(x, y, count, SigmoidMap())
        case .hardSigmoid(let alpha, let beta): mapLoop(x, y, count, HardSigmoidMap(alpha: alpha, beta: beta))
        case .hardSwish: mapLoop(x, y, count, HardSwishMap())
        case .swish: mapLoop(x, y, count, SwishMap())
        case .tanh: mapLoop(x, y, count, TanhMap())
        }
    }
}

struct ReluMap: VectorMap {
    @inline(__always) func callAsFunction(_ v: SIMD16<Float>) -> SIMD16<Float> { v.replacing(with: 0, where: v .< 0) }
}

struct LeakyReluMap: VectorMap {
    let alpha: Float
    @inline(__always) func callAsFunction(_ v: SIMD16<Float>) -> SIMD16<Float> { v.replacing(with: v * alpha, where: v .< 0) }
}

struct ClipMap: VectorMap {
    let lo: Float, hi: Float
    @inline(__always) func callAsFunction(_ v: SIMD16<Float>) -> SIMD16<Float> { clamp(v, lo, hi) }
}

struct SigmoidMap: VectorMap {
    @inline(__always) func callAsFunction(_ v: SIMD16<Float>) -> SIMD16<Float> { 1 / (1 + simdExp(-v)) }
}

struct SwishMap: VectorMap {
    @inline(__always) func callAsFunction(_ v: SIMD16<Float>) -> SIMD16<Float> { v / (1 + simdExp(-v)) }
}

struct HardSigmoidMap: VectorMap {
    let alpha: Float, beta: Float
    @inline(__always) func callAsFunction(_ v: SIMD16<Float>) -> SIMD16<Float> { clamp(v * alpha + beta, 0, 1) }
}

/// x · HardSigmoid(x) with alpha = 1/6, beta = 0.5.
struct HardSwishMap: VectorMap {
    @inline(__always) func callAsFunction(_ v: SIMD16<Float>) -> SIMD16<Float> { v * clamp(v * (1 / 6 as Float) + 0.5, 0, 1) }
}

struct TanhMap: VectorMap {
    @inline(__always) func callAsFunction(_ v: SIMD16<Float>) -> SIMD16<Float> { simdTanh(v) }
}

/// v · k.
struct ScaleMap: VectorMap {
    let k: Float
    @inline(__always) func callAsFunction(_ v: SIMD16<Float>) -> SIMD16<Float> { v * k }
}

/// Clamps lanes to [lo, hi], lower bound first (so lo > hi gives hi); NaN stays NaN.
@inline(__always)
func clamp<T: SIMDScalar & Comparable>(_ v: SIMD16<T>, _ lo: T, _ hi: T) -> SIMD16<T> {
    let r = v.replacing(with: lo, where: v .< lo)
    return r.replacing(with: hi, where: r .> hi)
}

/// The same for float32, written on the concrete type so the comparisons compile to vector
/// instructions (the generic version runs lane by lane).
@inline(__always)
func clamp(_ v: SIMD16<Float>, _ lo: Float, _ hi: Float) -> SIMD16<Float> {
    let r = v.replacing(with: lo, where: v .< lo)
    return r.replacing(with: hi, where: r .> hi)
}

/// e^x for 16 lanes (Cephes-style: 2^n · p(r) with |r| <= ln2/2), within about 2 ulp of expf.
/// Overflows to +inf above ~88.72 and underflows to 0 below ~-103.9, like expf; NaN stays NaN.
@inline(__always)
func simdExp(_ x: SIMD16<Float>) -> SIMD16<Float> {
    var x = x.replacing(with: 89, where: x .> 89)
    x = x.replacing(with: -104, where: x .< -104)
    // n = round(x·log2 e): adding 1.5·2^23 leaves n in the low mantissa bits of t.
    let magic: Float = 12_582_912
    let t = x * 1.442_695_04 + magic
    let n = t - magic
    // r = x − n·ln 2, with ln 2 split in two so that n·C1 is exact.
    let r = x - n * 0.693_359_375 - n * -2.121_944_4e-4
    var p = SIMD16<Float>(repeating: 1.987_569_15e-4)
    p = p * r + 1.398_199_95e-3
    p = p * r + 8.333_451_9e-3
    p = p * r + 4.166_579_59e-2
    p = p * r + 1.666_666_55e-1
    p = p * r + 5.000_000_12e-1
    let er = p * r * r + r + 1
    // 2^n built in the exponent field, in two halves so n in [-150, 128] stays representable.
    let ni = unsafeBitCast(t, to: SIMD16<Int32>.self) &- 0x4B40_0000
    let n1 = ni &>> 1, n2 = ni &- n1
    let s1 = unsafeBitCast((n1 &+ 127) &<< 23, to: SIMD16<Float>.self)
    let s2 = unsafeBitCast((n2 &+ 127) &<< 23, to: SIMD16<Float>.self)
    return er * s1 * s2
}

/// tanh for 16 lanes: odd Taylor polynomial near 0 (where 1 − e^(−2|x|) would cancel), else
/// (1 − e^(−2|x|)) / (1 + e^(−2|x|)); the sign is copied back from x.
@inline(__always)
func simdTanh(_ v: SIMD16<Float>) -> SIMD16<Float> {
    let bits = unsafeBitCast(v, to: SIMD16<UInt32>.self)
    let a = unsafeBitCast(bits & 0x7FFF_FFFF, to: SIMD16<Float>.self)
    let e = simdExp(-2 * a)
    let large = (1 - e) / (1 + e)
    let a2 = a * a
    var p = SIMD16<Float>(repeating: 62.0 / 2835.0)
    p = p * a2 - 17.0 / 315.0
    p = p * a2 + 2.0 / 15.0
    p = p * a2 - 1.0 / 3.0
    let small = a + a * a2 * p
    let t = large.replacing(with: small, where: a .< 0.3)
    return unsafeBitCast(unsafeBitCast(t, to: SIMD16<UInt32>.self) | (bits & 0x8000_0000), to: SIMD16<Float>.self)
}

// X: any shape, float32 -> Y: same shape. One kernel for every float-only pointwise activation.
final class ActivationKernel: Kernel {
    let name: String
    let activation: Activation

    init(_ name: String, _ activation: Activation) {
        self.name = name
        self.activation = activation
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0)
        guard x.dtype == .float else { throw unsupportedType(x.dtype, name) }
        return [ValueSpec(.float, x.shape)]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = UnsafePointer(inputs.at(0).floats), y = outputs[0].floats
        context.parallelFor(outputs[0].count, minChunk: 1 << 14) { r in
            activation.apply(x + r.lowerBound, y + r.lowerBound, count: r.count)
        }
    }
}

// X: any shape, any numeric type -> Y: same shape, max(x, 0).
final class ReluKernel: Kernel {
    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0)
        guard isNumeric(x.dtype) else { throw unsupportedType(x.dtype, "Relu") }
        return [ValueSpec(x.dtype, x.shape)]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0), y = outputs[0]
        if x.dtype == .float {
            let px = UnsafePointer(x.floats), py = y.floats
            context.parallelFor(y.count, minChunk: 1 << 14) { r in
                mapLoop(px + r.lowerBound, py + r.lowerBound, r.count, ReluMap())
            }
        } else {
            try dispatchNumeric(x.dtype, "Relu", Loop(x: x, y: y, context: context))
        }
    }

    private struct Loop: NumericLoop {
        let x: TensorRef, y: TensorRef
        let context: RunContext

        func run<T: ElementwiseNumber>(_: T.Type) {
            let px = UnsafePointer(x.typed(T.self)), py = y.typed(T.self)
            context.parallelFor(y.count, minChunk: 1 << 14) { r in
                unaryLoop(px + r.lowerBound, py + r.lowerBound, r.count, pad: 0) { T.max($0, SIMD16(repeating: 0)) }
            }
        }
    }
}

// MARK: - Clip

// input: any shape, any numeric type; min, max: scalars of the same type (opset >= 11, optional) -> output: same shape.
// Opset < 11 takes min/max as float attributes (defaults ∓FLT_MAX).
final class ClipKernel: Kernel {
    /// Bounds from attributes (opset < 11); nil when they come from inputs.
    let attributeBounds: (min: Float, max: Float)?

    init(_ info: NodeInfo) throws {
        attributeBounds = info.opset < 11
            ? (try info.float("min", -.greatestFiniteMagnitude), try info.float("max", .greatestFiniteMagnitude)) : nil
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0)
        guard isNumeric(x.dtype) else { throw unsupportedType(x.dtype, "Clip") }
        if attributeBounds == nil {
            for i in 1...2 {
                guard let b = inputs.optional(i) else { continue }
                guard b.dtype == x.dtype, b.count == 1 else {
                    throw KernelError("Clip bound \(i) must be a single \(x.dtype) value, got \(b.dtype)\(b.shape)")
                }
            }
        }
        return [ValueSpec(x.dtype, x.shape)]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0), y = outputs[0]
        if x.dtype == .float {
            // The float32 path is the fused activation, vectorised on the concrete type.
            var lo = -Float.infinity, hi = Float.infinity
            if let b = attributeBounds {
                (lo, hi) = b
            } else {
                if inputs.count > 1, let m = inputs[1] { lo = m.floats[0] }
                if inputs.count > 2, let m = inputs[2] { hi = m.floats[0] }
            }
            let activation = Activation.clip(min: lo, max: hi), px = UnsafePointer(x.floats), py = y.floats
            context.parallelFor(y.count, minChunk: 1 << 14) { r in
                activation.apply(px + r.lowerBound, py + r.lowerBound, count: r.count)
            }
            return
        }
        try dispatchNumeric(x.dtype, "Clip", Loop(bounds: attributeBounds, inputs: inputs, y: y, context: context))
    }

    private struct Loop: NumericLoop {
        let bounds: (min: Float, max: Float)?
        let inputs: [TensorRef?], y: TensorRef
        let context: RunContext

        func run<T: ElementwiseNumber>(_: T.Type) {
            // Absent bounds leave that side unclamped (integers: the type's full range).
            var lo = T.lowest, hi = T(fromDouble: .infinity)
            if let b = bounds {
                lo = T(fromDouble: Double(b.min))
                hi = T(fromDouble: Double(b.max))
            } else {
                if inputs.count > 1, let m = inputs[1] { lo = m.typed(T.self)[0] }
                if inputs.count > 2, let m = inputs[2] { hi = m.typed(T.self)[0] }
            }
            let px = UnsafePointer(inputs.at(0).typed(T.self)), py = y.typed(T.self)
            context.parallelFor(y.count, minChunk: 1 << 14) { r in
                unaryLoop(px + r.lowerBound, py + r.lowerBound, r.count, pad: 0) { clamp($0, lo, hi) }
            }
        }
    }
}

// MARK: - Softmax

// input: any shape, float32 -> output: same shape. Opset >= 13: softmax along `axis` (default -1).
// Opset < 13: the input is seen as 2-D [prod(dims before axis), prod(dims from axis)] (axis default 1)
// and each row is normalised.
final class SoftmaxKernel: Kernel {
    let axis: Int
    let coerce2D: Bool

    init(_ info: NodeInfo) throws {
        coerce2D = info.opset < 13
        axis = try info.int("axis", coerce2D ? 1 : -1)
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0)
        guard x.dtype == .float else { throw unsupportedType(x.dtype, "Softmax") }
        if coerce2D {
            // The 2-D view may split after the last dimension (axis == rank: rows of one element).
            guard axis >= -x.shape.count && axis <= x.shape.count else {
                throw KernelError("axis \(axis) is out of range for rank \(x.shape.count)")
            }
        } else {
            _ = try normalizeAxis(axis, rank: x.shape.count)
        }
        return [ValueSpec(.float, x.shape)]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0), shape = x.shape
        guard x.count > 0 else { return }
        // outer × n × inner, normalising over n.
        let outer: Int, n: Int, inner: Int
        if coerce2D {
            let a = axis < 0 ? axis + shape.count : axis
            outer = shape[..<a].reduce(1, *)
            n = shape[a...].reduce(1, *)
            inner = 1
        } else {
            let a = try normalizeAxis(axis, rank: shape.count)
            outer = shape[..<a].reduce(1, *)
            n = shape.isEmpty ? 1 : shape[a]
            inner = shape.isEmpty ? 1 : shape[(a + 1)...].reduce(1, *)
        }
        let px = UnsafePointer(x.floats), py = outputs[0].floats
        if inner == 1 {
            context.parallelFor(outer, minChunk: max(1, 4096 / n)) { rows in
                for r in rows { softmaxRow(px + r * n, py + r * n, n) }
            }
        } else {
            // Whole rows of `inner` at a time (contiguous reads), with a running max and sum per
            // column. Few outer blocks (softmax over axis 0) are split by columns across threads.
            let splits = outer >= context.threads ? 1 : min(context.threads, max(1, inner / 256))
            context.parallelFor(outer * splits, minChunk: max(1, 16384 / (n * inner / splits))) { jobs in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * inner) { buffer in
                    let m = buffer.baseAddress!, s = m + inner
                    for job in jobs {
                        let o = job / splits, part = job % splits
                        let j0 = inner * part / splits, j1 = inner * (part + 1) / splits
                        let base = o * n * inner + j0
                        softmaxStrided(px + base, py + base, n: n, width: j1 - j0, stride: inner, max: m, sum: s)
                    }
                }
            }
        }
    }
}

/// Softmax of one contiguous row of `n` floats.
func softmaxRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    let minusInf = -Float.infinity
    var m = SIMD16<Float>(repeating: minusInf)
    var i = 0
    while i + 16 <= n { let v = load16(x + i); m = m.replacing(with: v, where: v .> m); i += 16 }
    if i < n { let v = loadPartial(x + i, n - i, fill: minusInf); m = m.replacing(with: v, where: v .> m) }
    let mx = SIMD16(repeating: m.max())
    var s = SIMD16<Float>(repeating: 0)
    i = 0
    while i + 16 <= n { let e = simdExp(load16(x + i) - mx); store16(e, y + i); s += e; i += 16 }
    if i < n {
        // Padding lanes are -inf, whose exponential is 0: they add nothing to the sum.
        let e = simdExp(loadPartial(x + i, n - i, fill: minusInf) - mx)
        storePartial(e, y + i, n - i)
        s += e
    }
    let inv = 1 / s.sum()
    mapLoop(UnsafePointer(y), y, n, ScaleMap(k: inv))
}

/// Softmax down each of `width` adjacent columns of an [n, stride] block, reading row by row;
/// `max` and `sum` are scratch rows of `width` floats.
func softmaxStrided(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, n: Int, width: Int, stride: Int,
                    max m: UnsafeMutablePointer<Float>, sum s: UnsafeMutablePointer<Float>) {
    @inline(__always) func get(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD16<Float> {
        i + 16 <= width ? load16(p + i) : loadPartial(p + i, width - i, fill: 1)
    }
    @inline(__always) func put(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
        if i + 16 <= width { store16(v, p + i) } else { storePartial(v, p + i, width - i) }
    }
    // Column maxima.
    m.update(from: x, count: width)
    for d in 1..<n {
        let row = x + d * stride
        for i in Swift.stride(from: 0, to: width, by: 16) {
            let v = get(row, i), a = get(m, i)
            put(a.replacing(with: v, where: v .> a), m, i)
        }
    }
    // Exponentials, and their column sums.
    s.update(repeating: 0, count: width)
    for d in 0..<n {
        let row = x + d * stride, out = y + d * stride
        for i in Swift.stride(from: 0, to: width, by: 16) {
            let e = simdExp(get(row, i) - get(m, i))
            put(e, out, i)
            put(get(s, i) + e, s, i)
        }
    }
    // Normalise by the sums.
    for i in Swift.stride(from: 0, to: width, by: 16) { put(1 / get(s, i), s, i) }
    for d in 0..<n {
        let out = y + d * stride
        for i in Swift.stride(from: 0, to: width, by: 16) { put(get(out, i) * get(s, i), out, i) }
    }
}

// MARK: - Training

/// ReLU6 (Clip 0…6) as the trainer runs it, over `count` floats: x, y, dy, dx all [count].
public enum Relu6Training {
    /// y = min(max(x, 0), 6). y may alias x.
    public static func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, count: Int, threads: Int) {
        RunContext(threads: threads, scratch: nil).parallelFor(count, minChunk: 1 << 14) { r in
            mapLoop(x + r.lowerBound, y + r.lowerBound, r.count, ClipMap(lo: 0, hi: 6))
        }
    }
    /// dx = dy where 0 < y < 6, else 0 (TensorFlow's Relu6Grad, from the output). dx may alias dy.
    /// Of `y = min(max(x, 0), 6)`: dy/dx is 1 strictly inside the interval and 0 on the clipped sides.
    public static func backward(y: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                                count: Int, threads: Int) {
        @inline(__always) func gate(_ y: SIMD16<Float>, _ dy: SIMD16<Float>) -> SIMD16<Float> {
            dy.replacing(with: 0, where: (y .<= 0) .| (y .>= 6))
        }
        RunContext(threads: threads, scratch: nil).parallelFor(count, minChunk: 1 << 14) { r in
            var i = r.lowerBound
            while i + 16 <= r.upperBound { store16(gate(load16(y + i), load16(dy + i)), dx + i); i += 16 }
            if i < r.upperBound {
                let n = r.upperBound - i
                storePartial(gate(loadPartial(y + i, n, fill: 0), loadPartial(dy + i, n, fill: 0)), dx + i, n)
            }
        }
    }
}
