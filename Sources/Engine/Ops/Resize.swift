import Foundation
import OnnxIO

extension OpRegistry {
    static let resizeOps: [String: KernelFactory] = [
        "Resize": { info in try ResizeKernel(info, upsample: false) },
        "Upsample": { info in try ResizeKernel(info, upsample: true) },
    ]
}

// Resize and Upsample. Every resized axis gets a table of taps (source index and weight per output
// coordinate), computed once per shape exactly as the ONNX reference does. Nearest mode then gathers
// (any element type), repeating identical rows with memcpy; linear and cubic run one separable 1-D pass
// per resized axis, innermost axis first (the reference's nesting order).
//
// Resize:   X: [D1..Dr], roi: [2r] or [2·|axes|], scales: [r] or [|axes|], sizes: [r] or [|axes|] -> Y: [O1..Or]
// Upsample: X: [D1..Dr], scales (attribute before opset 9, input 1 after) -> Y: [floor(Di·scale_i)]
final class ResizeKernel: Kernel {
    enum Mode { case nearest, linear, cubic }
    enum Coordinates { case halfPixel, halfPixelSymmetric, pytorchHalfPixel, alignCorners, asymmetric, tfHalfPixelForNN, tfCropAndResize }
    /// `simple` is the pre-opset-11 rule (floor when upsampling, ceil when downsampling).
    enum NearestMode { case roundPreferFloor, roundPreferCeil, floor, ceil, simple }
    enum AspectPolicy { case stretch, notLarger, notSmaller }

    let isUpsample: Bool
    let opset: Int
    let mode: Mode
    let coordinates: Coordinates
    let nearestMode: NearestMode
    let cubicA: Double
    let excludeOutside: Bool
    let extrapolationValue: Float
    let antialias: Bool
    let axesAttribute: [Int]?
    let aspectPolicy: AspectPolicy
    let scalesAttribute: [Float]?

    /// Taps of one resized axis: for output coordinate o, `count` source indices and weights at o·count.
    struct AxisTaps {
        var axis: Int
        var inLength: Int
        var outLength: Int
        var count: Int
        var index: [Int]
        var weight: [Float]
        /// tf_crop_and_resize: output coordinates outside the input take the extrapolation value.
        var extrapolate: [Bool]
        /// Nearest: the one source index per output coordinate, -1 where extrapolated.
        var nearest: [Int]
    }

    struct Tables {
        var outputShape: [Int]
        /// Only axes whose mapping is not the identity.
        var axes: [AxisTaps]
        var scratchFloats: Int
    }

    private var cache: [[Double]: Tables] = [:]
    private var maxScratchFloats = 0

    init(_ info: NodeInfo, upsample: Bool) throws {
        isUpsample = upsample
        opset = info.opset
        switch try info.string("mode", "nearest") {
        case "nearest": mode = .nearest
        case "linear", "bilinear": mode = .linear
        case "cubic" where !upsample: mode = .cubic
        case let m: throw info.unsupported("mode '\(m)'")
        }
        let legacy = upsample || info.opset < 11
        if legacy {
            coordinates = .asymmetric
            nearestMode = .simple
        } else {
            switch try info.string("coordinate_transformation_mode", "half_pixel") {
            case "half_pixel": coordinates = .halfPixel
            case "half_pixel_symmetric": coordinates = .halfPixelSymmetric
            case "pytorch_half_pixel": coordinates = .pytorchHalfPixel
            case "align_corners": coordinates = .alignCorners
            case "asymmetric": coordinates = .asymmetric
            case "tf_half_pixel_for_nn": coordinates = .tfHalfPixelForNN
            case "tf_crop_and_resize": coordinates = .tfCropAndResize
            case let c: throw KernelError("unknown coordinate_transformation_mode '\(c)'")
            }
            switch try info.string("nearest_mode", "round_prefer_floor") {
            case "round_prefer_floor": nearestMode = .roundPreferFloor
            case "round_prefer_ceil": nearestMode = .roundPreferCeil
            case "floor": nearestMode = .floor
            case "ceil": nearestMode = .ceil
            case let n: throw KernelError("unknown nearest_mode '\(n)'")
            }
        }
        cubicA = Double(try info.float("cubic_coeff_a", -0.75))
        excludeOutside = try info.int("exclude_outside", 0) != 0
        extrapolationValue = try info.float("extrapolation_value", 0)
        antialias = try info.int("antialias", 0) != 0
        if antialias && mode == .nearest { throw info.unsupported("antialias with mode 'nearest'") }
        axesAttribute = try info.ints("axes")
        switch try info.string("keep_aspect_ratio_policy", "stretch") {
        case "stretch": aspectPolicy = .stretch
        case "not_larger": aspectPolicy = .notLarger
        case "not_smaller": aspectPolicy = .notSmaller
        case let p: throw KernelError("unknown keep_aspect_ratio_policy '\(p)'")
        }
        if upsample && info.opset < 9 {
            guard let s = try info.floats("scales") else { throw KernelError("Upsample needs the 'scales' attribute before opset 9") }
            scalesAttribute = s
        } else {
            scalesAttribute = nil
        }
    }

    // MARK: - Planning

    /// Input slots of roi, scales and sizes for this op and opset (nil = absent).
    private var slots: (roi: Int?, scales: Int?, sizes: Int?) {
        if isUpsample { return (nil, scalesAttribute == nil ? 1 : nil, nil) }
        if opset < 11 { return (nil, 1, nil) }
        return (1, 2, 3)
    }

    /// The cache key: input shape, then roi, scales and sizes values, separated by markers.
    private func key(shape: [Int], roi: [Double]?, scales: [Double]?, sizes: [Int]?) -> [Double] {
        shape.map(Double.init) + [-1] + (roi ?? []) + [-2] + (scales ?? []) + [-3] + (sizes ?? []).map(Double.init)
    }

    /// `checkSize` sees the output shape before any table of its size is built (the plan's memory budget).
    private func tables(shape: [Int], roi: [Double]?, scales: [Double]?, sizes: [Int]?,
                        checkSize: ([Int]) throws -> Void) throws -> Tables {
        let k = key(shape: shape, roi: roi, scales: scales, sizes: sizes)
        if let t = cache[k] { return t }
        let t = try makeTables(shape: shape, roi: roi, scales: scales, sizes: sizes, checkSize: checkSize)
        cache[k] = t
        maxScratchFloats = max(maxScratchFloats, t.scratchFloats)
        return t
    }

    private func makeTables(shape: [Int], roi roiIn: [Double]?, scales scalesIn: [Double]?, sizes sizesIn: [Int]?,
                            checkSize: ([Int]) throws -> Void) throws -> Tables {
        let r = shape.count
        guard r >= 1 else { throw KernelError("\(isUpsample ? "Upsample" : "Resize") input must have rank ≥ 1") }
        let axes = try (axesAttribute ?? Array(0..<r)).map { try normalizeAxis($0, rank: r) }
        guard Set(axes).count == axes.count else { throw KernelError("axes \(axesAttribute!) repeat an axis") }

        var scale = [Double](repeating: 1, count: r)
        var output = shape
        if let sizes = sizesIn {
            guard sizes.count == axes.count else { throw KernelError("sizes has \(sizes.count) values for \(axes.count) axes") }
            guard sizes.allSatisfy({ $0 >= 0 }) else { throw KernelError("sizes \(sizes) must not be negative") }
            for (i, a) in axes.enumerated() { output[a] = sizes[i]; scale[a] = Double(sizes[i]) / Double(shape[a]) }
            if aspectPolicy != .stretch {
                let chosen = axes.map { scale[$0] }
                let s = aspectPolicy == .notLarger ? chosen.min()! : chosen.max()!
                for a in axes { scale[a] = s; output[a] = try checkedInt(s * Double(shape[a]) + 0.5, "output size of axis \(a)") }
            }
        } else if let scales = scalesIn {
            guard scales.count == axes.count else { throw KernelError("scales has \(scales.count) values for \(axes.count) axes") }
            guard scales.allSatisfy({ $0 > 0 }) else { throw KernelError("scales \(scales) must be positive") }
            for (i, a) in axes.enumerated() {
                scale[a] = scales[i]
                output[a] = try checkedInt(scales[i] * Double(shape[a]), "output size of axis \(a) (scale \(scales[i]))")
            }
        } else {
            throw KernelError("Resize needs either scales or sizes")
        }

        var roiStart = [Double](repeating: 0, count: r), roiEnd = [Double](repeating: 1, count: r)
        if coordinates == .tfCropAndResize {
            guard let roi = roiIn else { throw KernelError("tf_crop_and_resize needs roi") }
            guard roi.count == 2 * axes.count else { throw KernelError("roi has \(roi.count) values, expected \(2 * axes.count)") }
            for (i, a) in axes.enumerated() { roiStart[a] = roi[i]; roiEnd[a] = roi[axes.count + i] }
            guard roi.allSatisfy(\.isFinite) else { throw KernelError("roi \(roi) must be finite") }
        }
        // The tables below are as long as the output's axes: check its size before building them.
        try checkSize(output)

        for a in 0..<r where shape[a] == 0 && output[a] > 0 {
            throw KernelError("cannot resize an empty axis \(a) to \(output[a]) elements")
        }
        var taps: [AxisTaps] = []
        for a in 0..<r where shape[a] > 0 && output[a] > 0 {
            // An axis's taps (index 8 bytes + weight 4 per tap, nearest index 8 + flag 1 per output) can be far
            // larger than the output when the filter is wide (antialiased downscaling): they count against the budget too.
            let n = mode == .nearest ? 1 : try coefficients(0.5, scale: scale[a]).count
            try checkSize([output[a], try checkedAdd(checkedMul(3, n, "Resize taps"), 3, "Resize taps")])
            let t = try axisTaps(axis: a, inLength: shape[a], outLength: output[a], scale: scale[a], roiStart: roiStart[a], roiEnd: roiEnd[a])
            if !isIdentity(t) { taps.append(t) }
        }
        if output.contains(0) { taps = [] }

        // Separable passes go innermost axis first; all but the last write to scratch.
        var scratch = 0
        if mode != .nearest {
            var current = shape
            for t in taps.reversed().dropLast() {
                current[t.axis] = t.outLength
                // A pass's result can be larger than both input and output (one axis grown before another shrinks).
                try checkSize(current)
                scratch = max(scratch, current.reduce(1, *))
            }
        }
        return Tables(outputShape: output, axes: taps, scratchFloats: scratch == 0 ? 0 : try checkedMul(scratch + 16, 2, "Resize scratch"))
    }

    private func isIdentity(_ t: AxisTaps) -> Bool {
        guard t.inLength == t.outLength, !t.extrapolate.contains(true) else { return false }
        for o in 0..<t.outLength {
            for j in 0..<t.count {
                let w = t.weight[o * t.count + j]
                if w != 0 && (w != 1 || t.index[o * t.count + j] != o) { return false }
            }
        }
        return true
    }

    /// The ONNX reference's 1-D interpolation, turned into taps: coordinate transform, coefficients for
    /// the fractional part, then the n nearest source indices (window clamped to the edge-padded input).
    private func axisTaps(axis: Int, inLength: Int, outLength: Int, scale: Double, roiStart: Double, roiEnd: Double) throws -> AxisTaps {
        let inL = Double(inLength)
        let outWidth = scale * inL  // the reference uses the unrounded output length
        var t = AxisTaps(axis: axis, inLength: inLength, outLength: outLength, count: 0, index: [], weight: [],
                         extrapolate: [Bool](repeating: false, count: outLength), nearest: [Int](repeating: 0, count: outLength))
        for o in 0..<outLength {
            let x = Double(o)
            var xo: Double
            switch coordinates {
            case .halfPixel: xo = (x + 0.5) / scale - 0.5
            case .halfPixelSymmetric:
                let adjustment = Double(outLength) / outWidth
                let center = inL / 2
                xo = center * (1 - adjustment) + (x + 0.5) / scale - 0.5
            // The spec and onnxruntime: 0 when the (rounded) output length is 1. The ONNX reference
            // implementation tests the unrounded length instead and differs when scale·in is not 1.
            case .pytorchHalfPixel: xo = outLength == 1 ? 0 : (x + 0.5) / scale - 0.5
            case .alignCorners: xo = outWidth == 1 ? 0 : x * (inL - 1) / (outWidth - 1)
            case .asymmetric: xo = x / scale
            case .tfHalfPixelForNN: xo = (x + 0.5) / scale
            case .tfCropAndResize:
                xo = outWidth == 1 ? (roiEnd - roiStart) * (inL - 1) / 2 : x * (roiEnd - roiStart) * (inL - 1) / (outWidth - 1)
                xo += roiStart * (inL - 1)
                if xo < 0 || xo > inL - 1 { t.extrapolate[o] = true }
            }
            guard xo.isFinite else { throw KernelError("axis \(axis): output coordinate \(o) maps to \(xo)") }
            // Beyond ±2^52 doubles are whole numbers and every window lies far outside the input (axes are at most
            // 2^48 long), so clamping there changes no tap and keeps the conversions to Int below in range.
            xo = min(max(xo, -0x1p52), 0x1p52)

            if mode == .nearest && nearestMode == .simple {
                let i = scale < 1 ? Int(xo.rounded(.up)) : Int(xo.rounded(.down))
                t.nearest[o] = t.extrapolate[o] ? -1 : min(max(i, 0), inLength - 1)
                continue
            }

            let xi = xo.rounded(.down)
            let ratio = xo == xi ? 1.0 : xo - xi
            let coeffs = try coefficients(ratio, scale: scale)
            let n = coeffs.count
            if t.count == 0 { t.count = n }
            // The window of the n nearest indices (lower preferred), kept inside the input padded by ceil(n/2).
            let base = Int(xi) - (ratio == 1 ? 1 : 0)
            let pad = (n + 1) / 2
            let start = min(max(base - n / 2 + 1, -pad), inLength + pad - n)
            var w = coeffs
            if excludeOutside {
                for j in 0..<n where start + j < 0 || start + j >= inLength { w[j] = 0 }
                let sum = w.reduce(0, +)
                if sum != 0 { w = w.map { $0 / sum } }
            }
            if mode == .nearest {
                let j = w[0] != 0 ? 0 : 1
                t.nearest[o] = t.extrapolate[o] ? -1 : min(max(start + j, 0), inLength - 1)
            }
            for j in 0..<n {
                t.index.append(min(max(start + j, 0), inLength - 1))
                t.weight.append(Float(w[j]))
            }
        }
        if mode == .nearest {
            // Nearest is described by `nearest` alone; one tap of weight 1 keeps isIdentity simple.
            t.count = 1
            t.index = t.nearest.map { max($0, 0) }
            t.weight = [Float](repeating: 1, count: outLength)
        }
        return t
    }

    private func coefficients(_ ratio: Double, scale: Double) throws -> [Double] {
        switch mode {
        case .nearest:
            if ratio == 1 { return [0, 1] }
            switch nearestMode {
            case .roundPreferFloor: return ratio <= 0.5 ? [1, 0] : [0, 1]
            case .roundPreferCeil: return ratio < 0.5 ? [1, 0] : [0, 1]
            case .floor: return [1, 0]
            case .ceil, .simple: return [0, 1]
            }
        case .linear:
            if !antialias { return [1 - ratio, ratio] }
            let s = min(scale, 1)
            let start = try checkedInt((-1 / s).rounded(.down), "antialias footprint (scale \(scale))") + 1
            let footprint = 2 - 2 * start
            let c = (0..<footprint).map { j -> Double in
                let arg = (Double(start + j) - ratio) * s
                return min(max(1 - abs(arg), 0), 1)
            }
            let sum = c.reduce(0, +)
            return c.map { $0 / sum }
        case .cubic:
            let a = cubicA
            if !antialias {
                let r = ratio, r1 = r + 1, q = 1 - r, q1 = q + 1
                return [((a * r1 - 5 * a) * r1 + 8 * a) * r1 - 4 * a,
                        ((a + 2) * r - (a + 3)) * r * r + 1,
                        ((a + 2) * q - (a + 3)) * q * q + 1,
                        ((a * q1 - 5 * a) * q1 + 8 * a) * q1 - 4 * a]
            }
            let s = min(scale, 1)
            let iStart = try checkedInt((-2 / s).rounded(.down), "antialias footprint (scale \(scale))") + 1
            let iEnd = 2 - iStart
            let c = (iStart..<iEnd).map { i -> Double in
                let x = abs(s * (Double(i) - ratio))
                if x <= 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
                if x < 2 { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
                return 0
            }
            let sum = c.reduce(0, +)
            return c.map { $0 / sum }
        }
    }

    /// roi, scales and sizes: empty tensors count as absent.
    private func parameters(_ value: (Int) throws -> HostTensor?) throws -> (roi: [Double]?, scales: [Double]?, sizes: [Int]?) {
        let s = slots
        func nonEmpty<T>(_ v: [T]?) -> [T]? { (v?.isEmpty ?? true) ? nil : v }
        let roi = try s.roi.flatMap { try value($0) }.map { try $0.doubles() }
        var scales = try s.scales.flatMap { try value($0) }.map { try $0.doubles() }
        if let a = scalesAttribute { scales = a.map(Double.init) }
        let sizes = try s.sizes.flatMap { try value($0) }.map { try $0.integers() }
        return (nonEmpty(roi), nonEmpty(scales), nonEmpty(sizes))
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0)
        guard x.dtype.elementSize > 0 else { throw KernelError("unsupported element type \(x.dtype)", unsupported: true) }
        if mode != .nearest && x.dtype != .float {
            throw KernelError("\(mode) resize supports float32 only, got \(x.dtype)", unsupported: true)
        }
        if mode == .nearest && coordinates == .tfCropAndResize && x.dtype != .float {
            throw KernelError("tf_crop_and_resize extrapolation supports float32 only, got \(x.dtype)", unsupported: true)
        }
        let p = try parameters { i in try inputs.optionalValue(i) }
        if let sizes = p.sizes, p.scales != nil, !sizes.isEmpty {
            throw KernelError("only one of scales and sizes may be given")
        }
        let t = try tables(shape: x.shape, roi: p.roi, scales: p.scales, sizes: p.sizes) { try inputs.checkSize($0, x.dtype) }
        return [ValueSpec(x.dtype, t.outputShape)]
    }

    func scratchBytes(inputs: [ValueSpec?], outputs: [ValueSpec]) throws -> Int {
        // The tables (and so the pass sizes) were made in infer; any of them fits in the largest.
        mode == .nearest ? 0 : try checkedMul(maxScratchFloats, 4, "Resize scratch")
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0), y = outputs[0]
        let p = try parameters { i in
            guard i < inputs.count, let ref = inputs[i] else { return nil }
            return try ResizeKernel.host(ref)
        }
        // Planned in infer (checked there); the same parameters find those tables.
        let t = try tables(shape: x.shape, roi: p.roi, scales: p.scales, sizes: p.sizes) { _ in }
        if y.count == 0 { return }
        if t.axes.isEmpty {
            y.data.copyMemory(from: x.data, byteCount: y.byteCount)
            return
        }
        if mode == .nearest {
            nearest(x, y, t, context)
        } else {
            // One pass writes straight to Y; more need the planned scratch.
            let scratch = context.scratch?.assumingMemoryBound(to: Float.self)
            guard t.scratchFloats == 0 || (scratch != nil && maxScratchFloats >= t.scratchFloats) else {
                throw KernelError("Resize was planned without enough scratch memory")
            }
            separable(x.floats, y.floats, shape: x.shape, t, scratch: scratch, context)
        }
    }

    /// A small input read at run time (roi, scales, sizes) as a host tensor.
    private static func host(_ ref: TensorRef) throws -> HostTensor {
        let h = try HostTensor(dtype: ref.dtype, shape: ref.shape)
        h.storage.pointer.copyMemory(from: ref.data, byteCount: ref.byteCount)
        return h
    }

    // MARK: - Nearest

    private func nearest(_ x: TensorRef, _ y: TensorRef, _ t: Tables, _ context: RunContext) {
        let r = x.shape.count
        let es = x.dtype.elementSize
        // Source index per output coordinate for every axis (identity on axes not resized).
        var map: [[Int]] = x.shape.map { Array(0..<$0) }
        for a in t.axes { map[a.axis] = a.nearest }
        var inStride = [Int](repeating: 1, count: r), outBlock = [Int](repeating: 1, count: r)
        for i in stride(from: r - 2, through: 0, by: -1) {
            inStride[i] = inStride[i + 1] * x.shape[i + 1]
            outBlock[i] = outBlock[i + 1] * t.outputShape[i + 1]
        }
        // Leading axes that are not resized form independent blocks, run in parallel.
        let firstResized = t.axes.map(\.axis).min()!
        let outer = x.shape[0..<firstResized].reduce(1, *)
        let inBlock = firstResized == 0 ? x.count : inStride[firstResized - 1]
        let outBlockSize = firstResized == 0 ? y.count : outBlock[firstResized - 1]
        let ev = extrapolationValue
        let src = UnsafeRawPointer(x.data), dst = y.data
        let outShape = t.outputShape
        map.withUnsafeBufferPointer { maps in
            inStride.withUnsafeBufferPointer { inStrides in
                outBlock.withUnsafeBufferPointer { outBlocks in
                    context.parallelFor(outer, minChunk: max(1, 16384 / max(outBlockSize, 1))) { range in
                        for b in range {
                            ResizeKernel.fillNearest(level: firstResized, rank: r, src: src + b * inBlock * es, dst: dst + b * outBlockSize * es,
                                                     es: es, maps: maps, inStride: inStrides, outBlock: outBlocks, outShape: outShape, ev: ev)
                        }
                    }
                }
            }
        }
    }

    /// Fills output axes level..<rank; rows whose source equals the previous row's are copied from it.
    private static func fillNearest(level: Int, rank: Int, src: UnsafeRawPointer, dst: UnsafeMutableRawPointer, es: Int,
                                    maps: UnsafeBufferPointer<[Int]>, inStride: UnsafeBufferPointer<Int>,
                                    outBlock: UnsafeBufferPointer<Int>, outShape: [Int], ev: Float) {
        maps[level].withUnsafeBufferPointer { m in
            let n = outShape[level]
            if level == rank - 1 {
                if es == 4 {
                    let s = src.assumingMemoryBound(to: UInt32.self), d = dst.assumingMemoryBound(to: UInt32.self)
                    let evBits = ev.bitPattern
                    for o in 0..<n { d[o] = m[o] < 0 ? evBits : s[m[o]] }
                } else {
                    for o in 0..<n {
                        if m[o] < 0 {
                            // Extrapolation is float-only (checked at plan time).
                            dst.storeBytes(of: ev, toByteOffset: o * es, as: Float.self)
                        } else {
                            (dst + o * es).copyMemory(from: src + m[o] * es, byteCount: es)
                        }
                    }
                }
                return
            }
            let block = outBlock[level] * es
            for o in 0..<n {
                let d = dst + o * block
                if m[o] < 0 {
                    d.assumingMemoryBound(to: Float.self).update(repeating: ev, count: outBlock[level])
                } else if o > 0 && m[o] == m[o - 1] {
                    d.copyMemory(from: d - block, byteCount: block)
                } else {
                    fillNearest(level: level + 1, rank: rank, src: src + m[o] * inStride[level] * es, dst: d, es: es,
                                maps: maps, inStride: inStride, outBlock: outBlock, outShape: outShape, ev: ev)
                }
            }
        }
    }

    // MARK: - Linear and cubic

    private func separable(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, shape: [Int], _ t: Tables,
                           scratch: UnsafeMutablePointer<Float>?, _ context: RunContext) {
        let half = t.scratchFloats / 2
        var current = shape
        var src = x
        let passes = Array(t.axes.reversed())
        for (i, a) in passes.enumerated() {
            let last = i == passes.count - 1
            let dst = last ? y : scratch! + (i % 2) * half
            let outer = current[0..<a.axis].reduce(1, *)
            let inner = current[(a.axis + 1)...].reduce(1, *)
            pass(src, dst, outer: outer, inner: inner, a, context)
            current[a.axis] = a.outLength
            src = UnsafePointer(dst)
        }
    }

    /// dst[b, o, :] = Σ_j w[o, j] · src[b, index[o, j], :] (or the extrapolation value).
    private func pass(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, outer: Int, inner: Int, _ a: AxisTaps,
                      _ context: RunContext) {
        let n = a.count, inL = a.inLength, outL = a.outLength
        let ev = extrapolationValue
        a.index.withUnsafeBufferPointer { index in
            a.weight.withUnsafeBufferPointer { weight in
                a.extrapolate.withUnsafeBufferPointer { extrapolate in
                    context.parallelFor(outer * outL, minChunk: max(1, 4096 / max(inner * n, 1))) { range in
                        for row in range {
                            let b = row / outL, o = row % outL
                            let out = dst + row * inner
                            if extrapolate[o] { out.update(repeating: ev, count: inner); continue }
                            let base = src + b * inL * inner
                            if inner == 1 {
                                var s: Float = 0
                                for j in 0..<n { s += weight[o * n + j] * base[index[o * n + j]] }
                                out[0] = s
                                continue
                            }
                            out.update(repeating: 0, count: inner)
                            for j in 0..<n {
                                let w = weight[o * n + j]
                                if w == 0 { continue }
                                let line = base + index[o * n + j] * inner
                                var i = 0
                                while i + 8 <= inner {
                                    var acc = UnsafeRawPointer(out + i).loadUnaligned(as: SIMD8<Float>.self)
                                    acc.addProduct(UnsafeRawPointer(line + i).loadUnaligned(as: SIMD8<Float>.self), w)
                                    UnsafeMutableRawPointer(out + i).storeBytes(of: acc, as: SIMD8<Float>.self)
                                    i += 8
                                }
                                while i < inner { out[i] += w * line[i]; i += 1 }
                            }
                        }
                    }
                }
            }
        }
    }
}

// MARK: - Training

/// Nearest upsampling by integer factors (Keras UpSampling2D): x [planes, height, width] →
/// y [planes, height · factorH, width · factorW], planes = batch · channels.
public enum UpsampleNearestTraining {
    /// y[p, i, j] = x[p, i / factorH, j / factorW]: each input row is widened once into the first of its
    /// factorH output rows, which is then copied to the others.
    public static func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, planes: Int, height: Int,
                               width: Int, factorH: Int, factorW: Int, threads: Int) {
        let outWidth = width * factorW, rows = planes * height
        RunContext(threads: threads, scratch: nil).parallelFor(rows, minChunk: max(1, 8192 / max(outWidth * factorH, 1))) { range in
            for row in range {
                let src = x + row * width, first = y + row * factorH * outWidth
                if factorW == 3 {
                    for j in 0..<width { let v = src[j]; first[3 * j] = v; first[3 * j + 1] = v; first[3 * j + 2] = v }
                } else {
                    for j in 0..<width { (first + j * factorW).update(repeating: src[j], count: factorW) }
                }
                for r in 1..<max(factorH, 1) { (first + r * outWidth).update(from: first, count: outWidth) }
            }
        }
    }

    /// dx [planes, height, width] (overwritten) = sum of dy over each factorH × factorW block.
    /// Of `y[p, i, j] = x[p, i / factorH, j / factorW]`: every output a value was copied to sends its gradient
    /// back to it. The factorH rows of a block are added first (16 lanes at a time), then each factorW run.
    public static func backward(dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, planes: Int, height: Int,
                                width: Int, factorH: Int, factorW: Int, threads: Int) {
        let outWidth = width * factorW, rows = planes * height
        RunContext(threads: threads, scratch: nil).parallelFor(rows, minChunk: max(1, 8192 / max(outWidth * factorH, 1))) { range in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: outWidth) { buffer in
                let rowSum = buffer.baseAddress!
                for row in range {
                    let block = dy + row * factorH * outWidth
                    var i = 0
                    while i + 16 <= outWidth {
                        var v = load16(block + i)
                        for r in 1..<max(factorH, 1) { v += load16(block + r * outWidth + i) }
                        store16(v, rowSum + i)
                        i += 16
                    }
                    while i < outWidth {
                        var v = block[i]
                        for r in 1..<max(factorH, 1) { v += block[r * outWidth + i] }
                        rowSum[i] = v
                        i += 1
                    }
                    let out = dx + row * width
                    if factorW == 3 {
                        for j in 0..<width { out[j] = rowSum[3 * j] + rowSum[3 * j + 1] + rowSum[3 * j + 2] }
                    } else {
                        for j in 0..<width {
                            var s = rowSum[j * factorW]
                            for k in 1..<max(factorW, 1) { s += rowSum[j * factorW + k] }
                            out[j] = s
                        }
                    }
                }
            }
        }
    }
}
