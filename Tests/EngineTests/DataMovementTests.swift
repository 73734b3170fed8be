import Foundation
import XCTest
@testable import Engine
import OnnxIO

// Shape and data-movement kernels checked against naive reference loops written here.
// Data-movement references compute, for every output element, which input element it comes
// from (or "the pad value"); the check then compares raw element bytes, so one reference
// covers every element size. Cases are a table plus seeded random ones; tensors are large
// enough in places to take the tiled and multi-threaded paths.

// MARK: - Harness

enum DM {
    /// An input of the node under test: fed at run time, an initializer, or omitted ("").
    enum Operand {
        case feed(HostTensor)
        case constant(HostTensor)
        case none
    }

    /// Builds a one-node model and runs it (data inputs fed, so the run-time path is exercised, not folding).
    static func run(_ op: String, opset: Int = 18, _ inputs: [Operand], _ attributes: [Attribute] = [],
                    threads: Int = 2) throws -> HostTensor {
        let nodeInputs: [NodeInput] = inputs.map {
            switch $0 {
            case .feed(let t): return .fed(t)
            case .constant(let t): return .constant(t)
            case .none: return .omitted
            }
        }
        return try runNode(op, attributes, inputs: nodeInputs, opset: opset, threads: threads)[0]
    }

    static func ints(_ name: String, _ v: [Int]) -> Attribute { Attribute(name: name, value: .ints(v.map { Int64($0) })) }
    static func int(_ name: String, _ v: Int) -> Attribute { Attribute(name: name, value: .int(Int64(v))) }
    static func string(_ name: String, _ v: String) -> Attribute { Attribute(name: name, value: .string(Data(v.utf8))) }
    static func i64(_ v: [Int]) throws -> HostTensor { try HostTensor(shape: [v.count], int64s: v.map { Int64($0) }) }

    /// A tensor of random bytes (every element distinct enough to catch a wrong source index).
    static func random(_ dtype: DataType, _ shape: [Int], _ rng: inout TestRandom) throws -> HostTensor {
        let t = try HostTensor(dtype: dtype, shape: shape)
        let p = t.storage.pointer.assumingMemoryBound(to: UInt8.self)
        for i in 0..<t.byteCount { p[i] = UInt8.random(in: 0...255, using: &rng) }
        if dtype == .bool { for i in 0..<t.count { p[i] &= 1 } }
        return t
    }

    static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) { s[i] = acc; acc *= shape[i] }
        return s
    }

    static func unravel(_ flat: Int, _ shape: [Int]) -> [Int] {
        var idx = [Int](repeating: 0, count: shape.count), rest = flat
        for d in stride(from: shape.count - 1, through: 0, by: -1) {
            idx[d] = rest % shape[d]
            rest /= shape[d]
        }
        return idx
    }

    /// Compares `got` with the reference mapping: element i of the output must equal the bytes of element
    /// `source[i].index` of input `source[i].input`, or `padValue` when index is -1.
    static func check(_ got: HostTensor, shape: [Int], inputs: [HostTensor], source: [(input: Int, index: Int)],
                      padValue: [UInt8] = [], _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.shape, shape, "\(label): shape", file: file, line: line)
        guard got.shape == shape else { return }
        XCTAssertEqual(got.count, source.count, "\(label): count", file: file, line: line)
        let es = got.dtype.elementSize
        let out = got.storage.pointer.assumingMemoryBound(to: UInt8.self)
        for (i, s) in source.enumerated() {
            let want: [UInt8] = s.index < 0 ? padValue
                : (0..<es).map { inputs[s.input].storage.pointer.assumingMemoryBound(to: UInt8.self)[s.index * es + $0] }
            let have = (0..<es).map { out[i * es + $0] }
            if have != want {
                XCTFail("\(label): element \(i) is \(have), expected \(want) (from input \(s.input) element \(s.index))",
                        file: file, line: line)
                return
            }
        }
    }

    static let moveTypes: [DataType] = [.float, .uint8, .int16, .int32, .int64, .double, .float16, .bool]
}

final class DataMovementTests: XCTestCase {

    // MARK: - Transpose

    static func referenceTranspose(_ shape: [Int], _ perm: [Int]) -> ([Int], [(input: Int, index: Int)]) {
        let outShape = perm.map { shape[$0] }
        let inStrides = DM.strides(shape)
        let map = (0..<outShape.reduce(1, *)).map { o -> (input: Int, index: Int) in
            let idx = DM.unravel(o, outShape)
            var src = 0
            for (k, a) in perm.enumerated() { src += idx[k] * inStrides[a] }
            return (0, src)
        }
        return (outShape, map)
    }

    func testTransposeTable() throws {
        let table: [([Int], [Int]?)] = [
            ([2, 3], nil),                       // default: reversed axes
            ([1, 96, 80, 3], [0, 3, 1, 2]),      // NHWC -> NCHW (tf2onnx input), thin side
            ([1, 3, 96, 80], [0, 2, 3, 1]),      // NCHW -> NHWC
            ([2, 37, 45, 19], [0, 3, 1, 2]),     // odd sizes: 4x4 SIMD blocks plus edges
            ([2, 19, 37, 45], [0, 2, 3, 1]),
            ([3, 4, 5], [1, 0, 2]),              // inner axis stays: row copies
            ([2, 3, 4, 5], [3, 2, 1, 0]),
            ([5, 1, 7, 1], [3, 2, 0, 1]),        // size-1 axes dropped
            ([6, 70, 33], [2, 1, 0]),
            ([4, 5, 6, 7, 3], [4, 0, 2, 1, 3]),
            ([1, 1], [1, 0]),
            ([0, 3], [1, 0]),
            ([], []),
        ]
        var rng = TestRandom(1)
        for (i, (shape, perm)) in table.enumerated() {
            for dtype in DM.moveTypes {
                let x = try DM.random(dtype, shape, &rng)
                let p = perm ?? Array((0..<shape.count).reversed())
                let got = try DM.run("Transpose", [.feed(x)], perm.map { [DM.ints("perm", $0)] } ?? [])
                let (outShape, map) = Self.referenceTranspose(shape, p)
                DM.check(got, shape: outShape, inputs: [x], source: map, "transpose case \(i) \(dtype) \(shape) perm \(p)")
            }
        }
    }

    func testTransposeRandomised() throws {
        var rng = TestRandom(2)
        for trial in 0..<60 {
            let rank = rng.int(1...5)
            let shape = (0..<rank).map { _ in rng.int(1...(rank <= 3 ? 40 : 9)) }
            let perm = Array(0..<rank).shuffled(using: &rng)
            let dtype = DM.moveTypes[rng.int(0...DM.moveTypes.count - 1)]
            let x = try DM.random(dtype, shape, &rng)
            let got = try DM.run("Transpose", [.feed(x)], [DM.ints("perm", perm)], threads: 1 + trial % 2)
            let (outShape, map) = Self.referenceTranspose(shape, perm)
            DM.check(got, shape: outShape, inputs: [x], source: map, "random transpose \(trial) \(dtype) \(shape) perm \(perm)")
        }
    }

    func testTransposeRejectsBadPerm() throws {
        let x = try HostTensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])
        XCTAssertThrowsError(try DM.run("Transpose", [.feed(x)], [DM.ints("perm", [0, 0])]))
        XCTAssertThrowsError(try DM.run("Transpose", [.feed(x)], [DM.ints("perm", [0, 1, 2])]))
    }

    // MARK: - Slice

    /// Naive slice: clamps as the spec words it (which for negative steps differs from numpy: a start
    /// before the beginning becomes 0, not "empty"), then walks each axis from start to end.
    static func referenceSlice(_ shape: [Int], starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?)
        -> ([Int], [(input: Int, index: Int)]) {
        var picks = shape.map { Array(0..<$0) }
        for (i, a0) in (axes ?? Array(0..<starts.count)).enumerated() {
            let a = a0 < 0 ? a0 + shape.count : a0
            let dim = shape[a], step = steps?[i] ?? 1
            func resolve(_ v: Int) -> Int { v < 0 ? v + dim : v }
            var s = resolve(starts[i]), e = resolve(ends[i])
            if step > 0 { s = min(max(s, 0), dim); e = min(max(e, 0), dim) } else { s = min(max(s, 0), dim - 1); e = min(max(e, -1), dim - 1) }
            var list: [Int] = []
            var k = s
            while step > 0 ? k < e : k > e {
                if k >= 0 && k < dim { list.append(k) }
                let (next, overflow) = k.addingReportingOverflow(step)
                if overflow { break }
                k = next
            }
            picks[a] = list
        }
        let outShape = picks.map(\.count)
        let inStrides = DM.strides(shape)
        let map = (0..<outShape.reduce(1, *)).map { o -> (input: Int, index: Int) in
            let idx = DM.unravel(o, outShape)
            return (0, idx.enumerated().reduce(0) { $0 + picks[$1.offset][$1.element] * inStrides[$1.offset] })
        }
        return (outShape, map)
    }

    func testSliceTable() throws {
        let big = Int(Int64.max), small = Int(Int64.min)
        let table: [(shape: [Int], starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?)] = [
            ([20, 10, 5], [0, 0], [3, 10], [0, 1], [1, 1]),
            ([20, 10, 5], [20, 10, 4], [0, 0, 1], [0, 1, 2], [-1, -3, -2]),   // negative steps
            ([20, 10, 5], [-1], [big], [1], nil),                            // INT_MAX end
            ([20, 10, 5], [1000], [1000], [1], [1]),                         // start past the end: empty
            ([20, 10, 5], [0], [-1], [-2], nil),                             // negative axis and end
            ([20, 10, 5], [-1], [small], [0], [-1]),                         // reverse a whole axis
            ([20, 10, 5], [0, 0, 3], [20, 10, 4], nil, nil),                 // default axes, last axis one column
            ([8, 16, 16, 32], [0, 4], [8, 12], [1, 2], nil),                 // channel/spatial crop (contiguous runs)
            ([8, 16, 16, 32], [1], [32], [3], [3]),                          // stepped last axis: strided gathers
            ([8, 16, 16, 32], [15], [small], [2], [-2]),                     // stepped middle axis: run copies
            ([7], [2], [5], nil, nil),
            ([9, 4], [1, big], [big, small], [0, 1], [big, small]),         // INT_MAX / INT_MIN steps: one element each
        ]
        var rng = TestRandom(3)
        for (i, c) in table.enumerated() {
            for dtype in [DataType.float, .uint8, .int64, .float16] {
                let x = try DM.random(dtype, c.shape, &rng)
                var inputs: [DM.Operand] = [.feed(x), .constant(try DM.i64(c.starts)), .constant(try DM.i64(c.ends))]
                if let axes = c.axes { inputs.append(.constant(try DM.i64(axes))) } else if c.steps != nil { inputs.append(.none) }
                if let steps = c.steps { inputs.append(.constant(try DM.i64(steps))) }
                let got = try DM.run("Slice", opset: 13, inputs)
                let (outShape, map) = Self.referenceSlice(c.shape, starts: c.starts, ends: c.ends, axes: c.axes, steps: c.steps)
                DM.check(got, shape: outShape, inputs: [x], source: map, "slice case \(i) \(dtype)")
            }
        }
    }

    func testSliceOpset9Attributes() throws {
        var rng = TestRandom(4)
        let x = try DM.random(.float, [3, 4, 5], &rng)
        let got = try DM.run("Slice", opset: 9, [.feed(x)], [DM.ints("starts", [1, -3]), DM.ints("ends", [3, 100]), DM.ints("axes", [0, 2])])
        let (outShape, map) = Self.referenceSlice([3, 4, 5], starts: [1, -3], ends: [3, 100], axes: [0, 2], steps: nil)
        DM.check(got, shape: outShape, inputs: [x], source: map, "slice-1")
    }

    func testSliceRandomised() throws {
        var rng = TestRandom(5)
        for trial in 0..<80 {
            let rank = rng.int(1...4)
            let shape = (0..<rank).map { _ in rng.int(1...12) }
            let axes = Array(Array(0..<rank).shuffled(using: &rng).prefix(rng.int(1...rank)))
            var starts: [Int] = [], ends: [Int] = [], steps: [Int] = []
            for a in axes {
                let d = shape[a]
                starts.append(rng.int(-d - 3...d + 3))
                ends.append(rng.int(-d - 3...d + 3))
                steps.append([1, 1, 2, 3, -1, -2][rng.int(0...5)])
            }
            let signedAxes = axes.map { rng.int(0...1) == 0 ? $0 : $0 - rank }
            let x = try DM.random(.float, shape, &rng)
            let got = try DM.run("Slice", opset: 13, [.feed(x), .constant(DM.i64(starts)), .constant(DM.i64(ends)),
                                                      .constant(DM.i64(signedAxes)), .constant(DM.i64(steps))])
            let (outShape, map) = Self.referenceSlice(shape, starts: starts, ends: ends, axes: signedAxes, steps: steps)
            DM.check(got, shape: outShape, inputs: [x], source: map,
                     "random slice \(trial) \(shape) starts \(starts) ends \(ends) axes \(signedAxes) steps \(steps)")
        }
    }

    // MARK: - Concat

    func testConcat() throws {
        var rng = TestRandom(6)
        let table: [([[Int]], Int)] = [
            ([[2, 3], [2, 5]], 1), ([[2, 3], [4, 3], [1, 3]], 0), ([[2, 3, 4], [2, 3, 1]], -1),
            ([[3], [0], [4]], 0), ([[2, 2, 2], [2, 7, 2]], -2),
        ]
        var cases = table
        for _ in 0..<30 {  // random: rank 1-4, random axis, 1-4 inputs
            let rank = rng.int(1...4)
            let base = (0..<rank).map { _ in rng.int(1...6) }
            let axis = rng.int(-rank...rank - 1)
            let a = axis < 0 ? axis + rank : axis
            cases.append(((0..<rng.int(1...4)).map { _ in var s = base; s[a] = rng.int(0...5); return s }, axis))
        }
        for (i, (shapes, axis)) in cases.enumerated() {
            let dtype = DM.moveTypes[i % DM.moveTypes.count]
            let xs = try shapes.map { try DM.random(dtype, $0, &rng) }
            let got = try DM.run("Concat", xs.map { .feed($0) }, [DM.int("axis", axis)])
            let rank = shapes[0].count, a = axis < 0 ? axis + rank : axis
            var outShape = shapes[0]
            outShape[a] = shapes.map { $0[a] }.reduce(0, +)
            let map = (0..<outShape.reduce(1, *)).map { o -> (input: Int, index: Int) in
                var idx = DM.unravel(o, outShape)
                var k = 0
                while idx[a] >= shapes[k][a] { idx[a] -= shapes[k][a]; k += 1 }
                return (k, zip(idx, DM.strides(shapes[k])).reduce(0) { $0 + $1.0 * $1.1 })
            }
            DM.check(got, shape: outShape, inputs: xs, source: map, "concat case \(i) \(shapes) axis \(axis)")
        }
    }

    // MARK: - Gather

    func testGather() throws {
        var rng = TestRandom(7)
        var cases: [([Int], Int, [Int], [Int])] = [  // data shape, axis, indices shape, indices
            ([5, 4], 0, [3], [0, -1, 2]),
            ([5, 4, 3], 1, [2, 2], [3, 0, -4, 1]),
            ([6], 0, [], [-2]),
            ([3, 7], -1, [4], [6, 6, 0, -7]),
        ]
        for _ in 0..<25 {
            let rank = rng.int(1...4)
            let shape = (0..<rank).map { _ in rng.int(1...6) }
            let axis = rng.int(-rank...rank - 1), dim = shape[axis < 0 ? axis + rank : axis]
            let ishape = (0..<rng.int(0...2)).map { _ in rng.int(1...4) }
            cases.append((shape, axis, ishape, (0..<ishape.reduce(1, *)).map { _ in rng.int(-dim...dim - 1) }))
        }
        for (i, (shape, axis, ishape, indices)) in cases.enumerated() {
            let dtype = DM.moveTypes[i % DM.moveTypes.count]
            let x = try DM.random(dtype, shape, &rng)
            let idx: HostTensor
            if i % 2 == 0 {
                idx = try HostTensor(dtype: .int64, shape: ishape)
                for (k, v) in indices.enumerated() { idx.storage.pointer.assumingMemoryBound(to: Int64.self)[k] = Int64(v) }
            } else {
                idx = try HostTensor(dtype: .int32, shape: ishape)
                for (k, v) in indices.enumerated() { idx.storage.pointer.assumingMemoryBound(to: Int32.self)[k] = Int32(v) }
            }
            let got = try DM.run("Gather", [.feed(x), .feed(idx)], [DM.int("axis", axis)])
            let a = axis < 0 ? axis + shape.count : axis
            let outShape = Array(shape[..<a]) + ishape + Array(shape[(a + 1)...])
            let map = (0..<outShape.reduce(1, *)).map { o -> (input: Int, index: Int) in
                let oi = DM.unravel(o, outShape)
                let j = ishape.isEmpty ? 0 : zip(oi[a..<(a + ishape.count)], DM.strides(ishape)).reduce(0) { $0 + $1.0 * $1.1 }
                var v = indices[j]
                if v < 0 { v += shape[a] }
                let src = Array(oi[..<a]) + [v] + Array(oi[(a + ishape.count)...])
                return (0, zip(src, DM.strides(shape)).reduce(0) { $0 + $1.0 * $1.1 })
            }
            DM.check(got, shape: outShape, inputs: [x], source: map, "gather case \(i) \(shape) axis \(axis) indices \(indices)")
        }
        let x = try HostTensor(shape: [3], floats: [1, 2, 3])
        XCTAssertThrowsError(try DM.run("Gather", [.feed(x), .feed(DM.i64([3]))]), "out-of-range index must be refused")
    }

    // MARK: - Tile

    func testTile() throws {
        var rng = TestRandom(8)
        var cases: [([Int], [Int])] = [([2, 3], [2, 2]), ([3], [4]), ([2, 1, 3], [1, 5, 2]), ([2, 2], [0, 3]), ([], [])]
        for _ in 0..<20 {
            let rank = rng.int(1...4)
            cases.append(((0..<rank).map { _ in rng.int(1...5) }, (0..<rank).map { _ in rng.int(1...3) }))
        }
        for (i, (shape, repeats)) in cases.enumerated() {
            let dtype = DM.moveTypes[i % DM.moveTypes.count]
            let x = try DM.random(dtype, shape, &rng)
            let got = try DM.run("Tile", [.feed(x), .constant(DM.i64(repeats))])
            let outShape = zip(shape, repeats).map { $0 * $1 }
            let map = (0..<outShape.reduce(1, *)).map { o -> (input: Int, index: Int) in
                let oi = DM.unravel(o, outShape)
                return (0, oi.enumerated().reduce(0) { $0 + ($1.element % shape[$1.offset]) * DM.strides(shape)[$1.offset] })
            }
            DM.check(got, shape: outShape, inputs: [x], source: map, "tile case \(i) \(shape) x \(repeats)")
        }
    }

    // MARK: - Pad

    /// Reference pad as the ONNX reference does it: crop by the negative pads first, then pad what is left;
    /// edge clamps, reflect bounces off the ends step by step (no closed formula).
    static func referencePad(_ shape: [Int], begin: [Int], end: [Int], mode: String) -> ([Int], [(input: Int, index: Int)]) {
        let outShape = shape.indices.map { shape[$0] + begin[$0] + end[$0] }
        let inStrides = DM.strides(shape)
        let map = (0..<outShape.reduce(1, *)).map { o -> (input: Int, index: Int) in
            let oi = DM.unravel(o, outShape)
            var src = 0
            for a in shape.indices {
                let first = max(0, -begin[a])
                let d = shape[a] - first - max(0, -end[a])  // what the crop leaves
                var i = oi[a] - max(0, begin[a])
                if i < 0 || i >= d {
                    switch mode {
                    case "constant": return (0, -1)
                    case "edge": i = i < 0 ? 0 : d - 1
                    default:
                        while i < 0 || i >= d {
                            if d == 1 { i = 0; break }
                            if i < 0 { i = -i }
                            if i >= d { i = 2 * (d - 1) - i }
                        }
                    }
                }
                src += (first + i) * inStrides[a]
            }
            return (0, src)
        }
        return (outShape, map)
    }

    func testPad() throws {
        var rng = TestRandom(9)
        var cases: [([Int], [Int], [Int], String)] = [
            ([3, 4], [0, 2], [0, 1], "constant"),
            ([1, 3, 4, 5], [0, 0, 1, 2], [0, 0, 3, 1], "reflect"),
            ([1, 3, 4, 5], [0, 1, 1, 2], [0, 2, 3, 1], "edge"),
            ([4, 6], [-1, 2], [1, -3], "constant"),            // negative pads crop
            ([4, 6], [-1, 7], [2, -2], "reflect"),             // wider than the cropped axis: keeps bouncing
            ([6], [-2], [5], "reflect"),                       // reflect off the cropped start, not the original one
            ([6], [3], [-2], "edge"),
            ([5], [3], [4], "edge"),
            ([2, 1], [1, 2], [1, 2], "reflect"),
        ]
        for _ in 0..<30 {
            let rank = rng.int(1...4)
            let shape = (0..<rank).map { _ in rng.int(1...6) }
            // Crops leave at least one element so edge/reflect have data to copy.
            let begin = shape.map { rng.int(-min($0 - 1, 2)...3) }
            let end = shape.indices.map { rng.int(-min(shape[$0] - 1 - max(0, -begin[$0]), 2)...3) }
            cases.append((shape, begin, end, ["constant", "reflect", "edge"][rng.int(0...2)]))
        }
        for (i, (shape, begin, end, mode)) in cases.enumerated() {
            let x = try DM.random(.float, shape, &rng)
            var value: Float = 2.5
            let got = try DM.run("Pad", opset: 18, [.feed(x), .constant(DM.i64(begin + end)),
                                                    .constant(HostTensor(shape: [], floats: [value]))],
                                 [DM.string("mode", mode)])
            let (outShape, map) = Self.referencePad(shape, begin: begin, end: end, mode: mode)
            let pad = withUnsafeBytes(of: &value) { Array($0) }
            DM.check(got, shape: outShape, inputs: [x], source: map, padValue: pad, "pad case \(i) \(shape) \(begin) \(end) \(mode)")
        }
    }

    func testPadAxesAndOldOpsets() throws {
        var rng = TestRandom(10)
        // Opset 18 axes input (negative axis), int32 data with an int32 constant_value.
        let x = try DM.random(.int32, [2, 3, 4], &rng)
        var seven: Int32 = 7
        let c = try HostTensor(dtype: .int32, shape: [])
        c.storage.pointer.storeBytes(of: seven, as: Int32.self)
        // pads [1, 0, 2, 3] for axes [-1, 0]: begins (axis 2: 1, axis 0: 0), ends (axis 2: 2, axis 0: 3).
        var got = try DM.run("Pad", opset: 18, [.feed(x), .constant(DM.i64([1, 0, 2, 3])), .constant(c), .constant(DM.i64([-1, 0]))])
        var (outShape, map) = Self.referencePad([2, 3, 4], begin: [0, 0, 1], end: [3, 0, 2], mode: "constant")
        DM.check(got, shape: outShape, inputs: [x], source: map, padValue: withUnsafeBytes(of: &seven) { Array($0) }, "pad axes")
        // Opset 2: pads and value are attributes; the float value is converted to the data type (uint8 here).
        let u = try DM.random(.uint8, [3, 3], &rng)
        got = try DM.run("Pad", opset: 2, [.feed(u)], [DM.ints("pads", [1, 0, 0, 2]), Attribute(name: "value", value: .float(9))])
        (outShape, map) = Self.referencePad([3, 3], begin: [1, 0], end: [0, 2], mode: "constant")
        DM.check(got, shape: outShape, inputs: [u], source: map, padValue: [9], "pad-2")
        XCTAssertThrowsError(try DM.run("Pad", [.feed(u), .constant(DM.i64([1, 1, 1, 1]))], [DM.string("mode", "wrap")]))
    }

    // MARK: - Cast

    func testCastValues() throws {
        func cast<S, D>(_ from: DataType, _ values: [S], to: DataType, _: D.Type) throws -> [D] {
            let x = try HostTensor(dtype: from, shape: [values.count])
            values.withUnsafeBytes { x.storage.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            let y = try DM.run("Cast", [.feed(x)], [DM.int("to", Int(to.rawValue))])
            XCTAssertEqual(y.dtype, to)
            return y.elements(as: D.self)
        }
        // float -> int truncates toward zero; out of range saturates; NaN -> 0.
        XCTAssertEqual(try cast(.float, [1.9, -1.9, 0.5, -0.5, 300, -300, .nan] as [Float], to: .int8, Int8.self),
                       [1, -1, 0, 0, 127, -128, 0])
        XCTAssertEqual(try cast(.double, [3e9, -2.7, 1e30] as [Double], to: .int64, Int64.self), [3_000_000_000, -2, Int64.max])
        XCTAssertEqual(try cast(.float, [3.7, -1, 70000] as [Float], to: .uint16, UInt16.self), [3, 0, 65535])
        // Integer narrowing wraps (two's complement), widening keeps the value.
        XCTAssertEqual(try cast(.int64, [300, -1, 1 << 40] as [Int64], to: .int8, Int8.self), [44, -1, 0])
        XCTAssertEqual(try cast(.int32, [-1] as [Int32], to: .uint32, UInt32.self), [UInt32.max])
        XCTAssertEqual(try cast(.uint8, [255, 0] as [UInt8], to: .int64, Int64.self), [255, 0])
        XCTAssertEqual(try cast(.uint64, [UInt64.max] as [UInt64], to: .float, Float.self), [Float(UInt64.max)])
        XCTAssertEqual(try cast(.int64, [(1 << 24) + 1] as [Int64], to: .float, Float.self), [16_777_216])
        // Bool: anything non-zero is true; true is 1.
        XCTAssertEqual(try cast(.float, [0, -0.0, 0.1, .nan] as [Float], to: .bool, UInt8.self), [0, 0, 1, 1])
        XCTAssertEqual(try cast(.bool, [1, 0] as [UInt8], to: .double, Double.self), [1, 0])
        // float16 bit patterns: exact, rounded to nearest even, overflow to inf, underflow to 0 / subnormal.
        XCTAssertEqual(try cast(.float, [1, -2, 65504, 65520, 1e-8, 5.960464477539063e-08, 1.00048828125, 1.00146484375] as [Float],
                                to: .float16, UInt16.self),
                       [0x3C00, 0xC000, 0x7BFF, 0x7C00, 0x0000, 0x0001, 0x3C00, 0x3C02])
        XCTAssertEqual(try cast(.float16, [0x3C00, 0x0001, 0xFC00, 0x7BFF] as [UInt16], to: .float, Float.self),
                       [1, 5.960464477539063e-08, -.infinity, 65504])
        XCTAssertEqual(try cast(.float16, [0x4248] as [UInt16], to: .int32, Int32.self), [3])  // 3.140625 -> 3
        XCTAssertEqual(try cast(.int64, [70000, -3] as [Int64], to: .float16, UInt16.self), [0x7C00, 0xC200])
        // bfloat16: round to nearest even on the upper 16 bits; NaN stays NaN.
        let bf = try cast(.float, [Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000), Float(bitPattern: 0x3F80_8001), .nan] as [Float],
                          to: .bfloat16, UInt16.self)
        XCTAssertEqual(Array(bf.prefix(3)), [0x3F80, 0x3F82, 0x3F81])
        XCTAssertTrue(Float(bitPattern: UInt32(bf[3]) << 16).isNaN)
        // double -> bfloat16 rounds once: just above a tie must round up even though float32 would round to the tie.
        XCTAssertEqual(try cast(.double, [1.00390625 + 1e-12] as [Double], to: .bfloat16, UInt16.self), [0x3F81])
        XCTAssertEqual(try cast(.bfloat16, [0x4049] as [UInt16], to: .float, Float.self), [Float(bitPattern: 0x4049_0000)])
    }

    func testCastRandomisedRoundTrips() throws {
        // Large enough for the parallel chunks; every int16 survives int16 -> float -> int16 and -> int64 -> int16.
        var rng = TestRandom(11)
        let n = 200_000
        let values = (0..<n).map { _ in Int16.random(in: .min ... .max, using: &rng) }
        let x = try HostTensor(dtype: .int16, shape: [n])
        values.withUnsafeBytes { x.storage.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let f = try DM.run("Cast", [.feed(x)], [DM.int("to", Int(DataType.float.rawValue))])
        XCTAssertEqual(f.floats, values.map { Float($0) })
        let back = try DM.run("Cast", [.feed(f)], [DM.int("to", Int(DataType.int16.rawValue))])
        XCTAssertEqual(back.elements(as: Int16.self), values)
        let h = try DM.run("Cast", [.feed(f)], [DM.int("to", Int(DataType.float16.rawValue))])
        let hf = try DM.run("Cast", [.feed(h)], [DM.int("to", Int(DataType.float.rawValue))])
        // float16 keeps 11 significant bits: the round trip error is at most half an ulp of the value.
        for (v, r) in zip(values, hf.floats) {
            let ulp = v == 0 ? 0 : Float(1 << max(0, Int(Float(abs(Int(v))).exponent) - 10))
            if abs(Float(v) - r) > ulp / 2 { XCTFail("float16 round trip of \(v) gave \(r)"); break }
        }
    }

    func testCastLikeTakesTheTypeOfItsSecondInput() throws {
        let x = try HostTensor(shape: [4], floats: [1.5, -2.5, 300, 0])
        let like = try HostTensor(dtype: .int16, shape: [0])
        let y = try DM.run("CastLike", [.feed(x), .feed(like)])
        XCTAssertEqual(y.dtype, .int16)
        XCTAssertEqual(y.elements(as: Int16.self), [1, -2, 300, 0])
        let h = try DM.run("CastLike", [.feed(x), .constant(HostTensor(dtype: .float16, shape: [1]))])
        XCTAssertEqual(h.elements(as: UInt16.self), [0x3E00, 0xC100, 0x5CB0, 0])
    }

    func testCastRefusesUnsupportedTypes() throws {
        let x = try HostTensor(shape: [2], floats: [1, 2])
        for to in [DataType.string, DataType(rawValue: 17), DataType(rawValue: 22)] {  // string, float8e4m3fn, int4
            XCTAssertThrowsError(try DM.run("Cast", [.feed(x)], [DM.int("to", Int(to.rawValue))])) { error in
                XCTAssertEqual((error as? EngineError)?.kind, .unsupported, "Cast to \(to)")
            }
        }
    }

    // MARK: - Shape ops

    func testShape() throws {
        let x = try HostTensor(dtype: .float, shape: [2, 3, 4, 5])
        let table: [(Int?, Int?, [Int64])] = [
            (nil, nil, [2, 3, 4, 5]), (1, nil, [3, 4, 5]), (nil, -1, [2, 3, 4]), (-10, 10, [2, 3, 4, 5]),
            (3, 1, []), (1, 3, [3, 4]), (-1, nil, [5]),
        ]
        for (start, end, want) in table {
            var attrs: [Attribute] = []
            if let start { attrs.append(DM.int("start", start)) }
            if let end { attrs.append(DM.int("end", end)) }
            let y = try DM.run("Shape", opset: 15, [.feed(x)], attrs)
            XCTAssertEqual(y.dtype, .int64)
            XCTAssertEqual(y.int64s, want, "Shape start \(String(describing: start)) end \(String(describing: end))")
        }
        XCTAssertEqual(try DM.run("Size", [.feed(x)]).int64s, [120])
        XCTAssertEqual(try DM.run("Size", [.feed(x)]).shape, [])
        // Before opset 15 start/end do not exist: the whole shape.
        XCTAssertEqual(try DM.run("Shape", opset: 13, [.feed(x)], [DM.int("start", 2)]).int64s, [2, 3, 4, 5])
    }

    /// Reshape-like ops only change the shape: the bytes must come through unchanged.
    private func assertSameBytes(_ got: HostTensor, _ x: HostTensor, shape: [Int], _ label: String) {
        DM.check(got, shape: shape, inputs: [x], source: (0..<x.count).map { (0, $0) }, label)
    }

    func testReshape() throws {
        var rng = TestRandom(12)
        let x = try DM.random(.int16, [2, 3, 4], &rng)
        let table: [([Int], Int, [Int])] = [  // requested, allowzero, expected
            ([4, 6], 0, [4, 6]), ([0, -1], 0, [2, 12]), ([-1], 0, [24]), ([2, 0, 2, 2], 0, [2, 3, 2, 2]),
            ([1, 1, 24, 1], 0, [1, 1, 24, 1]), ([3, -1, 0], 0, [3, 2, 4]),
        ]
        for (requested, allowZero, want) in table {
            let y = try DM.run("Reshape", opset: 14, [.feed(x), .constant(DM.i64(requested))], [DM.int("allowzero", allowZero)])
            assertSameBytes(y, x, shape: want, "reshape \(requested)")
        }
        // allowzero=1: a 0 is a real zero-size dim.
        let empty = try HostTensor(dtype: .float, shape: [0, 3])
        XCTAssertEqual(try DM.run("Reshape", opset: 14, [.feed(empty), .constant(DM.i64([3, 0]))], [DM.int("allowzero", 1)]).shape, [3, 0])
        XCTAssertThrowsError(try DM.run("Reshape", [.feed(x), .constant(DM.i64([5, -1]))]))
        XCTAssertThrowsError(try DM.run("Reshape", [.feed(x), .constant(DM.i64([-1, -1]))]))
        // Reshape-1: shape attribute.
        assertSameBytes(try DM.run("Reshape", opset: 1, [.feed(x)], [DM.ints("shape", [6, 4])]), x, shape: [6, 4], "reshape-1")
    }

    func testFlattenSqueezeUnsqueeze() throws {
        var rng = TestRandom(13)
        let x = try DM.random(.float, [2, 1, 3, 1], &rng)
        for (axis, want) in [(0, [1, 6]), (1, [2, 3]), (2, [2, 3]), (4, [6, 1]), (-1, [6, 1]), (-3, [2, 3]), (-4, [1, 6])] {
            assertSameBytes(try DM.run("Flatten", [.feed(x)], [DM.int("axis", axis)]), x, shape: want, "flatten \(axis)")
        }
        // Squeeze: opset 13 axes input (optional), opset 11 attribute.
        assertSameBytes(try DM.run("Squeeze", opset: 13, [.feed(x)]), x, shape: [2, 3], "squeeze all")
        assertSameBytes(try DM.run("Squeeze", opset: 13, [.feed(x), .constant(DM.i64([-1]))]), x, shape: [2, 1, 3], "squeeze -1")
        assertSameBytes(try DM.run("Squeeze", opset: 11, [.feed(x)], [DM.ints("axes", [1])]), x, shape: [2, 3, 1], "squeeze-11")
        XCTAssertThrowsError(try DM.run("Squeeze", opset: 13, [.feed(x), .constant(DM.i64([0]))]), "axis 0 has size 2")
        // Unsqueeze: axes index the output.
        let y = try DM.random(.float, [3, 4], &rng)
        assertSameBytes(try DM.run("Unsqueeze", opset: 13, [.feed(y), .constant(DM.i64([0, -1]))]), y, shape: [1, 3, 4, 1], "unsqueeze")
        assertSameBytes(try DM.run("Unsqueeze", opset: 13, [.feed(y), .constant(DM.i64([3, 1]))]), y, shape: [3, 1, 4, 1], "unsqueeze unsorted")
        assertSameBytes(try DM.run("Unsqueeze", opset: 11, [.feed(y)], [DM.ints("axes", [1])]), y, shape: [3, 1, 4], "unsqueeze-11")
        XCTAssertThrowsError(try DM.run("Unsqueeze", opset: 13, [.feed(y), .constant(DM.i64([1, 1]))]), "repeated axis")
    }

    /// Shape -> Gather -> Unsqueeze -> Concat -> Reshape, the usual exporter pattern, folded at plan time.
    func testShapeChainFolds() throws {
        var model = Model()
        model.opsetImports = [OpsetID(domain: "", version: 13)]
        model.graph.inputs = [ValueInfo(name: "x", type: nil)]
        model.graph.initializers = [Tensor(name: "zero", int64s: [0], dims: []), Tensor(name: "minus1", int64s: [-1], dims: [1]),
                                    Tensor(name: "axes0", int64s: [0], dims: [1])]
        model.graph.nodes = [
            Node(opType: "Shape", inputs: ["x"], outputs: ["s"]),
            Node(opType: "Gather", inputs: ["s", "zero"], outputs: ["n"], attributes: [DM.int("axis", 0)]),
            Node(opType: "Unsqueeze", inputs: ["n", "axes0"], outputs: ["n1"]),
            Node(opType: "Concat", inputs: ["n1", "minus1"], outputs: ["shape"], attributes: [DM.int("axis", 0)]),
            Node(opType: "Reshape", inputs: ["x", "shape"], outputs: ["y"]),
        ]
        model.graph.outputs = [ValueInfo(name: "y", type: nil), ValueInfo(name: "shape", type: nil)]
        var rng = TestRandom(14)
        let x = try DM.random(.float, [3, 4, 5], &rng)
        let out = try Session(model: model).run(["x": x])
        XCTAssertEqual(out["shape"]?.int64s, [3, -1])
        assertSameBytes(out["y"]!, x, shape: [3, 20], "reshape by computed shape")
    }
}
