import CKernels
import Foundation
import OnnxIO

// Convolutions in NHWC, the layout the graph rewrite (LayoutNHWC.swift) gives every eligible 2-D Conv: channels
// are the contiguous axis, so a 1x1 convolution over a whole batch is one GEMM [N·H·W, C] x [C, M], a depthwise
// convolution reads whole channel vectors per tap, and a regular one unfolds pixels into rows of [kh·kw·C].

extension OpRegistry {
    /// Ops only the engine's own rewrites create (domain `ai.kizuki`); models may not use them.
    static let internalOps: [String: KernelFactory] = [
        "NhwcConv": { info in try NhwcConvKernel(info) },
        "NhwcGlobalAveragePool": { _ in NhwcGlobalAveragePoolKernel() },
        "NhwcMaxPool": { info in try NhwcMaxPoolKernel(info) },
    ]
    static let internalDomain = "ai.kizuki"
}

/// Sizes of one NHWC convolution (2-D, dilation 1).
struct NhwcConvGeometry: Equatable {
    var batch = 0, height = 0, width = 0, inC = 0
    var outC = 0, outH = 0, outW = 0
    var kH = 1, kW = 1, sH = 1, sW = 1, padTop = 0, padLeft = 0
    var depthwise = false

    var pointwise: Bool { kH == 1 && kW == 1 && sH == 1 && sW == 1 && padTop == 0 && padLeft == 0 && outH == height && outW == width }
    /// Rows of the unfolded input: one per output pixel of the whole batch.
    var rows: Int { batch * outH * outW }
    /// Columns of the unfolded input (the GEMM's K).
    var patch: Int { kH * kW * inC }
}

// X: [N, H, W, C] (NHWC), W: [M, C/group, kh, kw] (ONNX's own, constant), B: [M] (optional), R: [N, OH, OW, M]
// (optional residual) -> Y: [N, OH, OW, M] = post(clamp(conv(X, W) + B + R)), post a fused swish or hard-swish (or none),
// applied to each block of Y as soon as it is written. group is 1 or C (depthwise, M = C).
final class NhwcConvKernel: Kernel {
    let window: WindowAttributes
    let group: Int
    let lo: Float, hi: Float
    let post: Activation
    /// Weights in the order the paths read them, made once from the constant W at plan time: GEMM paths
    /// [kh·kw·C, M] (row (i·kw + j)·C + c) packed for kz_gemm_nhwc; depthwise [kh·kw, C].
    private var packed: [Float] = []
    private var packedFrom: UnsafeMutableRawPointer?
    private var geometries: [(x: [Int], w: [Int], g: NhwcConvGeometry)] = []

    init(_ info: NodeInfo) throws {
        window = try WindowAttributes(info)
        group = try info.int("group", 1)
        lo = try info.float(FusedAttributes.clipMin, -.infinity)
        hi = try info.float(FusedAttributes.clipMax, .infinity)
        switch try info.string(FusedAttributes.activation, "") {
        case "": post = .none
        case "swish": post = .swish
        case "hardswish": post = .hardSwish
        case let other: throw KernelError("NhwcConv has no fused activation '\(other)'")
        }
        guard window.autoPad == .notSet, (window.dilations ?? [1, 1]).allSatisfy({ $0 == 1 }) else {
            throw KernelError("NhwcConv takes explicit pads and no dilation")
        }
    }

    func geometry(x: [Int], w: [Int]) throws -> NhwcConvGeometry {
        if let known = geometries.first(where: { $0.x == x && $0.w == w }) { return known.g }
        guard x.count == 4, w.count == 4 else { throw KernelError("NhwcConv needs a 4-D input and 4-D weights, got \(x) and \(w)") }
        var g = NhwcConvGeometry()
        (g.batch, g.height, g.width, g.inC) = (x[0], x[1], x[2], x[3])
        g.outC = w[0]
        g.depthwise = group > 1
        guard group == 1 || (group == g.inC && w[0] == g.inC && w[1] == 1) else {
            throw KernelError("NhwcConv supports group 1 or depthwise, got group \(group) for weights \(w) and \(g.inC) channels")
        }
        guard group > 1 || w[1] == g.inC else { throw KernelError("weights \(w) expect \(w[1]) channels, the input has \(g.inC)") }
        if let k = window.kernelShape, k != [w[2], w[3]] { throw KernelError("kernel_shape \(k) does not match the weights' \([w[2], w[3]])") }
        let win = try window.resolve(input: [g.height, g.width], kernel: [w[2], w[3]])
        (g.kH, g.kW) = (w[2], w[3])
        (g.sH, g.sW) = (win.strides[0], win.strides[1])
        (g.padTop, g.padLeft) = (win.padBegin[0], win.padBegin[1])
        (g.outH, g.outW) = (win.output[0], win.output[1])
        // Every size the paths multiply out (rows·patch for the unfold, rows·outC for the output) fits.
        _ = try checkedProduct([g.batch, g.outH, g.outW, g.kH, g.kW, max(g.inC, g.outC), 4], "NhwcConv unfolded input")
        geometries.append((x, w, g))
        return g
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0), w = try inputs.spec(1)
        guard x.dtype == .float, w.dtype == .float, let wc = w.constant else {
            throw KernelError("NhwcConv needs float32 input and constant float32 weights", unsupported: true)
        }
        let g = try geometry(x: x.shape, w: w.shape)
        let out = [g.batch, g.outH, g.outW, g.outC]
        if let b = inputs.optional(2) {
            guard b.dtype == .float, b.shape == [g.outC] else { throw KernelError("bias must be float32 [\(g.outC)], got \(b.dtype) \(b.shape)") }
        }
        if let r = inputs.optional(3) {
            guard r.dtype == .float else { throw KernelError("the residual must be float32, got \(r.dtype)") }
            guard try broadcastShape(out, r.shape) == out else {
                throw KernelError("the residual \(r.shape) does not broadcast to the convolution's output \(out)")
            }
        }
        if packedFrom != wc.storage.pointer { pack(wc.ref.floats, g) ; packedFrom = wc.storage.pointer }
        return [ValueSpec(.float, out)]
    }

    /// W [M, C/group, kh, kw] → the paths' order (see `packed`).
    private func pack(_ w: UnsafePointer<Float>, _ g: NhwcConvGeometry) {
        let taps = g.kH * g.kW
        if g.depthwise {
            packed = [Float](repeating: 0, count: taps * g.inC)
            for c in 0..<g.inC { for t in 0..<taps { packed[t * g.inC + c] = w[c * taps + t] } }
        } else {
            var rows = [Float](repeating: 0, count: g.patch * g.outC)  // [kh·kw·C, M]
            for m in 0..<g.outC { for c in 0..<g.inC { for t in 0..<taps {
                rows[(t * g.inC + c) * g.outC + m] = w[(m * g.inC + c) * taps + t]
            } } }
            packed = nhwcPackGemmWeights(rows, k: g.patch, m: g.outC)
        }
    }

    /// Rows of the unfolded input one thread builds at a time (regular convolutions): about 64 KiB of them,
    /// so they stay in L2 between the unfold and the GEMM, and never fewer than 64 (a GEMM call has a fixed cost).
    static func unfoldRows(_ g: NhwcConvGeometry) -> Int { max(120, 16384 / max(g.patch, 1)) }

    func scratchBytes(inputs: [ValueSpec?], outputs: [ValueSpec]) throws -> Int {
        guard let x = inputs[0], let w = inputs[1] else { return 0 }
        let g = try geometry(x: x.shape, w: w.shape)
        guard !g.depthwise && !g.pointwise else { return 0 }
        // One unfold buffer per chunk that may run at once (see RunContext.maxChunks).
        return try checkedProduct([NhwcConvKernel.unfoldRows(g), g.patch, 4, ThreadPool.shared.workerCount + 1], "NhwcConv scratch")
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0), y = outputs[0]
        let g = try geometry(x: x.shape, w: inputs.at(1).shape)
        if g.rows == 0 || g.outC == 0 { return }
        let bias = inputs.count > 2 ? inputs[2]?.floats : nil
        var residual: UnsafePointer<Float>?
        if inputs.count > 3, let r = inputs[3] {
            if r.shape == y.shape { residual = UnsafePointer(r.floats) } else {
                // A residual that broadcasts (never from the rewrite's own graphs): convolve, then add it.
                try convolve(g, x.floats, bias: bias, residual: nil, lo: -.infinity, hi: .infinity, post: .none, y.floats, context)
                try broadcastBinary(y, r, y, context, VectorAdd.self, Float.self)
                if lo > -.infinity || hi < .infinity { clampInPlace(y.floats, y.count, lo, hi, context) }
                if post != .none {
                    context.parallelFor(y.count, minChunk: 1 << 14) { range in post.apply(y.floats + range.lowerBound, count: range.count) }
                }
                return
            }
        }
        try convolve(g, x.floats, bias: bias, residual: residual, lo: lo, hi: hi, post: post, y.floats, context)
    }

    private func convolve(_ g: NhwcConvGeometry, _ x: UnsafePointer<Float>, bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?,
                          lo: Float, hi: Float, post: Activation, _ y: UnsafeMutablePointer<Float>, _ context: RunContext) throws {
        try packed.withUnsafeBufferPointer { wp in
            let w = wp.baseAddress!
            if g.depthwise {
                // Work items: (image, block of output rows).
                let blocks = max(1, min(g.outH, (context.threads * 4 + g.batch - 1) / max(g.batch, 1)))
                context.parallelFor(g.batch * blocks) { range in
                    for item in range {
                        let n = item / blocks, b = item % blocks
                        let oy0 = g.outH * b / blocks, oy1 = g.outH * (b + 1) / blocks
                        let image = y + n * g.outH * g.outW * g.outC
                        nhwcDepthwise(x + n * g.height * g.width * g.inC, g, w, bias, image, oy0, oy1, lo, hi)
                        if post != .none { post.apply(image + oy0 * g.outW * g.outC, count: (oy1 - oy0) * g.outW * g.outC) }
                    }
                }
            } else if g.pointwise {
                // One GEMM over every pixel of the batch.
                nhwcGemm(x, ldx: g.inC, packed: w, k: g.inC, m: g.outC, bias: bias, residual: residual, y, rows: g.rows, lo: lo, hi: hi,
                         post: post, context: context)
            } else {
                guard let scratch = context.scratch?.assumingMemoryBound(to: Float.self) else {
                    throw KernelError("NhwcConv was planned without scratch memory")
                }
                let chunk = NhwcConvKernel.unfoldRows(g)
                if g.rows <= chunk && context.maxChunks > 1 {
                    // One unfold buffer holds every row (late layers at a small batch: 7x7 pixels, K up to 4608): unfold
                    // once, then split the GEMM across threads (by 16-column panels when rows are this few).
                    nhwcUnfold(x, g, rows: 0..<g.rows, into: scratch)
                    nhwcGemm(scratch, ldx: g.patch, packed: w, k: g.patch, m: g.outC, bias: bias, residual: residual, y, rows: g.rows,
                             lo: lo, hi: hi, post: post, context: context)
                    return
                }
                context.parallelChunks((g.rows + chunk - 1) / chunk) { slot, range in
                    let columns = scratch + slot * chunk * g.patch
                    for c in range {
                        let r0 = c * chunk, r1 = min(g.rows, r0 + chunk)
                        nhwcUnfold(x, g, rows: r0..<r1, into: columns)
                        kz_gemm_nhwc(columns, g.patch, w, Int32(g.patch), Int32(g.outC), bias, residual.map { $0 + r0 * g.outC }, g.outC,
                                     y + r0 * g.outC, g.outC, r1 - r0, lo, hi)
                        if post != .none { post.apply(y + r0 * g.outC, count: (r1 - r0) * g.outC) }
                    }
                }
            }
        }
    }

    private func clampInPlace(_ p: UnsafeMutablePointer<Float>, _ count: Int, _ lo: Float, _ hi: Float, _ context: RunContext) {
        context.parallelFor(count, minChunk: 1 << 14) { range in
            for i in range { p[i] = Swift.min(Swift.max(p[i], lo), hi) }
        }
    }
}

/// Output pixels `rows` of the batch unfolded into rows of [kh, kw, C] (zeros where a tap falls in the padding).
/// Works along runs of one output row. For one kernel row ky, the kw·C values of a pixel whose window lies inside the
/// input are one contiguous piece of the input row (NHWC), copied at once; only the border pixels of a run go tap by
/// tap (the ResNet stem, 7x7 with C = 3: copies of 12 bytes per tap cost more than its GEMM).
func nhwcUnfold(_ x: UnsafePointer<Float>, _ g: NhwcConvGeometry, rows: Range<Int>, into out: UnsafeMutablePointer<Float>) {
    let c = g.inC, plane = g.outH * g.outW, span = g.kW * c
    // Output columns whose whole window row is inside the input: 0 <= ox·sW − padLeft and ox·sW − padLeft + kW <= width.
    let inner0 = (g.padLeft + g.sW - 1) / g.sW
    let inner1 = g.width - g.kW + g.padLeft < 0 ? 0 : (g.width - g.kW + g.padLeft) / g.sW + 1
    var r = rows.lowerBound
    while r < rows.upperBound {
        // The run: pixels ox0..<ox1 of output row oy of image n.
        let n = r / plane, oy = (r % plane) / g.outW, ox0 = r % g.outW
        let ox1 = min(g.outW, ox0 + (rows.upperBound - r))
        let base = out + (r - rows.lowerBound) * g.patch
        let lo = min(max(ox0, inner0), ox1), hi = max(lo, min(ox1, inner1))
        for ky in 0..<g.kH {
            let iy = oy * g.sH - g.padTop + ky
            let row = base + ky * span
            if iy < 0 || iy >= g.height {
                for ox in ox0..<ox1 { (row + (ox - ox0) * g.patch).update(repeating: 0, count: span) }
                continue
            }
            let line = x + (n * g.height + iy) * g.width * c
            for ox in lo..<hi { copyFloats(row + (ox - ox0) * g.patch, line + (ox * g.sW - g.padLeft) * c, span) }
            // Border pixels, tap by tap.
            func border(_ ox: Int) {
                let dst = row + (ox - ox0) * g.patch
                for kx in 0..<g.kW {
                    let ix = ox * g.sW - g.padLeft + kx
                    if ix < 0 || ix >= g.width { (dst + kx * c).update(repeating: 0, count: c) } else { copyFloats(dst + kx * c, line + ix * c, c) }
                }
            }
            for ox in ox0..<lo { border(ox) }
            for ox in hi..<ox1 { border(ox) }
        }
        r += ox1 - ox0
    }
}

/// dst[0..<n] = src[0..<n]: short pieces eight lanes at a time (memcpy's call costs as much as they do), long ones by memcpy.
@inline(__always)
private func copyFloats(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ n: Int) {
    if n >= 32 { dst.update(from: src, count: n); return }
    var i = 0
    while i + 8 <= n {
        UnsafeMutableRawPointer(dst + i).storeBytes(of: UnsafeRawPointer(src + i).loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
        i += 8
    }
    while i < n { dst[i] = src[i]; i += 1 }
}
