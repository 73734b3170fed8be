import Foundation
import XCTest
@testable import Engine
import OnnxIO

// Elementwise, activation, reduction, batch-norm and constant kernels checked against naive
// reference loops written here (in Double), over a table of shapes and attributes plus seeded
// random cases. Tensors are large enough in places to take the multi-threaded paths.

// MARK: - Harness

/// An input of the node under test: fed at run time, an initializer, or omitted ("").
enum EWOperand {
    case feed(HostTensor)
    case constant(HostTensor)
    case none
}

/// Builds a one-node model and runs it.
func ewRun(_ op: String, opset: Int = 17, _ inputs: [EWOperand], attributes: [Attribute] = [],
             outputs: Int = 1, threads: Int = 2) throws -> [HostTensor] {
    let nodeInputs: [NodeInput] = inputs.map {
        switch $0 {
        case .feed(let t): return .fed(t)
        case .constant(let t): return .constant(t)
        case .none: return .omitted
        }
    }
    return try runNode(op, attributes, inputs: nodeInputs, outputs: outputs, opset: opset, threads: threads)
}

func ewAttr(_ name: String, _ v: Float) -> Attribute { Attribute(name: name, value: .float(v)) }
func ewAttr(_ name: String, _ v: Int) -> Attribute { Attribute(name: name, value: .int(Int64(v))) }
func ewAttr(_ name: String, ints v: [Int]) -> Attribute { Attribute(name: name, value: .ints(v.map(Int64.init))) }

func ewRandomFloats(_ shape: [Int], _ rng: inout TestRandom, in range: ClosedRange<Float> = -3...3) throws -> HostTensor {
    try HostTensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in Float.random(in: range, using: &rng) })
}

func ewTyped<T>(_ shape: [Int], _ dtype: DataType, _ values: [T]) throws -> HostTensor {
    let t = try HostTensor(dtype: dtype, shape: shape)
    values.withUnsafeBytes { t.storage.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    return t
}

/// Multi-index of a flat row-major offset.
func ewUnravel(_ flat: Int, _ shape: [Int]) -> [Int] {
    var idx = [Int](repeating: 0, count: shape.count), rest = flat
    for d in stride(from: shape.count - 1, through: 0, by: -1) where shape[d] > 0 {
        idx[d] = rest % shape[d]
        rest /= shape[d]
    }
    return idx
}

/// Flat offset in a tensor of `shape` of the element a broadcast read at output index `idx` sees.
func ewOffset(_ idx: [Int], _ shape: [Int]) -> Int {
    let pad = idx.count - shape.count
    var off = 0
    for (d, n) in shape.enumerated() { off = off * n + (n == 1 ? 0 : idx[pad + d]) }
    return off
}

func ewBroadcastShape(_ a: [Int], _ b: [Int]) -> [Int] {
    let r = max(a.count, b.count)
    let pa = [Int](repeating: 1, count: r - a.count) + a, pb = [Int](repeating: 1, count: r - b.count) + b
    return zip(pa, pb).map { $0 == 1 ? $1 : $0 }
}

/// Asserts |got − want| <= atol + rtol·|want| elementwise (NaN matches NaN, equal infinities match).
func ewAssertClose(_ got: HostTensor, _ want: [Double], shape: [Int], rtol: Double = 1e-6, atol: Double = 1e-6,
                 _ label: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(got.shape, shape, "\(label): shape", file: file, line: line)
    guard got.shape == shape else { return }
    let values: [Double]
    switch got.dtype {
    case .float: values = got.floats.map(Double.init)
    case .double: values = got.elements(as: Double.self)
    case .int64: values = got.elements(as: Int64.self).map(Double.init)
    case .int32: values = got.elements(as: Int32.self).map(Double.init)
    case .int8: values = got.elements(as: Int8.self).map(Double.init)
    case .uint8, .bool: values = got.elements(as: UInt8.self).map(Double.init)
    default: XCTFail("\(label): unexpected type \(got.dtype)", file: file, line: line); return
    }
    for i in values.indices {
        let a = values[i], b = want[i]
        if a.isNaN && b.isNaN || a == b { continue }
        if !(abs(a - b) <= atol + rtol * abs(b)) {
            XCTFail("\(label): element \(i) (index \(ewUnravel(i, shape))) is \(a), expected \(b)", file: file, line: line)
            return
        }
    }
}

func ewAssertThrows(_ kind: EngineError.Kind, _ label: String, file: StaticString = #filePath, line: UInt = #line,
                  _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("\(label): expected an error", file: file, line: line)
    } catch let e as EngineError {
        XCTAssertEqual(e.kind, kind, "\(label): \(e.message)", file: file, line: line)
    } catch {
        XCTFail("\(label): unexpected error \(error)", file: file, line: line)
    }
}

// MARK: - Naive references

func ewRefBinary(_ a: HostTensor, _ b: HostTensor, _ f: (Double, Double) -> Double) -> (shape: [Int], values: [Double]) {
    let shape = ewBroadcastShape(a.shape, b.shape)
    let av = a.floats, bv = b.floats
    let values = (0..<shape.reduce(1, *)).map { i -> Double in
        let idx = ewUnravel(i, shape)
        return f(Double(av[ewOffset(idx, a.shape)]), Double(bv[ewOffset(idx, b.shape)]))
    }
    return (shape, values)
}

/// Reduction over `axes` (sorted, normalised) by brute force over every input element.
func ewRefReduce(_ x: HostTensor, axes: [Int], keepdims: Bool, _ op: String) -> (shape: [Int], values: [Double]) {
    var kept = x.shape
    for a in axes { kept[a] = 1 }
    let outCount = kept.reduce(1, *)
    var acc = [Double](repeating: op == "ReduceMax" ? -.infinity : 0, count: outCount)
    let xv = x.floats
    for i in 0..<x.count {
        let o = ewOffset(ewUnravel(i, x.shape), kept)
        acc[o] = op == "ReduceMax" ? max(acc[o], Double(xv[i])) : acc[o] + Double(xv[i])
    }
    if op == "ReduceMean" { let k = Double(x.count / max(outCount, 1)); acc = acc.map { $0 / k } }
    let shape = keepdims ? kept : x.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
    return (shape, acc)
}

func ewRefSoftmax(_ x: HostTensor, outer: Int, n: Int, inner: Int) -> [Double] {
    let xv = x.floats.map(Double.init)
    var out = [Double](repeating: 0, count: xv.count)
    for o in 0..<outer {
        for j in 0..<inner {
            let idx = (0..<n).map { o * n * inner + $0 * inner + j }
            let m = idx.map { xv[$0] }.max()!
            let s = idx.map { exp(xv[$0] - m) }.reduce(0, +)
            for i in idx { out[i] = exp(xv[i] - m) / s }
        }
    }
    return out
}

/// NaN in, NaN out (as NumPy), else the activation's formula.
func ewRefActivation(_ name: String, alpha: Double = 0, beta: Double = 0) -> (Double) -> Double {
    let f = ewRefFormula(name, alpha: alpha, beta: beta)
    return { $0.isNaN ? .nan : f($0) }
}

func ewRefFormula(_ name: String, alpha: Double, beta: Double) -> (Double) -> Double {
    switch name {
    case "Relu": return { $0 < 0 ? 0 : $0 }
    case "LeakyRelu": return { $0 < 0 ? alpha * $0 : $0 }
    case "Sigmoid": return { 1 / (1 + exp(-$0)) }
    case "HardSigmoid": return { max(0, min(1, alpha * $0 + beta)) }
    case "HardSwish": return { $0 * max(0, min(1, $0 / 6 + 0.5)) }
    case "Tanh": return { tanh($0) }
    default: fatalError(name)
    }
}

// MARK: - Tests

final class ElementwiseTests: XCTestCase {

    func testBroadcastLayoutCollapsesCommonCases() throws {
        // Same shape: one run over everything.
        var l = try BroadcastLayout(shape: [2, 3, 4, 5], operands: [[2, 3, 4, 5], [2, 3, 4, 5]])
        XCTAssertEqual(l.dims, [120]); XCTAssertEqual(l.innerStrides, [1, 1])
        // Scalar operand: one run, stride 0.
        l = try BroadcastLayout(shape: [2, 3, 4, 5], operands: [[2, 3, 4, 5], []])
        XCTAssertEqual(l.dims, [120]); XCTAssertEqual(l.innerStrides, [1, 0])
        // Per-channel [C,1,1] against [N,C,H,W]: runs of H·W where the channel value is splat.
        l = try BroadcastLayout(shape: [2, 3, 4, 5], operands: [[2, 3, 4, 5], [3, 1, 1]])
        XCTAssertEqual(l.dims, [2, 3, 20]); XCTAssertEqual(l.innerStrides, [1, 0]); XCTAssertEqual(l.runCount, 6)
        XCTAssertThrowsError(try BroadcastLayout(shape: [2, 3], operands: [[4]]))
        // Every run's offsets match the naive broadcast index.
        let shapes: [[Int]] = [[1, 3, 1, 5], [2, 1, 4, 1], [4, 5]]
        l = try BroadcastLayout(shape: [2, 3, 4, 5], operands: shapes)
        l.forEachRun(0..<l.runCount) { r, offsets in
            for i in 0..<l.runLength {
                let idx = ewUnravel(r * l.runLength + i, [2, 3, 4, 5])
                for k in 0..<3 {
                    XCTAssertEqual(offsets[k] + i * l.innerStrides[k], ewOffset(idx, shapes[k]))
                }
            }
        }
    }

    func testBinaryFloatTable() throws {
        var rng = TestRandom(1)
        let pairs: [([Int], [Int])] = [
            ([2, 3, 4, 5], [2, 3, 4, 5]), ([2, 3, 4, 5], []), ([], [3, 4]), ([2, 3, 4, 5], [3, 1, 1]),
            ([1, 3, 1, 5], [2, 1, 4, 1]), ([4, 1], [1, 5]), ([2, 3, 4, 5], [5]), ([3, 1], [3, 17]),
            ([0, 3], [1, 3]), ([], []),
            ([64, 1000], [64, 1000]),          // one long run, split across threads
            ([4, 8, 40, 40], [8, 1, 1]),       // many per-channel runs, split across threads
            ([300, 200], [300, 1]),
        ]
        let ops: [(String, (Double, Double) -> Double)] = [("Add", +), ("Sub", -), ("Mul", *), ("Div", /), ("Pow", pow)]
        for (op, f) in ops {
            for (sa, sb) in pairs {
                let a = op == "Pow" ? try ewRandomFloats(sa, &rng, in: 0.1...3) : try ewRandomFloats(sa, &rng)
                let b = try ewRandomFloats(sb, &rng, in: op == "Div" ? 0.5...3 : -3...3)
                let y = try ewRun(op, [.feed(a), .feed(b)])[0]
                let want = ewRefBinary(a, b) { Double(Float(f($0, $1))) }
                ewAssertClose(y, want.values, shape: want.shape, rtol: 2e-6, "\(op) \(sa) \(sb)")
            }
        }
    }

    func testBinaryRandomBroadcast() throws {
        var rng = TestRandom(2)
        for trial in 0..<40 {
            let rank = Int.random(in: 0...4, using: &rng)
            let full = (0..<rank).map { _ in Int.random(in: 1...6, using: &rng) }
            func operand() -> [Int] {
                let drop = Int.random(in: 0...rank, using: &rng)
                return full.dropFirst(drop).map { Bool.random(using: &rng) ? 1 : $0 }
            }
            let sa = operand(), sb = operand()
            let op = ["Add", "Sub", "Mul", "Div"][trial % 4]
            let a = try ewRandomFloats(sa, &rng), b = try ewRandomFloats(sb, &rng, in: 0.5...2)
            let f: (Double, Double) -> Double = [{ $0 + $1 }, { $0 - $1 }, { $0 * $1 }, { $0 / $1 }][trial % 4]
            let y = try ewRun(op, [.feed(a), .constant(b)])[0]
            let want = ewRefBinary(a, b) { Double(Float(f($0, $1))) }
            ewAssertClose(y, want.values, shape: want.shape, rtol: 1e-6, "random \(op) \(sa) \(sb)")
        }
    }

    /// A short row along the last axis of a large tensor (an NHWC per-channel constant), both operand orders, run
    /// through the tiled-pattern loop: rows that fill several patterns and a last partial one, periods up to 63.
    func testShortRowBroadcastAlongTheLastAxis() throws {
        var rng = TestRandom(9)
        for (shape, row) in [([1, 50, 50, 3], [3]), ([2, 7, 9, 19], [1, 1, 1, 19]), ([300, 63], [63]), ([5, 1], [1])] {
            for (i, op) in ["Add", "Sub", "Mul", "Div"].enumerated() {
                let f: (Double, Double) -> Double = [{ $0 + $1 }, { $0 - $1 }, { $0 * $1 }, { $0 / $1 }][i]
                let a = try ewRandomFloats(shape, &rng), b = try ewRandomFloats(row, &rng, in: 0.5...2)
                let y = try ewRun(op, [.feed(a), .constant(b)])[0]
                let want = ewRefBinary(a, b) { Double(Float(f($0, $1))) }
                ewAssertClose(y, want.values, shape: want.shape, rtol: 1e-6, "\(op) \(shape) \(row)")
                let z = try ewRun(op, [.constant(b), .feed(a)])[0]
                let wantSwapped = ewRefBinary(b, a) { Double(Float(f($0, $1))) }
                ewAssertClose(z, wantSwapped.values, shape: wantSwapped.shape, rtol: 1e-6, "\(op) \(row) \(shape)")
            }
        }
    }

    func testIntegerArithmetic() throws {
        let a32 = try ewTyped([2, 3], .int32, [Int32](arrayLiteral: -7, 7, -7, 100, 0, Int32.max))
        let b32 = try ewTyped([3], .int32, [Int32](arrayLiteral: 2, -2, 3))
        XCTAssertEqual(try ewRun("Div", [.feed(a32), .feed(b32)])[0].elements(as: Int32.self), [-3, -3, -2, 50, 0, Int32.max / 3])
        XCTAssertEqual(try ewRun("Add", [.feed(a32), .feed(b32)])[0].elements(as: Int32.self), [-5, 5, -4, 102, -2, Int32.max &+ 3])
        XCTAssertEqual(try ewRun("Mul", [.feed(a32), .feed(b32)])[0].elements(as: Int32.self), [-14, -14, -21, 200, 0, Int32.max &* 3])
        let a64 = try HostTensor(shape: [4], int64s: [5, 1 << 40, -3, 9]), b64 = try HostTensor(shape: [], int64s: [4])
        XCTAssertEqual(try ewRun("Sub", [.feed(a64), .constant(b64)])[0].int64s, [1, (1 << 40) - 4, -7, 5])
        XCTAssertEqual(try ewRun("Div", [.feed(a64), .constant(b64)])[0].int64s, [1, 1 << 38, 0, 2])
        // 8-bit types wrap; the minimum divided by -1 wraps instead of trapping.
        let i8 = try ewTyped([3], .int8, [Int8](arrayLiteral: 100, -128, 3)), j8 = try ewTyped([3], .int8, [Int8](arrayLiteral: 100, -1, 5))
        XCTAssertEqual(try ewRun("Add", [.feed(i8), .feed(j8)])[0].elements(as: Int8.self), [-56, 127, 8])
        XCTAssertEqual(try ewRun("Div", [.feed(i8), .feed(j8)])[0].elements(as: Int8.self), [1, -128, 0])
        let u8 = try ewTyped([2], .uint8, [UInt8](arrayLiteral: 3, 200)), v8 = try ewTyped([2], .uint8, [UInt8](arrayLiteral: 5, 100))
        XCTAssertEqual(try ewRun("Sub", [.feed(u8), .feed(v8)])[0].elements(as: UInt8.self), [254, 100])
        // Long integer vectors take the SIMD body, not just the tail.
        let n = 1000
        let values: [Int64] = (0..<n).map { (i: Int) -> Int64 in Int64(i * 7 - 3000) }
        let big = try HostTensor(shape: [n], int64s: values)
        let squares: [Int64] = values.map { (v: Int64) -> Int64 in v * v }
        XCTAssertEqual(try ewRun("Mul", [.feed(big), .feed(big)])[0].int64s, squares)
        ewAssertThrows(.nodeFailed, "integer division by zero") {
            _ = try ewRun("Div", [.feed(a32), .feed(ewTyped([3], .int32, [Int32](arrayLiteral: 1, 0, 1)))])
        }
        ewAssertThrows(.nodeFailed, "mixed types") { _ = try ewRun("Add", [.feed(a32), .feed(a64)]) }
        ewAssertThrows(.nodeFailed, "shapes that do not broadcast") {
            _ = try ewRun("Add", [.feed(HostTensor(shape: [2, 3], floats: [0, 0, 0, 0, 0, 0])), .feed(HostTensor(shape: [2], floats: [0, 0]))])
        }
    }

    func testLegacyBroadcastOpset6() throws {
        var rng = TestRandom(3)
        let a = try ewRandomFloats([2, 3, 4, 5], &rng), b = try ewRandomFloats([3, 4], &rng)
        let y = try ewRun("Mul", opset: 6, [.feed(a), .feed(b)], attributes: [ewAttr("broadcast", 1), ewAttr("axis", 1)])[0]
        let want = ewRefBinary(a, try HostTensor(shape: [3, 4, 1], floats: b.floats)) { Double(Float($0 * $1)) }
        ewAssertClose(y, want.values, shape: [2, 3, 4, 5], "legacy axis=1")
        // Without axis B aligns with A's trailing dimensions.
        let c = try ewRandomFloats([4, 5], &rng)
        let z = try ewRun("Sub", opset: 6, [.feed(a), .feed(c)], attributes: [ewAttr("broadcast", 1)])[0]
        ewAssertClose(z, ewRefBinary(a, c) { Double(Float($0 - $1)) }.values, shape: [2, 3, 4, 5], "legacy trailing")
        ewAssertThrows(.nodeFailed, "legacy without broadcast=1") { _ = try ewRun("Add", opset: 6, [.feed(a), .feed(c)]) }
        // An axis near Int.max (found by the fuzzer) overflowed `start + rank(B)`.
        ewAssertThrows(.nodeFailed, "legacy axis Int.max") {
            _ = try ewRun("Add", opset: 6, [.feed(a), .feed(c)], attributes: [ewAttr("broadcast", 1), ewAttr("axis", Int.max)])
        }
    }

    func testPowMixedTypes() throws {
        let x = try HostTensor(shape: [3], floats: [1.5, -2, 4])
        let e64 = try HostTensor(shape: [3], int64s: [3, 2, -1])
        ewAssertClose(try ewRun("Pow", [.feed(x), .feed(e64)])[0], [3.375, 4, 0.25], shape: [3], "float ^ int64")
        let xi = try ewTyped([4], .int32, [Int32](arrayLiteral: 2, 3, -2, 5))
        let ef = try HostTensor(shape: [4], floats: [10, 0.5, 3, -1])
        XCTAssertEqual(try ewRun("Pow", [.feed(xi), .feed(ef)])[0].elements(as: Int32.self), [1024, 1, -8, 0])
        let xl = try HostTensor(shape: [4], int64s: [3, -1, 2, 7]), el = try HostTensor(shape: [4], int64s: [39, 5, -2, 0])
        XCTAssertEqual(try ewRun("Pow", [.feed(xl), .feed(el)])[0].int64s, [4_052_555_153_018_976_267, -1, 0, 1])
        // Square and identity exponents take a fast path; check them and a general scalar exponent.
        var rng = TestRandom(4)
        let a = try ewRandomFloats([40, 50], &rng)
        for e: Float in [2, 1, 3] {
            let y = try ewRun("Pow", [.feed(a), .constant(HostTensor(shape: [], floats: [e]))])[0]
            ewAssertClose(y, a.floats.map { Double(Float(pow(Double($0), Double(e)))) }, shape: [40, 50], rtol: 2e-6, "Pow \(e)")
        }
    }

    func testSqrtAndExpand() throws {
        var rng = TestRandom(5)
        let x = try ewRandomFloats([33, 70], &rng, in: 0...100)
        ewAssertClose(try ewRun("Sqrt", [.feed(x)])[0], x.floats.map { Double(Float(Double($0).squareRoot())) }, shape: [33, 70], rtol: 0, atol: 0, "Sqrt")
        let neg = try ewRun("Sqrt", [.feed(HostTensor(shape: [2], floats: [-1, 0]))])[0].floats
        XCTAssertTrue(neg[0].isNaN); XCTAssertEqual(neg[1], 0)
        let cases: [([Int], [Int])] = [([3, 1], [2, 1, 6]), ([3, 1], [3, 4]), ([1], [5]), ([2, 1, 3], [1]), ([], [2, 2]), ([4, 1, 1], [4, 30, 30])]
        for (s, target) in cases {
            let d = try ewRandomFloats(s, &rng)
            let y = try ewRun("Expand", [.feed(d), .constant(HostTensor(shape: [target.count], int64s: target.map(Int64.init)))])[0]
            let shape = ewBroadcastShape(s, target)
            let want = (0..<shape.reduce(1, *)).map { Double(d.floats[ewOffset(ewUnravel($0, shape), s)]) }
            ewAssertClose(y, want, shape: shape, rtol: 0, atol: 0, "Expand \(s) to \(target)")
        }
        // Any element size: int64 and bool.
        let i = try HostTensor(shape: [2, 1], int64s: [7, -9])
        XCTAssertEqual(try ewRun("Expand", [.feed(i), .constant(HostTensor(shape: [2], int64s: [2, 3]))])[0].int64s, [7, 7, 7, -9, -9, -9])
        let b = try ewTyped([3], .bool, [UInt8](arrayLiteral: 1, 0, 1))
        XCTAssertEqual(try ewRun("Expand", [.feed(b), .constant(HostTensor(shape: [2], int64s: [2, 1]))])[0].elements(as: UInt8.self), [1, 0, 1, 1, 0, 1])
    }

    func testActivations() throws {
        var rng = TestRandom(6)
        let special: [Float] = [0, -0.0, 1e-4, -1e-4, 0.29, -0.31, 5, -5, 20, -20, 88, -88, 100, -100, .infinity, -.infinity, .nan]
        let cases: [(String, [Attribute], Double, Double)] = [
            ("Relu", [], 0, 0), ("LeakyRelu", [], 0.01, 0), ("LeakyRelu", [ewAttr("alpha", Float(0.3))], 0.3, 0),
            ("Sigmoid", [], 0, 0), ("HardSigmoid", [], 0.2, 0.5),
            ("HardSigmoid", [ewAttr("alpha", Float(0.5)), ewAttr("beta", Float(0.6))], 0.5, 0.6),
            ("HardSwish", [], 0, 0), ("Tanh", [], 0, 0),
        ]
        for (op, attributes, alpha, beta) in cases {
            let f = ewRefActivation(op, alpha: Double(Float(alpha)), beta: Double(Float(beta)))
            for shape in [[special.count], [3, 37], [70_000]] {
                let x = shape == [special.count] ? try HostTensor(shape: shape, floats: special) : try ewRandomFloats(shape, &rng, in: -12...12)
                let y = try ewRun(op, [.feed(x)], attributes: attributes)[0]
                ewAssertClose(y, x.floats.map { f(Double($0)) }, shape: shape, rtol: 3e-6, atol: 1e-7, "\(op) \(shape)")
            }
        }
        let i = try ewTyped([4], .int32, [Int32](arrayLiteral: -3, 0, 5, Int32.min))
        XCTAssertEqual(try ewRun("Relu", [.feed(i)])[0].elements(as: Int32.self), [0, 0, 5, 0])
        ewAssertThrows(.unsupported, "Sigmoid on int32") { _ = try ewRun("Sigmoid", [.feed(i)]) }
    }

    /// The entry point Conv reuses: in place, any count (tails of every length).
    func testActivationEntryPoint() {
        var rng = TestRandom(7)
        let acts: [(Activation, (Double) -> Double)] = [
            (.none, { $0 }), (.relu, { max($0, 0) }), (.leakyRelu(alpha: 0.125), { $0 < 0 ? 0.125 * $0 : $0 }),
            (.clip(min: 0, max: 6), { min(max($0, 0), 6) }), (.sigmoid, { 1 / (1 + exp(-$0)) }),
            (.hardSigmoid(alpha: 0.25, beta: 0.5), { min(max(0.25 * $0 + 0.5, 0), 1) }),
            (.hardSwish, { $0 * min(max($0 / 6 + 0.5, 0), 1) }), (.tanh, { tanh($0) }),
        ]
        for (act, f) in acts {
            for count in [0, 1, 15, 16, 17, 40] {
                var v = (0..<count).map { _ in Float.random(in: -8...8, using: &rng) }
                let original = v
                v.withUnsafeMutableBufferPointer { act.apply($0.baseAddress!, count: count) }
                for i in 0..<count {
                    let want = f(Double(original[i]))
                    XCTAssertEqual(Double(v[i]), want, accuracy: 1e-7 + 3e-6 * abs(want), "\(act) count \(count) element \(i)")
                }
            }
        }
    }

    /// Close to float rounding everywhere, including tiny inputs where tanh(x) ≈ x (a naive
    /// (1 − e^−2x)/(1 + e^−2x) loses most digits there).
    func testTanhAndSigmoidPrecision() {
        var xs: [Float] = [1e-20, -1e-12, 1e-6, -3e-5, 1e-4, 0.001, -0.01, 0.1, 0.2999, 0.3, -0.3001, 0.5, 1, -2, 4, 9, -15]
        var rng = TestRandom(15)
        xs += (0..<200).map { _ in Float.random(in: -6...6, using: &rng) }
        var t = xs, s = xs
        t.withUnsafeMutableBufferPointer { Activation.tanh.apply($0.baseAddress!, count: xs.count) }
        s.withUnsafeMutableBufferPointer { Activation.sigmoid.apply($0.baseAddress!, count: xs.count) }
        for (i, x) in xs.enumerated() {
            let wantT = tanh(Double(x)), wantS = 1 / (1 + exp(-Double(x)))
            XCTAssertEqual(Double(t[i]), wantT, accuracy: 4e-7 * abs(wantT), "tanh(\(x))")
            XCTAssertEqual(Double(s[i]), wantS, accuracy: 4e-7 * abs(wantS), "sigmoid(\(x))")
        }
    }

    func testSimdExpAccuracy() {
        var x: Float = -110
        while x < 92 {
            let lanes = SIMD16<Float>((0..<16).map { x + Float($0) * 0.0137 })
            let got = simdExp(lanes)
            for j in 0..<16 {
                let want = exp(Double(lanes[j]))
                if want > Double(Float.greatestFiniteMagnitude) { XCTAssertEqual(got[j], .infinity, "exp(\(lanes[j]))"); continue }
                if want < Double(Float.leastNormalMagnitude) { XCTAssertLessThan(Double(got[j]), 2e-38, "exp(\(lanes[j]))"); continue }
                XCTAssertEqual(Double(got[j]), want, accuracy: 3e-7 * want, "exp(\(lanes[j]))")
            }
            x += 0.37
        }
        let edge = simdExp(SIMD16<Float>(repeating: .nan).replacing(with: -.infinity, where: SIMD16<Int32>(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1) .== 1))
        XCTAssertTrue(edge[0].isNaN); XCTAssertEqual(edge[1], 0)
    }

    func testClip() throws {
        var rng = TestRandom(8)
        let x = try ewRandomFloats([3, 4, 5], &rng, in: -5...5)
        func ref(_ lo: Double, _ hi: Double) -> [Double] { x.floats.map { min(max(Double($0), lo), hi) } }
        // Opset 6: attributes.
        ewAssertClose(try ewRun("Clip", opset: 6, [.feed(x)], attributes: [ewAttr("min", Float(-1)), ewAttr("max", Float(2))])[0], ref(-1, 2), shape: [3, 4, 5], "Clip attrs")
        ewAssertClose(try ewRun("Clip", opset: 6, [.feed(x)], attributes: [ewAttr("max", Float(0.5))])[0], ref(-.infinity, 0.5), shape: [3, 4, 5], "Clip max attr")
        // Opset 13: inputs, either absent, computed at run time (fed), and min > max (everything becomes max).
        let lo = try HostTensor(shape: [], floats: [-0.5]), hi = try HostTensor(shape: [], floats: [0.5])
        ewAssertClose(try ewRun("Clip", opset: 13, [.feed(x), .constant(lo), .feed(hi)])[0], ref(-0.5, 0.5), shape: [3, 4, 5], "Clip inputs")
        ewAssertClose(try ewRun("Clip", opset: 13, [.feed(x), .none, .constant(hi)])[0], ref(-.infinity, 0.5), shape: [3, 4, 5], "Clip max only")
        ewAssertClose(try ewRun("Clip", opset: 13, [.feed(x), .constant(lo)])[0], ref(-0.5, .infinity), shape: [3, 4, 5], "Clip min only")
        ewAssertClose(try ewRun("Clip", opset: 13, [.feed(x)])[0], ref(-.infinity, .infinity), shape: [3, 4, 5], "Clip no bounds")
        ewAssertClose(try ewRun("Clip", opset: 13, [.feed(x), .constant(hi), .constant(lo)])[0], [Double](repeating: -0.5, count: 60), shape: [3, 4, 5], "Clip min > max")
        let i8 = try ewTyped([5], .int8, [Int8](arrayLiteral: -128, -3, 0, 3, 127))
        XCTAssertEqual(try ewRun("Clip", opset: 13, [.feed(i8), .constant(ewTyped([], .int8, [Int8(-2)])), .none])[0].elements(as: Int8.self), [-2, -2, 0, 3, 127])
        ewAssertThrows(.nodeFailed, "non-scalar bound") { _ = try ewRun("Clip", opset: 13, [.feed(x), .constant(HostTensor(shape: [2], floats: [0, 1]))]) }
    }

    func testSoftmax() throws {
        var rng = TestRandom(9)
        let shapes: [[Int]] = [[2, 3, 4, 5], [3, 40], [2, 37, 20], [1, 3], [5]]
        for shape in shapes {
            let x = try ewRandomFloats(shape, &rng, in: -10...10)
            for axis in -shape.count..<shape.count {
                let a = axis < 0 ? axis + shape.count : axis
                // Opset 13: along one axis.
                let y = try ewRun("Softmax", opset: 13, [.feed(x)], attributes: [ewAttr("axis", axis)])[0]
                let want = ewRefSoftmax(x, outer: shape[..<a].reduce(1, *), n: shape[a], inner: shape[(a + 1)...].reduce(1, *))
                ewAssertClose(y, want, shape: shape, rtol: 2e-6, atol: 1e-8, "Softmax-13 \(shape) axis \(axis)")
                // Opset 11: flattened to 2-D at the axis.
                let z = try ewRun("Softmax", opset: 11, [.feed(x)], attributes: [ewAttr("axis", axis)])[0]
                let want2 = ewRefSoftmax(x, outer: shape[..<a].reduce(1, *), n: shape[a...].reduce(1, *), inner: 1)
                ewAssertClose(z, want2, shape: shape, rtol: 2e-6, atol: 1e-8, "Softmax-11 \(shape) axis \(axis)")
            }
        }
        // Defaults: axis -1 from opset 13, 1 before.
        let x = try ewRandomFloats([2, 3, 4], &rng)
        ewAssertClose(try ewRun("Softmax", opset: 13, [.feed(x)])[0], ewRefSoftmax(x, outer: 6, n: 4, inner: 1), shape: [2, 3, 4], rtol: 2e-6, "default 13")
        ewAssertClose(try ewRun("Softmax", opset: 9, [.feed(x)])[0], ewRefSoftmax(x, outer: 2, n: 12, inner: 1), shape: [2, 3, 4], rtol: 2e-6, "default 9")
        // Large values do not overflow; big tensors are split over threads.
        let big = try HostTensor(shape: [2, 3], floats: [10000, 10001, 10002, -1e30, 3, 3])
        ewAssertClose(try ewRun("Softmax", [.feed(big)])[0], ewRefSoftmax(big, outer: 2, n: 3, inner: 1), shape: [2, 3], rtol: 2e-6, "large")
        let wide = try ewRandomFloats([64, 3, 700], &rng)
        ewAssertClose(try ewRun("Softmax", opset: 13, [.feed(wide)], attributes: [ewAttr("axis", 1)])[0],
                    ewRefSoftmax(wide, outer: 64, n: 3, inner: 700), shape: [64, 3, 700], rtol: 2e-6, atol: 1e-8, "wide")
    }

    func testReduceRandom() throws {
        var rng = TestRandom(10)
        for trial in 0..<60 {
            let op = ["ReduceSum", "ReduceMean", "ReduceMax"][trial % 3]
            let rank = Int.random(in: 1...4, using: &rng)
            let shape = (0..<rank).map { _ in Int.random(in: 1...7, using: &rng) }
            let axes = (0..<rank).filter { _ in Bool.random(using: &rng) }
            let keepdims = Bool.random(using: &rng)
            let x = try ewRandomFloats(shape, &rng)
            let all = axes.isEmpty ? Array(0..<rank) : axes
            let want = ewRefReduce(x, axes: all, keepdims: keepdims, op)
            // Negative axes name the same dimensions.
            let given = axes.map { Bool.random(using: &rng) ? $0 - rank : $0 }
            let newOpset = op == "ReduceSum" ? 13 : 18
            let fromInput = try ewRun(op, opset: newOpset, [.feed(x), axes.isEmpty ? .none : .constant(HostTensor(shape: [given.count], int64s: given.map(Int64.init)))],
                                        attributes: [ewAttr("keepdims", keepdims ? 1 : 0)])[0]
            ewAssertClose(fromInput, want.values, shape: want.shape, rtol: 2e-6, atol: 1e-6, "\(op)-\(newOpset) \(shape) axes \(given) keepdims \(keepdims)")
            var attributes = [ewAttr("keepdims", keepdims ? 1 : 0)]
            if !axes.isEmpty { attributes.append(ewAttr("axes", ints: given)) }
            let fromAttribute = try ewRun(op, opset: 11, [.feed(x)], attributes: attributes)[0]
            ewAssertClose(fromAttribute, want.values, shape: want.shape, rtol: 2e-6, atol: 1e-6, "\(op)-11 \(shape) axes \(given) keepdims \(keepdims)")
        }
    }

    func testReduceSpecialCases() throws {
        var rng = TestRandom(11)
        // Big enough for the threaded path, and long rows for the SIMD horizontal reductions.
        for (shape, axes) in [([64, 32, 33], [2]), ([64, 32, 33], [1]), ([8, 3000], [1]), ([3, 50, 40], [0, 2])] {
            let x = try ewRandomFloats(shape, &rng)
            for op in ["ReduceSum", "ReduceMean", "ReduceMax"] {
                let want = ewRefReduce(x, axes: axes, keepdims: true, op)
                let y = try ewRun(op, opset: 11, [.feed(x)], attributes: [ewAttr("axes", ints: axes)])[0]
                ewAssertClose(y, want.values, shape: want.shape, rtol: 1e-5, atol: 1e-5, "\(op) \(shape) \(axes)")
            }
        }
        let x = try ewRandomFloats([3, 2, 2], &rng)
        let empty = try HostTensor(shape: [0], int64s: [])
        // Empty axes: all axes, or nothing with noop_with_empty_axes.
        ewAssertClose(try ewRun("ReduceSum", opset: 13, [.feed(x), .constant(empty)])[0], [x.floats.map(Double.init).reduce(0, +)], shape: [1, 1, 1], rtol: 1e-6, "empty axes")
        ewAssertClose(try ewRun("ReduceSum", opset: 13, [.feed(x), .constant(empty)], attributes: [ewAttr("noop_with_empty_axes", 1)])[0],
                    x.floats.map(Double.init), shape: [3, 2, 2], "noop")
        // Reducing an empty axis: sum 0, max -inf, mean NaN.
        let e = try HostTensor(dtype: .float, shape: [2, 0, 4])
        let axis1 = try HostTensor(shape: [1], int64s: [1])
        ewAssertClose(try ewRun("ReduceSum", opset: 13, [.feed(e), .constant(axis1)])[0], [Double](repeating: 0, count: 8), shape: [2, 1, 4], "empty sum")
        ewAssertClose(try ewRun("ReduceMax", opset: 18, [.feed(e), .constant(axis1)])[0], [Double](repeating: -.infinity, count: 8), shape: [2, 1, 4], "empty max")
        ewAssertClose(try ewRun("ReduceMean", opset: 18, [.feed(e), .constant(axis1)])[0], [Double](repeating: .nan, count: 8), shape: [2, 1, 4], "empty mean")
        // Integer and bool inputs.
        let i = try HostTensor(shape: [2, 3], int64s: [1, -5, 9, 4, 4, -8])
        XCTAssertEqual(try ewRun("ReduceSum", opset: 13, [.feed(i), .constant(axis1)], attributes: [ewAttr("keepdims", 0)])[0].int64s, [5, 0])
        XCTAssertEqual(try ewRun("ReduceMax", opset: 18, [.feed(i), .constant(axis1)])[0].int64s, [9, 4])
        XCTAssertEqual(try ewRun("ReduceMean", opset: 18, [.feed(i), .constant(axis1)])[0].int64s, [1, 0])
        let b = try ewTyped([3, 2], .bool, [UInt8](arrayLiteral: 0, 1, 0, 0, 1, 1))
        XCTAssertEqual(try ewRun("ReduceMax", opset: 20, [.feed(b), .constant(axis1)])[0].elements(as: UInt8.self), [1, 0, 1])
        // NaN propagates through max.
        let n = try HostTensor(shape: [2, 20], floats: (0..<40).map { $0 == 25 ? .nan : Float($0) })
        let m = try ewRun("ReduceMax", opset: 11, [.feed(n)], attributes: [ewAttr("axes", ints: [1])])[0].floats
        XCTAssertEqual(m[0], 19); XCTAssertTrue(m[1].isNaN)
        ewAssertThrows(.nodeFailed, "repeated axes") { _ = try ewRun("ReduceSum", opset: 11, [.feed(x)], attributes: [ewAttr("axes", ints: [1, -2])]) }
        ewAssertThrows(.nodeFailed, "axis out of range") { _ = try ewRun("ReduceSum", opset: 11, [.feed(x)], attributes: [ewAttr("axes", ints: [3])]) }
    }

    func testBatchNormalization() throws {
        var rng = TestRandom(12)
        for (opset, shape) in [(15, [2, 3, 4, 5]), (9, [3, 7]), (15, [2, 37]), (6, [2, 20, 3, 3, 3]), (15, [4, 16, 30, 30])] {
            let c = shape[1]
            let x = try ewRandomFloats(shape, &rng)
            let scale = try ewRandomFloats([c], &rng), bias = try ewRandomFloats([c], &rng), mean = try ewRandomFloats([c], &rng)
            let variance = try ewRandomFloats([c], &rng, in: 0.1...4)
            let eps: Float = 1e-3
            let y = try ewRun("BatchNormalization", opset: opset,
                                [.feed(x), .constant(scale), .constant(bias), .constant(mean), .constant(variance)],
                                attributes: [ewAttr("epsilon", eps)] + (opset == 6 ? [ewAttr("is_test", 1)] : []))[0]
            let spatial = shape.dropFirst(2).reduce(1, *)
            let want = (0..<x.count).map { i -> Double in
                let ch = (i / spatial) % c
                return (Double(x.floats[i]) - Double(mean.floats[ch])) / (Double(variance.floats[ch]) + Double(eps)).squareRoot()
                    * Double(scale.floats[ch]) + Double(bias.floats[ch])
            }
            ewAssertClose(y, want, shape: shape, rtol: 1e-5, atol: 1e-5, "BatchNorm-\(opset) \(shape)")
        }
        let x = try HostTensor(shape: [1, 1, 2], floats: [1, 2]), p = try HostTensor(shape: [1], floats: [1])
        ewAssertThrows(.unsupported, "training mode") {
            _ = try ewRun("BatchNormalization", opset: 15, [.feed(x), .feed(p), .feed(p), .feed(p), .feed(p)], attributes: [ewAttr("training_mode", 1)])
        }
        ewAssertThrows(.unsupported, "opset 6 without is_test=1 is training") {
            _ = try ewRun("BatchNormalization", opset: 6, [.feed(x), .feed(p), .feed(p), .feed(p), .feed(p)])
        }
        ewAssertThrows(.unsupported, "training outputs") {
            _ = try ewRun("BatchNormalization", opset: 9, [.feed(x), .feed(p), .feed(p), .feed(p), .feed(p)], outputs: 3)
        }
    }

    func testConstantIdentityDropout() throws {
        let t = try HostTensor(shape: [2, 2], floats: [1, 2, 3, 4])
        let c = try ewRun("Constant", [], attributes: [Attribute(name: "value", value: .tensor(t.onnxTensor()))])[0]
        XCTAssertEqual(c.shape, [2, 2]); XCTAssertEqual(c.floats, [1, 2, 3, 4])
        let fs = try ewRun("Constant", [], attributes: [Attribute(name: "value_floats", value: .floats([0.5, 1.5]))])[0]
        XCTAssertEqual(fs.shape, [2]); XCTAssertEqual(fs.floats, [0.5, 1.5])
        let f = try ewRun("Constant", [], attributes: [ewAttr("value_float", Float(2.5))])[0]
        XCTAssertEqual(f.shape, []); XCTAssertEqual(f.floats, [2.5])
        let i = try ewRun("Constant", [], attributes: [ewAttr("value_int", 7)])[0]
        XCTAssertEqual(i.dtype, .int64); XCTAssertEqual(i.int64s, [7])
        let ints = try ewRun("Constant", [], attributes: [ewAttr("value_ints", ints: [3, -1])])[0]
        XCTAssertEqual(ints.shape, [2]); XCTAssertEqual(ints.int64s, [3, -1])
        ewAssertThrows(.unsupported, "value_string") {
            _ = try ewRun("Constant", [], attributes: [Attribute(name: "value_string", value: .string(Data("a".utf8)))])
        }

        let shape = try HostTensor(shape: [3], int64s: [2, 3, 4])
        let zeros = try ewRun("ConstantOfShape", [.feed(shape)])[0]
        XCTAssertEqual(zeros.dtype, .float); XCTAssertEqual(zeros.shape, [2, 3, 4]); XCTAssertEqual(zeros.floats, [Float](repeating: 0, count: 24))
        let value = try ewTyped([1], .int32, [Int32(-6)])
        let sixes = try ewRun("ConstantOfShape", [.constant(shape)], attributes: [Attribute(name: "value", value: .tensor(value.onnxTensor()))])[0]
        XCTAssertEqual(sixes.dtype, .int32); XCTAssertEqual(sixes.elements(as: Int32.self), [Int32](repeating: -6, count: 24))
        XCTAssertEqual(try ewRun("ConstantOfShape", [.feed(HostTensor(shape: [2], int64s: [3, 0]))])[0].shape, [3, 0])

        var rng = TestRandom(13)
        let x = try ewRandomFloats([3, 4, 5], &rng)
        XCTAssertEqual(try ewRun("Identity", [.feed(x)])[0].floats, x.floats)
        let i64 = try HostTensor(shape: [2], int64s: [1, 2])
        XCTAssertEqual(try ewRun("Identity", [.constant(i64)])[0].int64s, [1, 2])
        // Dropout: identity with an all-true mask (bool from opset 10, the data type before).
        let d = try ewRun("Dropout", opset: 13, [.feed(x), .constant(HostTensor(shape: [], floats: [0.5]))], outputs: 2)
        XCTAssertEqual(d[0].floats, x.floats)
        XCTAssertEqual(d[1].dtype, .bool); XCTAssertEqual(d[1].elements(as: UInt8.self), [UInt8](repeating: 1, count: 60))
        let old = try ewRun("Dropout", opset: 7, [.feed(x)], attributes: [ewAttr("ratio", Float(0.3))], outputs: 2)
        XCTAssertEqual(old[0].floats, x.floats); XCTAssertEqual(old[1].floats, [Float](repeating: 1, count: 60))
        let off = try ewTyped([], .bool, [UInt8(0)]), on = try ewTyped([], .bool, [UInt8(1)])
        XCTAssertEqual(try ewRun("Dropout", opset: 13, [.feed(x), .none, .constant(off)])[0].floats, x.floats)
        ewAssertThrows(.unsupported, "opset 6 Dropout defaults to training") { _ = try ewRun("Dropout", opset: 6, [.feed(x)]) }
        XCTAssertEqual(try ewRun("Dropout", opset: 6, [.feed(x)], attributes: [ewAttr("is_test", 1)])[0].floats, x.floats)
        ewAssertThrows(.unsupported, "training_mode=true") { _ = try ewRun("Dropout", opset: 13, [.feed(x), .none, .constant(on)]) }
    }
}
