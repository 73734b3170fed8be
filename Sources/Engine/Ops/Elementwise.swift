import Foundation
import OnnxIO

extension OpRegistry {
    static let elementwiseOps: [String: KernelFactory] = [
        "Add": { info in try ArithmeticKernel(info, .add) },
        "Sub": { info in try ArithmeticKernel(info, .sub) },
        "Mul": { info in try ArithmeticKernel(info, .mul) },
        "Div": { info in try ArithmeticKernel(info, .div) },
        "Pow": { info in try PowKernel(info) },
        "Sqrt": { _ in SqrtKernel() },
        "Expand": { _ in ExpandKernel() },
    ]
}

// MARK: - Element types

/// The numeric element types elementwise kernels are written once for (generic, specialised by
/// the compiler): float32, float64 and the 8- to 64-bit integers. Integer arithmetic wraps,
/// as in NumPy and ONNX Runtime.
protocol ElementwiseNumber: SIMDScalar, Numeric, Comparable, Hashable, Codable {
    static var isInteger: Bool { get }
    /// The smallest value (-inf for floats): the identity of max.
    static var lowest: Self { get }
    var doubleValue: Double { get }
    /// Rounds toward zero for integers (NaN → 0, out of range → clamped), as a C cast would.
    init(fromDouble d: Double)
    /// Wraps for integers (as a C cast), rounds for floats.
    init(wrapping v: Int64)
    static func add(_ a: SIMD16<Self>, _ b: SIMD16<Self>) -> SIMD16<Self>
    static func sub(_ a: SIMD16<Self>, _ b: SIMD16<Self>) -> SIMD16<Self>
    static func mul(_ a: SIMD16<Self>, _ b: SIMD16<Self>) -> SIMD16<Self>
    /// Integer division truncates toward zero; the caller rules out zero divisors.
    static func div(_ a: SIMD16<Self>, _ b: SIMD16<Self>) -> SIMD16<Self>
    static func max(_ a: SIMD16<Self>, _ b: SIMD16<Self>) -> SIMD16<Self>
    /// Sum of the lanes (wrapping for integers).
    static func total(_ v: SIMD16<Self>) -> Self
    /// a + b, wrapping for integers.
    static func plus(_ a: Self, _ b: Self) -> Self
}

extension ElementwiseNumber where Self: BinaryFloatingPoint {
    static var isInteger: Bool { false }
    static var lowest: Self { -.infinity }
    var doubleValue: Double { Double(self) }
    init(fromDouble d: Double) { self.init(d) }
    init(wrapping v: Int64) { self.init(v) }
    @inline(__always) static func add(_ a: SIMD16<Self>, _ b: SIMD16<Self>) -> SIMD16<Self> { a + b }
    @inline(__always) static func sub(_ a: SIMD16<Self>, _ b: SIMD16<Self>) -> SIMD16<Self> { a - b }
    @inline(__always) static func mul(_ a: SIMD16<Self>, _ b: SIMD16<Self>) -> SIMD16<Self> { a * b }
    @inline(__always) static func div(_ a: SIMD16<Self>, _ b: SIMD16<Self>) -> SIMD16<Self> { a / b }
    @inline(__always) static func total(_ v: SIMD16<Self>) -> Self { v.sum() }
    @inline(__always) static func plus(_ a: Self, _ b: Self) -> Self { a + b }
}

extension ElementwiseNumber where Self: FixedWidthInteger {
    static var isInteger: Bool { true }
    static var lowest: Self { .min }
    var doubleValue: Double { Double(self) }
    init(fromDouble d: Double) {
        if d.isNaN { self = 0 } else if d <= Double(Self.min) { self = .min } else if d >= Double(Self.max) { self = .max } else { self.init(d.rounded(.towardZero)) }
    }
    init(wrapping v: Int64) { self.init(truncatingIfNeeded: v) }
    @inline(__always) static func add(_ a: SIMD16<Self>, _ b: SIMD16<Self>) -> SIMD16<Self> { a &+ b }
    @inline(__always) static func sub(_ a: SIMD16<Self>, _ b: SIMD16<Self>) -> SIMD16<Self> { a &- b }
    @inline(__always) static func mul(_ a: SIMD16<Self>, _ b: SIMD16<Self>) -> SIMD16<Self> { a &* b }
    @inline(__always) static func div(_ a: SIMD16<Self>, _ b: SIMD16<Self>) -> SIMD16<Self> {
        // Lane by lane so that min / -1 wraps instead of trapping.
        var r = SIMD16<Self>()
        for j in 0..<16 { r[j] = a[j].dividedReportingOverflow(by: b[j]).partialValue }
        return r
    }
    @inline(__always) static func max(_ a: SIMD16<Self>, _ b: SIMD16<Self>) -> SIMD16<Self> { pointwiseMax(a, b) }
    @inline(__always) static func total(_ v: SIMD16<Self>) -> Self { v.wrappedSum() }
    @inline(__always) static func plus(_ a: Self, _ b: Self) -> Self { a &+ b }
}

// The common types restate the vector operations on their concrete types: in generic code the
// SIMD operators resolve to the stdlib's generic lane-by-lane versions, which stay slow even once
// specialised. The defaults above serve the rarer types.
extension Float: ElementwiseNumber {
    @inline(__always) static func add(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { a + b }
    @inline(__always) static func sub(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { a - b }
    @inline(__always) static func mul(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { a * b }
    @inline(__always) static func div(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { a / b }
    /// NaN propagates (as np.maximum): a lane takes b where b > a or b is NaN.
    @inline(__always) static func max(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> {
        a.replacing(with: b, where: b .> a .| (b .!= b))
    }
    @inline(__always) static func total(_ v: SIMD16<Float>) -> Float { v.sum() }
}

extension Double: ElementwiseNumber {
    @inline(__always) static func add(_ a: SIMD16<Double>, _ b: SIMD16<Double>) -> SIMD16<Double> { a + b }
    @inline(__always) static func sub(_ a: SIMD16<Double>, _ b: SIMD16<Double>) -> SIMD16<Double> { a - b }
    @inline(__always) static func mul(_ a: SIMD16<Double>, _ b: SIMD16<Double>) -> SIMD16<Double> { a * b }
    @inline(__always) static func div(_ a: SIMD16<Double>, _ b: SIMD16<Double>) -> SIMD16<Double> { a / b }
    @inline(__always) static func max(_ a: SIMD16<Double>, _ b: SIMD16<Double>) -> SIMD16<Double> {
        a.replacing(with: b, where: b .> a .| (b .!= b))
    }
    @inline(__always) static func total(_ v: SIMD16<Double>) -> Double { v.sum() }
}

extension Int32: ElementwiseNumber {
    @inline(__always) static func add(_ a: SIMD16<Int32>, _ b: SIMD16<Int32>) -> SIMD16<Int32> { a &+ b }
    @inline(__always) static func sub(_ a: SIMD16<Int32>, _ b: SIMD16<Int32>) -> SIMD16<Int32> { a &- b }
    @inline(__always) static func mul(_ a: SIMD16<Int32>, _ b: SIMD16<Int32>) -> SIMD16<Int32> { a &* b }
    @inline(__always) static func max(_ a: SIMD16<Int32>, _ b: SIMD16<Int32>) -> SIMD16<Int32> { a.replacing(with: b, where: b .> a) }
}

extension Int64: ElementwiseNumber {
    @inline(__always) static func add(_ a: SIMD16<Int64>, _ b: SIMD16<Int64>) -> SIMD16<Int64> { a &+ b }
    @inline(__always) static func sub(_ a: SIMD16<Int64>, _ b: SIMD16<Int64>) -> SIMD16<Int64> { a &- b }
    @inline(__always) static func mul(_ a: SIMD16<Int64>, _ b: SIMD16<Int64>) -> SIMD16<Int64> { a &* b }
    @inline(__always) static func max(_ a: SIMD16<Int64>, _ b: SIMD16<Int64>) -> SIMD16<Int64> { a.replacing(with: b, where: b .> a) }
}

extension Int8: ElementwiseNumber {}
extension Int16: ElementwiseNumber {}
extension UInt8: ElementwiseNumber {}
extension UInt16: ElementwiseNumber {}
extension UInt32: ElementwiseNumber {}
extension UInt64: ElementwiseNumber {}

/// A loop written once, generically, for every numeric element type.
protocol NumericLoop { func run<T: ElementwiseNumber>(_: T.Type) throws }

/// Runs `loop` with the Swift type of `dtype`. The switch names each concrete type so the compiler
/// specialises the loop for it; calling through an `any ElementwiseNumber.Type` would run the
/// unspecialised generic code, an order of magnitude slower.
func dispatchNumeric(_ dtype: DataType, _ op: String, _ loop: some NumericLoop) throws {
    switch dtype {
    case .float: try loop.run(Float.self)
    case .double: try loop.run(Double.self)
    case .int8: try loop.run(Int8.self)
    case .int16: try loop.run(Int16.self)
    case .int32: try loop.run(Int32.self)
    case .int64: try loop.run(Int64.self)
    case .uint8: try loop.run(UInt8.self)
    case .uint16: try loop.run(UInt16.self)
    case .uint32: try loop.run(UInt32.self)
    case .uint64: try loop.run(UInt64.self)
    default: throw unsupportedType(dtype, op)
    }
}

/// Element types `dispatchNumeric` handles.
func isNumeric(_ dtype: DataType) -> Bool {
    switch dtype {
    case .float, .double, .int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64: return true
    default: return false
    }
}

func unsupportedType(_ dtype: DataType, _ op: String) -> KernelError {
    KernelError("\(op) does not support element type \(dtype)", unsupported: true)
}

// MARK: - Add, Sub, Mul, Div

/// Shape of B as broadcast under opset < 7 rules: with `broadcast=1`, B's dimensions line up with
/// A's starting at `axis` (default: trailing); without it the shapes must be equal.
func legacyBroadcastShape(_ a: [Int], _ b: [Int], broadcast: Bool, axis: Int?) throws -> [Int] {
    guard broadcast else {
        guard a == b else { throw KernelError("shapes \(a) and \(b) differ and the node does not set broadcast=1 (opset < 7)") }
        return b
    }
    guard b.count <= a.count else { throw KernelError("B \(b) has higher rank than A \(a) (opset < 7 broadcast)") }
    let start = axis.map { $0 < 0 ? $0 + a.count : $0 } ?? (a.count - b.count)
    guard start >= 0 && start <= a.count - b.count else { throw KernelError("axis \(axis ?? 0) does not place B \(b) inside A \(a)") }
    let shape = [Int](repeating: 1, count: start) + b + [Int](repeating: 1, count: a.count - start - b.count)
    guard try broadcastShape(a, shape) == a else { throw KernelError("B \(b) does not broadcast onto A \(a) at axis \(start)") }
    return shape
}

/// How a binary node broadcasts: NumPy rules, or the opset < 7 attributes.
struct BinaryBroadcast {
    /// (broadcast, axis) for opset < 7; nil for NumPy broadcasting.
    let legacy: (broadcast: Bool, axis: Int?)?

    init(_ info: NodeInfo) throws {
        legacy = info.opset < 7 ? (try info.int("broadcast", 0) != 0, try info.int("axis")) : nil
    }

    /// B's shape to broadcast with (legacy rules reshape it) and the output shape.
    func shapes(_ a: [Int], _ b: [Int]) throws -> (b: [Int], out: [Int]) {
        guard let legacy else { return (b, try broadcastShape(a, b)) }
        return (try legacyBroadcastShape(a, b, broadcast: legacy.broadcast, axis: legacy.axis), a)
    }
}

// A: any shape, B: any shape broadcastable with A -> C: broadcast(A, B), same element type.
final class ArithmeticKernel: Kernel {
    enum Op: String { case add = "Add", sub = "Sub", mul = "Mul", div = "Div" }
    let op: Op
    let broadcast: BinaryBroadcast

    init(_ info: NodeInfo, _ op: Op) throws {
        self.op = op
        broadcast = try BinaryBroadcast(info)
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let a = try inputs.spec(0), b = try inputs.spec(1)
        guard a.dtype == b.dtype else { throw KernelError("\(op.rawValue) inputs have different element types \(a.dtype) and \(b.dtype)") }
        guard isNumeric(a.dtype) else { throw unsupportedType(a.dtype, op.rawValue) }
        return [ValueSpec(a.dtype, try broadcast.shapes(a.shape, b.shape).out)]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let a = inputs.at(0), b0 = inputs.at(1)
        let b = TensorRef(dtype: b0.dtype, shape: try broadcast.shapes(a.shape, b0.shape).b, data: b0.data)
        try dispatchNumeric(a.dtype, op.rawValue, Loop(op: op, a: a, b: b, out: outputs[0], context: context))
    }

    private struct Loop: NumericLoop {
        let op: Op
        let a: TensorRef, b: TensorRef, out: TensorRef
        let context: RunContext

        func run<T: ElementwiseNumber>(_: T.Type) throws {
            switch op {
            case .add: try broadcastBinary(a, b, out, context, VectorAdd.self, T.self)
            case .sub: try broadcastBinary(a, b, out, context, VectorSub.self, T.self)
            case .mul: try broadcastBinary(a, b, out, context, VectorMul.self, T.self)
            case .div:
                if T.isInteger {
                    let p = b.typed(T.self)
                    for i in 0..<b.count where p[i] == 0 { throw KernelError("integer division by zero (divisor element \(i))") }
                }
                try broadcastBinary(a, b, out, context, VectorDiv.self, T.self)
            }
        }
    }
}

// MARK: - Pow

// X: any shape, Y: broadcastable with X (element type may differ, opset >= 12) -> Z: broadcast(X, Y), X's type.
final class PowKernel: Kernel {
    let broadcast: BinaryBroadcast

    init(_ info: NodeInfo) throws { broadcast = try BinaryBroadcast(info) }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0), y = try inputs.spec(1)
        guard isNumeric(x.dtype) else { throw unsupportedType(x.dtype, "Pow") }
        guard isNumeric(y.dtype) else { throw unsupportedType(y.dtype, "Pow exponent") }
        return [ValueSpec(x.dtype, try broadcast.shapes(x.shape, y.shape).out)]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0), y0 = inputs.at(1), out = outputs[0]
        let y = TensorRef(dtype: y0.dtype, shape: try broadcast.shapes(x.shape, y0.shape).b, data: y0.data)
        // Small integer exponents are common (variance in decomposed normalisations, x³ in GELU
        // approximations): multiplies, exact for x² and within an ulp of pow for x³.
        if x.dtype == .float && y.dtype == .float && y.count == 1 && (y.floats[0] == 1 || y.floats[0] == 2 || y.floats[0] == 3) {
            let e = Int(y.floats[0])
            let layout = try BroadcastLayout(shape: out.shape, operands: [x.shape])
            let px = UnsafePointer(x.floats), po = out.floats
            layout.parallelSegments(context) { start, offsets, n in
                if layout.innerStrides[0] == 0 {
                    let v = px[offsets[0]]
                    let r = e == 1 ? v : e == 2 ? v * v : v * v * v
                    for i in 0..<n { po[start + i] = r }
                } else if e == 2 {
                    mapLoop(px + offsets[0], po + start, n, SquareMap())
                } else if e == 3 {
                    mapLoop(px + offsets[0], po + start, n, CubeMap())
                } else {
                    (po + start).update(from: px + offsets[0], count: n)
                }
            }
            return
        }
        try dispatchNumeric(x.dtype, "Pow", Loop(x: x, y: y, out: out, context: context))
    }

    private struct Loop: NumericLoop {
        let x: TensorRef, y: TensorRef, out: TensorRef
        let context: RunContext

        func run<B: ElementwiseNumber>(_: B.Type) throws {
            // Same types: specialised. Mixed types (rare): the exponent is read through its
            // dynamic type, slower but exact.
            if y.dtype == x.dtype { return try compute(B.self, B.self) }
            guard let e = dynamicNumericType(y.dtype) else { throw unsupportedType(y.dtype, "Pow exponent") }
            try compute(B.self, e)
        }

        func compute<B: ElementwiseNumber, E: ElementwiseNumber>(_: B.Type, _: E.Type) throws {
            let layout = try BroadcastLayout(shape: out.shape, operands: [x.shape, y.shape])
            let px = UnsafePointer(x.typed(B.self)), py = UnsafePointer(y.typed(E.self)), po = out.typed(B.self)
            let sx = layout.innerStrides[0], sy = layout.innerStrides[1]
            let integral = B.isInteger && E.isInteger
            layout.parallelSegments(context, minChunk: 4096) { start, offsets, n in
                let xs = px + offsets[0], ys = py + offsets[1]
                for i in 0..<n {
                    let base = xs[i * sx], e = ys[i * sy]
                    po[start + i] = integral ? B(wrapping: integerPower(Int64(fromDouble: base.doubleValue), Int64(fromDouble: e.doubleValue)))
                                             : B(fromDouble: Foundation.pow(base.doubleValue, e.doubleValue))
                }
            }
        }
    }
}

/// The Swift type of a numeric element type as a value, for rare mixed-type paths only
/// (generic code called through it is not specialised).
func dynamicNumericType(_ dtype: DataType) -> (any ElementwiseNumber.Type)? {
    switch dtype {
    case .float: return Float.self
    case .double: return Double.self
    case .int8: return Int8.self
    case .int16: return Int16.self
    case .int32: return Int32.self
    case .int64: return Int64.self
    case .uint8: return UInt8.self
    case .uint16: return UInt16.self
    case .uint32: return UInt32.self
    case .uint64: return UInt64.self
    default: return nil
    }
}

/// b^e for integers by repeated squaring (wrapping); negative exponents truncate 1/b^|e| toward zero.
func integerPower(_ b: Int64, _ e: Int64) -> Int64 {
    if e < 0 { return b == 1 ? 1 : b == -1 ? (e % 2 == 0 ? 1 : -1) : 0 }
    var result: Int64 = 1, base = b, e = e
    while e > 0 {
        if e & 1 == 1 { result = result &* base }
        base = base &* base
        e >>= 1
    }
    return result
}

// MARK: - Sqrt

// X: any shape -> Y: same shape (float32 / float64).
final class SqrtKernel: Kernel {
    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0)
        guard x.dtype == .float || x.dtype == .double else { throw unsupportedType(x.dtype, "Sqrt") }
        return [ValueSpec(x.dtype, x.shape)]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0), y = outputs[0]
        if x.dtype == .float {
            let px = UnsafePointer(x.floats), py = y.floats
            context.parallelFor(x.count, minChunk: 1 << 14) { r in
                mapLoop(px + r.lowerBound, py + r.lowerBound, r.count, pad: 1, SqrtMap())
            }
        } else {
            let px = UnsafePointer(x.typed(Double.self)), py = y.typed(Double.self)
            context.parallelFor(x.count, minChunk: 1 << 14) { r in
                unaryLoop(px + r.lowerBound, py + r.lowerBound, r.count, pad: 1) { $0.squareRoot() }
            }
        }
    }
}

struct SquareMap: VectorMap {
    @inline(__always) func callAsFunction(_ v: SIMD16<Float>) -> SIMD16<Float> { v * v }
}

struct CubeMap: VectorMap {
    @inline(__always) func callAsFunction(_ v: SIMD16<Float>) -> SIMD16<Float> { v * v * v }
}

struct SqrtMap: VectorMap {
    @inline(__always) func callAsFunction(_ v: SIMD16<Float>) -> SIMD16<Float> { v.squareRoot() }
}

// MARK: - Expand

// input: any shape, shape: int64 [k] (known at plan time) -> output: broadcast(input.shape, shape), any element type.
final class ExpandKernel: Kernel {
    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0)
        let target = try inputs.value(1).integers()
        guard target.allSatisfy({ $0 >= 0 }) else { throw KernelError("Expand shape \(target) has a negative dimension") }
        guard x.dtype.elementSize > 0 else { throw unsupportedType(x.dtype, "Expand") }
        return [ValueSpec(x.dtype, try broadcastShape(x.shape, target))]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0), out = outputs[0]
        try broadcastCopy(x, out, context)
    }
}

/// Copies `x` into `out`, repeating it along broadcast dimensions; any element size.
func broadcastCopy(_ x: TensorRef, _ out: TensorRef, _ context: RunContext) throws {
    let layout = try BroadcastLayout(shape: out.shape, operands: [x.shape])
    let size = x.dtype.elementSize
    let src = UnsafeRawPointer(x.data), dst = out.data
    let contiguous = layout.innerStrides[0] == 1
    layout.parallelSegments(context) { start, offsets, n in
        let from = src + offsets[0] * size, to = dst + start * size
        if contiguous { to.copyMemory(from: from, byteCount: n * size) } else { fillRepeating(to, from, n, size) }
    }
}

/// Writes `count` copies of the element at `value` (of `size` bytes) to `dst`.
func fillRepeating(_ dst: UnsafeMutableRawPointer, _ value: UnsafeRawPointer, _ count: Int, _ size: Int) {
    func fill<T>(_: T.Type) {
        let v = value.loadUnaligned(as: T.self)
        for i in 0..<count { dst.storeBytes(of: v, toByteOffset: i * MemoryLayout<T>.stride, as: T.self) }
    }
    switch size {
    case 1: fill(UInt8.self)
    case 2: fill(UInt16.self)
    case 4: fill(UInt32.self)
    case 8: fill(UInt64.self)
    default: for i in 0..<count { (dst + i * size).copyMemory(from: value, byteCount: size) }
    }
}

// MARK: - Training

/// The residual Add as the trainer runs it. Its backward is the identity to both inputs; gradients of a value
/// read by several nodes are summed with `accumulate`. a, b, y, dst, src: [count].
public enum AddTraining {
    /// y = a + b over `count` floats (y may alias a or b).
    public static func forward(a: UnsafePointer<Float>, b: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                               count: Int, threads: Int) {
        RunContext(threads: threads, scratch: nil).parallelFor(count, minChunk: 1 << 14) { r in
            binaryLoop(a + r.lowerBound, 1, b + r.lowerBound, 1, y + r.lowerBound, r.count, VectorAdd.self)
        }
    }
    /// dst += src over `count` floats.
    public static func accumulate(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int, threads: Int) {
        forward(a: UnsafePointer(dst), b: src, y: dst, count: count, threads: threads)
    }
}
