import Foundation
import OnnxIO

// input: any shape, element type A -> output: same shape, element type `to`
// Floats to integers truncate toward zero (saturating, NaN -> 0); integers narrow by wrapping;
// anything to bool is `!= 0`. float8/int4/string types are refused as unsupported.
final class CastKernel: Kernel {
    let to: DataType

    init(_ info: NodeInfo) throws {
        guard let code = try info.int("to") else { throw KernelError("Cast needs a 'to' attribute") }
        to = DataType(rawValue: Int32(truncatingIfNeeded: code))
        // `saturate` only changes float8 results, and float8 is not an engine type.
        guard CastConvert.supports(to) else { throw info.unsupported("to=\(to)") }
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0)
        guard CastConvert.supports(x.dtype) else { throw KernelError("Cast from \(x.dtype) is not supported", unsupported: true) }
        return [ValueSpec(to, x.shape)]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0), out = outputs[0]
        let inSize = x.dtype.elementSize, outSize = to.elementSize
        context.parallelFor(x.count, minChunk: 1 << 16) { r in
            CastConvert.convert(x.data + r.lowerBound * inSize, x.dtype, out.data + r.lowerBound * outSize, to, count: r.count)
        }
    }
}

// input: any shape, element type A; target_type: any tensor of type B (only its type is read)
// -> output: input's shape, element type B. Same conversions as Cast.
final class CastLikeKernel: Kernel {
    init(_ info: NodeInfo) throws {}

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0), like = try inputs.spec(1)
        for t in [x.dtype, like.dtype] where !CastConvert.supports(t) {
            throw KernelError("CastLike with \(t) is not supported", unsupported: true)
        }
        return [ValueSpec(like.dtype, x.shape)]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0), out = outputs[0]
        context.parallelFor(x.count, minChunk: 1 << 16) { r in
            CastConvert.convert(x.data + r.lowerBound * x.dtype.elementSize, x.dtype,
                                out.data + r.lowerBound * out.dtype.elementSize, out.dtype, count: r.count)
        }
    }
}

/// Element conversion between engine types. Values pass through one of three lanes wide enough to hold
/// any source exactly (Double for floats, Int64 for signed, UInt64 for unsigned and bool), in small
/// chunks on the stack, so each (type -> lane) and (lane -> type) loop is written once.
enum CastConvert {
    static func supports(_ t: DataType) -> Bool {
        switch t {
        case .float, .double, .float16, .bfloat16, .int8, .int16, .int32, .int64,
             .uint8, .uint16, .uint32, .uint64, .bool: return true
        default: return false
        }
    }

    private enum Lane { case float, signed, unsigned }

    private static func lane(_ t: DataType) -> Lane {
        switch t {
        case .float, .double, .float16, .bfloat16: return .float
        case .int8, .int16, .int32, .int64: return .signed
        default: return .unsigned
        }
    }

    /// Converts `count` elements; both types must pass `supports`.
    static func convert(_ src: UnsafeRawPointer, _ from: DataType, _ dst: UnsafeMutableRawPointer, _ to: DataType, count: Int) {
        if from == to { memcpy(dst, src, count * from.elementSize); return }
        let chunk = 512
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: chunk) { buffer in
            let lanes = UnsafeMutableRawPointer(buffer.baseAddress!)
            var done = 0
            while done < count {
                let n = min(chunk, count - done)
                let s = src + done * from.elementSize, d = dst + done * to.elementSize
                switch lane(from) {
                case .float: load(s, from, n, lanes.assumingMemoryBound(to: Double.self)); store(lanes.assumingMemoryBound(to: Double.self), d, to, n)
                case .signed: load(s, from, n, lanes.assumingMemoryBound(to: Int64.self)); store(lanes.assumingMemoryBound(to: Int64.self), d, to, n)
                case .unsigned: load(s, from, n, lanes.assumingMemoryBound(to: UInt64.self)); store(lanes.assumingMemoryBound(to: UInt64.self), d, to, n)
                }
                done += n
            }
        }
    }

    @inline(__always)
    private static func map<S, D>(_ src: UnsafeRawPointer, _ dst: UnsafeMutableRawPointer, _ n: Int, _ f: (S) -> D) {
        let s = src.assumingMemoryBound(to: S.self), d = dst.assumingMemoryBound(to: D.self)
        for i in 0..<n { d[i] = f(s[i]) }
    }

    private static func load(_ s: UnsafeRawPointer, _ t: DataType, _ n: Int, _ lane: UnsafeMutablePointer<Double>) {
        switch t {
        case .float: map(s, lane, n) { (v: Float) in Double(v) }
        case .double: memcpy(lane, s, n * 8)
        case .float16: map(s, lane, n) { (v: Float16) in Double(v) }
        default: map(s, lane, n) { (v: UInt16) in Double(BFloat16Bits.toFloat(v)) }  // bfloat16
        }
    }

    private static func load(_ s: UnsafeRawPointer, _ t: DataType, _ n: Int, _ lane: UnsafeMutablePointer<Int64>) {
        switch t {
        case .int8: map(s, lane, n) { (v: Int8) in Int64(v) }
        case .int16: map(s, lane, n) { (v: Int16) in Int64(v) }
        case .int32: map(s, lane, n) { (v: Int32) in Int64(v) }
        default: memcpy(lane, s, n * 8)  // int64
        }
    }

    private static func load(_ s: UnsafeRawPointer, _ t: DataType, _ n: Int, _ lane: UnsafeMutablePointer<UInt64>) {
        switch t {
        case .uint8: map(s, lane, n) { (v: UInt8) in UInt64(v) }
        case .uint16: map(s, lane, n) { (v: UInt16) in UInt64(v) }
        case .uint32: map(s, lane, n) { (v: UInt32) in UInt64(v) }
        case .bool: map(s, lane, n) { (v: UInt8) in v != 0 ? 1 : 0 }
        default: memcpy(lane, s, n * 8)  // uint64
        }
    }

    private static func store<L: CastLaneValue>(_ lane: UnsafeMutablePointer<L>, _ d: UnsafeMutableRawPointer, _ t: DataType, _ n: Int) {
        let s = UnsafeRawPointer(lane)
        switch t {
        case .float: map(s, d, n) { (v: L) in v.castToFloat() }
        case .double: map(s, d, n) { (v: L) in v.castToDouble() }
        case .float16: map(s, d, n) { (v: L) in v.castToHalf() }
        case .bfloat16: map(s, d, n) { (v: L) in v.castToBFloat16() }
        case .int8: map(s, d, n) { (v: L) -> Int8 in v.castToInteger() }
        case .int16: map(s, d, n) { (v: L) -> Int16 in v.castToInteger() }
        case .int32: map(s, d, n) { (v: L) -> Int32 in v.castToInteger() }
        case .int64: map(s, d, n) { (v: L) -> Int64 in v.castToInteger() }
        case .uint8: map(s, d, n) { (v: L) -> UInt8 in v.castToInteger() }
        case .uint16: map(s, d, n) { (v: L) -> UInt16 in v.castToInteger() }
        case .uint32: map(s, d, n) { (v: L) -> UInt32 in v.castToInteger() }
        case .uint64: map(s, d, n) { (v: L) -> UInt64 in v.castToInteger() }
        default: map(s, d, n) { (v: L) -> UInt8 in v.castToBool() ? 1 : 0 }  // bool
        }
    }
}

/// A lane value converted to each destination type.
protocol CastLaneValue {
    func castToFloat() -> Float
    func castToDouble() -> Double
    func castToHalf() -> Float16
    func castToBFloat16() -> UInt16
    func castToInteger<D: FixedWidthInteger>() -> D
    func castToBool() -> Bool
}

extension Double: CastLaneValue {
    @inline(__always) func castToFloat() -> Float { Float(self) }
    @inline(__always) func castToDouble() -> Double { self }
    @inline(__always) func castToHalf() -> Float16 { Float16(self) }
    @inline(__always) func castToBFloat16() -> UInt16 { BFloat16Bits.fromDouble(self) }
    /// Truncates toward zero; out-of-range values saturate and NaN gives 0 (the spec leaves both undefined,
    /// this just avoids a trap).
    @inline(__always) func castToInteger<D: FixedWidthInteger>() -> D {
        if isNaN { return 0 }
        if self <= Double(D.min) { return D.min }
        if self >= Double(D.max) { return D.max }
        return D(self)
    }
    @inline(__always) func castToBool() -> Bool { self != 0 }
}

extension Int64: CastLaneValue {
    @inline(__always) func castToFloat() -> Float { Float(self) }
    @inline(__always) func castToDouble() -> Double { Double(self) }
    @inline(__always) func castToHalf() -> Float16 { Float16(self) }
    @inline(__always) func castToBFloat16() -> UInt16 { BFloat16Bits.fromDouble(Double(self)) }
    @inline(__always) func castToInteger<D: FixedWidthInteger>() -> D { D(truncatingIfNeeded: self) }
    @inline(__always) func castToBool() -> Bool { self != 0 }
}

extension UInt64: CastLaneValue {
    @inline(__always) func castToFloat() -> Float { Float(self) }
    @inline(__always) func castToDouble() -> Double { Double(self) }
    @inline(__always) func castToHalf() -> Float16 { Float16(self) }
    @inline(__always) func castToBFloat16() -> UInt16 { BFloat16Bits.fromDouble(Double(self)) }
    @inline(__always) func castToInteger<D: FixedWidthInteger>() -> D { D(truncatingIfNeeded: self) }
    @inline(__always) func castToBool() -> Bool { self != 0 }
}

/// bfloat16 is the top half of a float32; Swift has no type for it, so it is handled as UInt16 bits.
enum BFloat16Bits {
    @inline(__always) static func toFloat(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    /// Round to nearest even; NaN stays a (quiet) NaN.
    @inline(__always) static func fromFloat(_ f: Float) -> UInt16 {
        let bits = f.bitPattern
        if f.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }

    /// Double -> float32 rounding to odd, then float32 -> bfloat16 to nearest even: the two roundings give
    /// the correctly rounded result (plain double -> float -> bfloat16 could round twice).
    @inline(__always) static func fromDouble(_ d: Double) -> UInt16 {
        var f = Float(d)
        if f.isFinite && Double(f) != d && f.bitPattern & 1 == 0 {
            f = Double(f) > d ? f.nextDown : f.nextUp
        }
        return fromFloat(f)
    }
}
