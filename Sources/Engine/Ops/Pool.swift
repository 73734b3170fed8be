import Foundation
import OnnxIO

extension OpRegistry {
    static let poolOps: [String: KernelFactory] = [
        "GlobalAveragePool": { info in GlobalPoolKernel(info, max: false) },
        "GlobalMaxPool": { info in GlobalPoolKernel(info, max: true) },
        "AveragePool": { info in try PoolKernel(info, kind: .average) },
        "MaxPool": { info in try PoolKernel(info, kind: .max) },
        "LpPool": { info in try PoolKernel(info, kind: .lp) },
        "MaxUnpool": { info in try MaxUnpoolKernel(info) },
    ]
}

/// Element types MaxPool handles: comparable, with a value below every other.
protocol PoolMaxElement: Comparable {
    static var lowestValue: Self { get }
}
extension Float: PoolMaxElement { static var lowestValue: Float { -.infinity } }
extension Double: PoolMaxElement { static var lowestValue: Double { -.infinity } }
extension Int8: PoolMaxElement { static var lowestValue: Int8 { .min } }
extension UInt8: PoolMaxElement { static var lowestValue: UInt8 { .min } }
extension Int32: PoolMaxElement { static var lowestValue: Int32 { .min } }
extension Int64: PoolMaxElement { static var lowestValue: Int64 { .min } }

/// Float types AveragePool and LpPool compute in.
protocol PoolFloat: BinaryFloatingPoint {
    static func power(_ x: Self, _ y: Self) -> Self
}
extension Float: PoolFloat { static func power(_ x: Float, _ y: Float) -> Float { powf(x, y) } }
extension Double: PoolFloat { static func power(_ x: Double, _ y: Double) -> Double { pow(x, y) } }

// X: [N,C,D1..Dr] -> Y: [N,C,1..1] (mean or max over every spatial position)
final class GlobalPoolKernel: Kernel {
    let isMax: Bool

    init(_ info: NodeInfo, max: Bool) { isMax = max }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0)
        guard x.dtype == .float || x.dtype == .double else {
            throw KernelError("\(isMax ? "GlobalMaxPool" : "GlobalAveragePool") supports float and double, got \(x.dtype)", unsupported: true)
        }
        guard x.shape.count >= 2 else { throw KernelError("input must have rank ≥ 2 (N, C, spatial...), got \(x.shape)") }
        return [ValueSpec(x.dtype, Array(x.shape[0..<2]) + Array(repeating: 1, count: x.shape.count - 2))]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0), y = outputs[0]
        let planes = x.shape[0] * x.shape[1]
        let size = x.shape.dropFirst(2).reduce(1, *)
        if x.dtype == .double {
            let src = x.typed(Double.self), dst = y.typed(Double.self)
            for p in 0..<planes {
                let plane = src + p * size
                if isMax {
                    var m = -Double.infinity
                    for i in 0..<size { m = Swift.max(m, plane[i]) }
                    dst[p] = m
                } else {
                    var s = 0.0
                    for i in 0..<size { s += plane[i] }
                    dst[p] = s / Double(size)
                }
            }
            return
        }
        let src = x.floats, dst = y.floats
        let isMax = self.isMax
        context.parallelFor(planes, minChunk: max(1, 16384 / max(size, 1))) { range in
            for p in range {
                let plane = UnsafeRawPointer(src + p * size)
                var i = 0
                if isMax {
                    var m8 = SIMD8<Float>(repeating: -.infinity)
                    while i + 8 <= size {
                        let v = plane.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                        m8.replace(with: v, where: v .> m8)
                        i += 8
                    }
                    var m = m8.max()
                    while i < size { m = Swift.max(m, src[p * size + i]); i += 1 }
                    dst[p] = m
                } else {
                    var s8 = SIMD8<Float>()
                    while i + 8 <= size {
                        s8 += plane.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                        i += 8
                    }
                    var s = s8.sum()
                    while i < size { s += src[p * size + i]; i += 1 }
                    dst[p] = s / Float(size)
                }
            }
        }
    }
}

/// Pool window sizes as 3-D (D, H, W), like ConvGeometry: 1-D and 2-D pools get leading 1s.
struct PoolGeometry {
    var planes = 0
    var inD = 1, inH = 1, inW = 1
    var kD = 1, kH = 1, kW = 1
    var oD = 1, oH = 1, oW = 1
    var sD = 1, sH = 1, sW = 1
    var dD = 1, dH = 1, dW = 1
    var pD = 0, pH = 0, pW = 0  // begin pads
    var eD = 0, eH = 0, eW = 0  // end pads
    var outputShape: [Int] = []

    init(x: [Int], attributes a: WindowAttributes) throws {
        let r = x.count - 2
        guard (1...3).contains(r) else { throw KernelError("pooling input must be 3-D, 4-D or 5-D (N, C, spatial...), got rank \(x.count)") }
        guard let kernel = a.kernelShape else { throw KernelError("kernel_shape is required") }
        guard kernel.count == r else { throw KernelError("kernel_shape \(kernel) must have \(r) values for input \(x)") }
        let input = Array(x[2...])
        let win = try a.resolve(input: input, kernel: kernel)
        func pad3(_ v: [Int], _ fill: Int) -> [Int] { Array(repeating: fill, count: 3 - r) + v }
        let i3 = pad3(input, 1), k3 = pad3(kernel, 1), o3 = pad3(win.output, 1)
        let s3 = pad3(win.strides, 1), d3 = pad3(win.dilations, 1), p3 = pad3(win.padBegin, 0), e3 = pad3(win.padEnd, 0)
        planes = x[0] * x[1]
        (inD, inH, inW) = (i3[0], i3[1], i3[2])
        (kD, kH, kW) = (k3[0], k3[1], k3[2])
        (oD, oH, oW) = (o3[0], o3[1], o3[2])
        (sD, sH, sW) = (s3[0], s3[1], s3[2])
        (dD, dH, dW) = (d3[0], d3[1], d3[2])
        (pD, pH, pW) = (p3[0], p3[1], p3[2])
        (eD, eH, eW) = (e3[0], e3[1], e3[2])
        outputShape = [x[0], x[1]] + win.output
    }

    var inSpatial: Int { inD * inH * inW }
    var outSpatial: Int { oD * oH * oW }
}

/// Taps k in 0..<kernel of a window starting at `start` (stride/dilation applied by the caller)
/// whose position start + k·dilation lies in [lo, hi).
@inline(__always)
private func tapRange(start: Int, kernel: Int, dilation: Int, lo: Int, hi: Int) -> Range<Int> {
    let first = start >= lo ? 0 : (lo - start + dilation - 1) / dilation
    let last = start > hi - 1 ? 0 : Swift.min(kernel, (hi - 1 - start) / dilation + 1)
    return first < last ? first..<last : 0..<0
}

// AveragePool / MaxPool / LpPool. X: [N,C,D1..Dr] -> Y: [N,C,o1..or] (+ MaxPool Indices: int64 [N,C,o1..or])
final class PoolKernel: Kernel {
    enum Kind { case max, average, lp }
    let kind: Kind
    let window: WindowAttributes
    let countIncludePad: Bool
    let storageOrder: Int
    /// LpPool's exponent.
    let p: Int

    init(_ info: NodeInfo, kind: Kind) throws {
        self.kind = kind
        let ceil = try info.int("ceil_mode", 0)
        guard ceil == 0 || ceil == 1 else { throw KernelError("ceil_mode must be 0 or 1, got \(ceil)") }
        window = try WindowAttributes(info, ceilMode: ceil == 1)
        countIncludePad = try info.int("count_include_pad", 0) != 0
        storageOrder = try info.int("storage_order", 0)
        guard storageOrder == 0 || storageOrder == 1 else { throw KernelError("storage_order must be 0 or 1, got \(storageOrder)") }
        p = try info.int("p", 2)
        if kind == .lp && p < 1 { throw KernelError("LpPool p must be at least 1, got \(p)") }
        if kind == .average && window.dilations != nil && info.opset < 19 {
            throw KernelError("AveragePool has no dilations before opset 19")
        }
    }

    private var name: String { kind == .max ? "MaxPool" : kind == .average ? "AveragePool" : "LpPool" }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0)
        let types: [DataType] = kind == .max ? [.float, .double, .int8, .uint8, .int32, .int64] : [.float, .double]
        guard types.contains(x.dtype) else {
            throw KernelError("\(name) does not support element type \(x.dtype)", unsupported: true)
        }
        let g = try PoolGeometry(x: x.shape, attributes: window)
        return kind == .max ? [ValueSpec(x.dtype, g.outputShape), ValueSpec(.int64, g.outputShape)] : [ValueSpec(x.dtype, g.outputShape)]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0), y = outputs[0]
        let g = try PoolGeometry(x: x.shape, attributes: window)
        if kind == .max {
            // The Indices output always has memory (the planner gives unused outputs a private buffer).
            let indices = outputs.count > 1 ? outputs[1].typed(Int64.self) : nil
            switch x.dtype {
            case .float: maxPool(g, x.typed(Float.self), y.typed(Float.self), indices, context)
            case .double: maxPool(g, x.typed(Double.self), y.typed(Double.self), indices, context)
            case .int8: maxPool(g, x.typed(Int8.self), y.typed(Int8.self), indices, context)
            case .uint8: maxPool(g, x.typed(UInt8.self), y.typed(UInt8.self), indices, context)
            case .int32: maxPool(g, x.typed(Int32.self), y.typed(Int32.self), indices, context)
            case .int64: maxPool(g, x.typed(Int64.self), y.typed(Int64.self), indices, context)
            default: throw KernelError("MaxPool does not support element type \(x.dtype)", unsupported: true)
            }
        } else {
            switch x.dtype {
            case .float: sumPool(g, x.typed(Float.self), y.typed(Float.self), context)
            case .double: sumPool(g, x.typed(Double.self), y.typed(Double.self), context)
            default: throw KernelError("\(name) does not support element type \(x.dtype)", unsupported: true)
            }
        }
    }

    private func maxPool<T: PoolMaxElement>(_ g: PoolGeometry, _ x: UnsafeMutablePointer<T>, _ y: UnsafeMutablePointer<T>,
                                            _ indices: UnsafeMutablePointer<Int64>?, _ context: RunContext) {
        let columnMajor = storageOrder == 1
        context.parallelFor(g.planes, minChunk: max(1, 4096 / max(g.outSpatial, 1))) { range in
            for p in range {
                let plane = x + p * g.inSpatial
                var out = p * g.outSpatial
                for od in 0..<g.oD {
                    let d0 = od * g.sD - g.pD
                    let dr = tapRange(start: d0, kernel: g.kD, dilation: g.dD, lo: 0, hi: g.inD)
                    for oh in 0..<g.oH {
                        let h0 = oh * g.sH - g.pH
                        let hr = tapRange(start: h0, kernel: g.kH, dilation: g.dH, lo: 0, hi: g.inH)
                        for ow in 0..<g.oW {
                            let w0 = ow * g.sW - g.pW
                            let wr = tapRange(start: w0, kernel: g.kW, dilation: g.dW, lo: 0, hi: g.inW)
                            var best = T.lowestValue, at = -1
                            for kd in dr {
                                let id = d0 + kd * g.dD
                                for kh in hr {
                                    let ih = h0 + kh * g.dH
                                    let row = (id * g.inH + ih) * g.inW
                                    for kw in wr {
                                        let i = row + w0 + kw * g.dW
                                        if at < 0 || plane[i] > best { best = plane[i]; at = i }
                                    }
                                }
                            }
                            y[out] = best
                            if let indices {
                                var idx = Swift.max(at, 0)
                                if columnMajor {
                                    // Column-major position of (d, h, w) inside the plane.
                                    let w = idx % g.inW, h = (idx / g.inW) % g.inH, d = idx / (g.inW * g.inH)
                                    idx = d + g.inD * (h + g.inH * w)
                                }
                                indices[out] = Int64(p * g.inSpatial + idx)
                            }
                            out += 1
                        }
                    }
                }
            }
        }
    }

    /// AveragePool (mean over the window) and LpPool ((Σ|x|^p)^(1/p) over the window; padding adds nothing).
    private func sumPool<T: PoolFloat>(_ g: PoolGeometry, _ x: UnsafeMutablePointer<T>,
                                                                        _ y: UnsafeMutablePointer<T>, _ context: RunContext) {
        let includePad = countIncludePad
        let lp = kind == .lp, p = self.p, inverseP = 1 / T(p)
        context.parallelFor(g.planes, minChunk: max(1, 4096 / max(g.outSpatial, 1))) { range in
            for plane in range {
                let src = x + plane * g.inSpatial
                var out = plane * g.outSpatial
                for od in 0..<g.oD {
                    let d0 = od * g.sD - g.pD
                    let dr = tapRange(start: d0, kernel: g.kD, dilation: g.dD, lo: 0, hi: g.inD)
                    // With count_include_pad, explicit padding counts but the overhang of a ceil_mode window does not.
                    let dn = includePad ? tapRange(start: d0, kernel: g.kD, dilation: g.dD, lo: -g.pD, hi: g.inD + g.eD).count : dr.count
                    for oh in 0..<g.oH {
                        let h0 = oh * g.sH - g.pH
                        let hr = tapRange(start: h0, kernel: g.kH, dilation: g.dH, lo: 0, hi: g.inH)
                        let hn = includePad ? tapRange(start: h0, kernel: g.kH, dilation: g.dH, lo: -g.pH, hi: g.inH + g.eH).count : hr.count
                        for ow in 0..<g.oW {
                            let w0 = ow * g.sW - g.pW
                            let wr = tapRange(start: w0, kernel: g.kW, dilation: g.dW, lo: 0, hi: g.inW)
                            let wn = includePad ? tapRange(start: w0, kernel: g.kW, dilation: g.dW, lo: -g.pW, hi: g.inW + g.eW).count : wr.count
                            var sum: T = 0
                            for kd in dr {
                                let id = d0 + kd * g.dD
                                for kh in hr {
                                    let row = src + ((id * g.inH + h0 + kh * g.dH) * g.inW + w0)
                                    if lp {
                                        for kw in wr {
                                            let v = abs(row[kw * g.dW])
                                            sum += p == 1 ? v : p == 2 ? v * v : T.power(v, T(p))
                                        }
                                    } else {
                                        for kw in wr { sum += row[kw * g.dW] }
                                    }
                                }
                            }
                            if lp {
                                y[out] = p == 1 ? sum : p == 2 ? sum.squareRoot() : T.power(sum, inverseP)
                            } else {
                                let n = dn * hn * wn
                                y[out] = n > 0 ? sum / T(n) : 0
                            }
                            out += 1
                        }
                    }
                }
            }
        }
    }
}

// MaxUnpool. X: [N,C,D1..Dr], I: int64 [N,C,D1..Dr] (flat indices from MaxPool), output_shape: [r+2] (optional)
//   -> Y: zeros of output_shape (default (D-1)·stride - pads + kernel) with X scattered to I.
// Like the ONNX reference, I indexes the default shape; a larger output_shape holds it at the origin.
final class MaxUnpoolKernel: Kernel {
    let kernel: [Int]
    let strides: [Int]?
    let pads: [Int]?

    init(_ info: NodeInfo) throws {
        guard let k = try info.sizes("kernel_shape") else { throw KernelError("kernel_shape is required") }
        kernel = k
        strides = try info.sizes("strides")
        pads = try info.sizes("pads")
    }

    private func inferredShape(_ x: [Int]) throws -> [Int] {
        let r = kernel.count
        guard x.count == r + 2 else { throw KernelError("input \(x) must have rank \(r + 2) for kernel_shape \(kernel)") }
        let s = strides ?? Array(repeating: 1, count: r), p = pads ?? Array(repeating: 0, count: 2 * r)
        guard s.count == r, p.count == 2 * r else { throw KernelError("strides \(s) or pads \(p) do not match kernel_shape \(kernel)") }
        // Attributes are bounded (`NodeInfo.sizes`), dims checked by the planner: only the product can overflow.
        let spatial = try (0..<r).map { a -> Int in
            let what = "unpooled size of spatial axis \(a)"
            let n = try checkedAdd(checkedMul(x[a + 2] - 1, s[a], what) - (p[a] + p[a + r]), kernel[a], what)
            guard n >= 0 else { throw KernelError("the unpooled size of spatial axis \(a) would be \(n)") }
            return n
        }
        return [x[0], x[1]] + spatial
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0), i = try inputs.spec(1)
        guard x.dtype.elementSize > 0 else { throw KernelError("unsupported element type \(x.dtype)", unsupported: true) }
        guard i.dtype == .int64, i.shape == x.shape else { throw KernelError("indices must be int64 of the input's shape \(x.shape)") }
        let inferred = try inferredShape(x.shape)
        var shape = inferred
        if let o = try inputs.optionalValue(2) {
            shape = try o.integers()
            guard shape.count == inferred.count, zip(shape, inferred).allSatisfy({ $0 >= $1 }) else {
                throw KernelError("output_shape \(shape) must have rank \(inferred.count) and hold the unpooled shape \(inferred)")
            }
        }
        return [ValueSpec(x.dtype, shape)]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0), indices = inputs.at(1).typed(Int64.self), y = outputs[0]
        let inferred = try inferredShape(x.shape)
        let total = inferred.reduce(1, *), es = x.dtype.elementSize
        memset(y.data, 0, y.byteCount)
        for e in 0..<x.count {
            let flat = Int(indices[e])
            guard flat >= 0 && flat < total else { throw KernelError("index \(flat) is outside the unpooled tensor of \(total) elements") }
            // Coordinates in the inferred shape, re-flattened in the output shape.
            var rem = flat, step = 1, offset = 0
            for a in stride(from: inferred.count - 1, through: 0, by: -1) {
                offset += (rem % inferred[a]) * step
                rem /= inferred[a]
                step *= y.shape[a]
            }
            (y.data + offset * es).copyMemory(from: x.data + e * es, byteCount: es)
        }
    }
}

// MARK: - Training

/// GlobalAveragePool: x [planes, spatial] → y [planes], planes = batch · channels.
public enum GlobalAveragePoolTraining {
    /// y[p] = Σ x[p, :] / spatial (16 float lanes, added together, then the tail one by one).
    public static func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, planes: Int, spatial: Int,
                               threads: Int) {
        let scale = 1 / Float(spatial)
        RunContext(threads: threads, scratch: nil).parallelFor(planes, minChunk: max(1, 16384 / max(spatial, 1))) { range in
            for p in range {
                let plane = x + p * spatial
                var acc = SIMD16<Float>(), i = 0
                while i + 16 <= spatial { acc += load16(plane + i); i += 16 }
                var sum = acc.sum()
                while i < spatial { sum += plane[i]; i += 1 }
                y[p] = sum * scale
            }
        }
    }
    /// dx [planes, spatial] (overwritten) = dy / spatial broadcast over each plane.
    /// Of `y[p] = Σ x[p, :] / spatial`: every x of the plane weighs 1 / spatial.
    public static func backward(dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, planes: Int, spatial: Int,
                                threads: Int) {
        let scale = 1 / Float(spatial)
        RunContext(threads: threads, scratch: nil).parallelFor(planes, minChunk: max(1, 16384 / max(spatial, 1))) { range in
            for p in range { (dx + p * spatial).update(repeating: dy[p] * scale, count: spatial) }
        }
    }
}
