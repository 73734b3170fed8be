import CBLAS
import Foundation
import OnnxIO

extension OpRegistry {
    static let convOps: [String: KernelFactory] = [
        "Conv": { info in try ConvKernel(info) },
        "ConvTranspose": { info in try ConvTransposeKernel(info) },
    ]
}

/// An activation a Conv applies to its outputs right after the bias, while they are still in cache.
/// Self-contained on purpose: the graph optimiser maps Relu / Clip nodes onto it.
public enum FusedActivation: Equatable, Sendable {
    case none
    case relu
    case clip(min: Float, max: Float)

    /// The clamp bounds, or nil when values pass through.
    var bounds: (lo: Float, hi: Float)? {
        switch self {
        case .none: return nil
        case .relu: return (0, .infinity)
        case .clip(let lo, let hi): return (lo, hi)
        }
    }
}

/// Clamps every lane to [lo, hi]. Written with masks: the standard library's pointwiseMin/Max are
/// lane loops that make the compiler split the surrounding vector code into 4-wide halves.
@inline(__always)
func clamp8(_ v: SIMD8<Float>, _ lo: SIMD8<Float>, _ hi: SIMD8<Float>) -> SIMD8<Float> {
    var r = v
    r.replace(with: lo, where: r .< lo)
    r.replace(with: hi, where: r .> hi)
    return r
}

/// Bias plus activation on one run of `count` outputs of one channel (SIMD, in place).
@inline(__always)
func convEpilogue(_ p: UnsafeMutablePointer<Float>, _ count: Int, bias: Float, _ act: FusedActivation) {
    var i = 0
    let b8 = SIMD8<Float>(repeating: bias)
    let raw = UnsafeMutableRawPointer(p)
    if let bounds = act.bounds {
        let lo = bounds.lo, hi = bounds.hi
        let lo8 = SIMD8<Float>(repeating: lo), hi8 = SIMD8<Float>(repeating: hi)
        while i + 8 <= count {
            let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) + b8
            raw.storeBytes(of: clamp8(v, lo8, hi8), toByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        while i < count { p[i] = Swift.min(Swift.max(p[i] + bias, lo), hi); i += 1 }
    } else {
        if bias == 0 { return }
        while i + 8 <= count {
            let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) + b8
            raw.storeBytes(of: v, toByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        while i < count { p[i] += bias; i += 1 }
    }
}

/// Sizes of one convolution, always as 3-D spatial (D, H, W): 1-D and 2-D convs get leading 1s,
/// so one set of loops serves every rank.
struct ConvGeometry {
    var batch = 0, inC = 0, outC = 0, group = 1
    var inD = 1, inH = 1, inW = 1
    var kD = 1, kH = 1, kW = 1
    var oD = 1, oH = 1, oW = 1
    var sD = 1, sH = 1, sW = 1
    var dD = 1, dH = 1, dW = 1
    var pD = 0, pH = 0, pW = 0  // begin pads
    var outputShape: [Int] = []
    /// Threads of the session: each may need a scratch slot of its own.
    var threads = 1
    private(set) var path = Path.im2col
    /// Floats of scratch the chosen path needs (0 when it needs none).
    private(set) var scratchFloats = 0

    var inSpatial: Int { inD * inH * inW }
    var outSpatial: Int { oD * oH * oW }
    var kernelVolume: Int { kD * kH * kW }
    var inCg: Int { inC / group }
    var outCg: Int { outC / group }

    /// `x` and `w` have passed the planner's size checks; scratch sizes, which multiply dims of both
    /// with pads and strides, are computed with checked arithmetic.
    init(x: [Int], w: [Int], attributes a: WindowAttributes, group: Int, threads: Int) throws {
        let r = x.count - 2
        guard (1...3).contains(r) else { throw KernelError("Conv input must be 3-D, 4-D or 5-D (N, C, spatial...), got rank \(x.count)") }
        guard w.count == x.count else { throw KernelError("weights of rank \(w.count) do not match an input of rank \(x.count)") }
        let kernel = Array(w[2...])
        guard kernel.allSatisfy({ $0 >= 1 }) else { throw KernelError("the weights' spatial shape \(kernel) has an empty axis") }
        if let k = a.kernelShape, k != kernel {
            throw KernelError("kernel_shape \(k) does not match the weights' spatial shape \(kernel)")
        }
        guard group >= 1, x[1] % group == 0, w[0] % group == 0 else {
            throw KernelError("group \(group) must divide the input channels \(x[1]) and the output channels \(w[0])")
        }
        // With no channels at all `group` divides them whatever it is, so the product is checked.
        guard try checkedMul(w[1], group, "channels per group × groups") == x[1] else {
            throw KernelError("weights expect \(w[1]) channels per group × \(group) groups, the input has \(x[1]) channels")
        }
        let input = Array(x[2...])
        let win = try a.resolve(input: input, kernel: kernel)
        batch = x[0]; inC = x[1]; outC = w[0]; self.group = group
        // Right-align the spatial axes into (D, H, W).
        func pad3(_ v: [Int], _ fill: Int) -> [Int] { Array(repeating: fill, count: 3 - r) + v }
        let i3 = pad3(input, 1), k3 = pad3(kernel, 1), o3 = pad3(win.output, 1)
        let s3 = pad3(win.strides, 1), d3 = pad3(win.dilations, 1), p3 = pad3(win.padBegin, 0)
        (inD, inH, inW) = (i3[0], i3[1], i3[2])
        (kD, kH, kW) = (k3[0], k3[1], k3[2])
        (oD, oH, oW) = (o3[0], o3[1], o3[2])
        (sD, sH, sW) = (s3[0], s3[1], s3[2])
        (dD, dH, dW) = (d3[0], d3[1], d3[2])
        (pD, pH, pW) = (p3[0], p3[1], p3[2])
        outputShape = [batch, outC] + win.output
        self.threads = max(1, threads)
        path = choosePath()
        try sizeScratch()
    }

    enum Path { case pointwise, pointwiseBatched, pointwiseSmall, depthwise, depthwiseSmall, im2col }

    private func choosePath() -> Path {
        let unitKernel = kernelVolume == 1 && sD == 1 && sH == 1 && sW == 1 && pD == 0 && pH == 0 && pW == 0
            && oD == inD && oH == inH && oW == inW
        if unitKernel {
            // A few pixels in all: stream pre-packed weight panels (see ConvPointwiseSmall.swift).
            if group == 1 && batch * outSpatial <= 16 { return .pointwiseSmall }
            // Small images make thin GEMMs; gathering all images into one wide GEMM keeps BLAS efficient.
            return group == 1 && batch > 1 && outSpatial <= ConvGeometry.batchedSpatialLimit ? .pointwiseBatched : .pointwise
        }
        if group == inC && outC == inC && inD == 1 && kD == 1 {
            // Small planes, stride 1: vectorise along the flattened padded plane instead of along rows.
            let flat = sH == 1 && sW == 1 && dH == 1 && dW == 1 && inH * inW <= ConvGeometry.smallPlaneLimit
            return flat ? .depthwiseSmall : .depthwise
        }
        return .im2col
    }

    /// Pointwise convs with at most this many output pixels per image run as one GEMM over the batch.
    /// Measured (Zen 4, OpenBLAS 0.3.21, batch 20): one GEMM wins 2× on 3×3 maps; per image wins from 6×6 up.
    static let batchedSpatialLimit = 16

    /// Sets the scratch size of the chosen path. The widths and heights in the slot formulas are sums of
    /// dims, pads and window extents (each bounded by `TensorSize.maxDimension`); their products are
    /// checked first, with headroom for the few additions and roundings the formulas make on them.
    private mutating func sizeScratch() throws {
        let what = "Conv scratch"
        func fits(_ factors: Int...) throws { _ = try checkedProduct(factors + [64], what) }
        switch path {
        case .pointwise, .pointwiseSmall:
            scratchFloats = 0
        case .pointwiseBatched:
            try fits(inC + outC, batch, outSpatial)
            scratchFloats = (inC + outC) * batch * outSpatial + 32
        case .depthwise:
            try fits(depthwisePaddedWidth, depthwisePaddedHeight)
            scratchFloats = try checkedAdd(checkedMul(depthwiseSlots, depthwisePlaneFloats, what), 32, what)
        case .depthwiseSmall:
            try fits(pH + inH + oH + kH, flatWidth)
            scratchFloats = try checkedAdd(checkedMul(depthwiseSlots, flatPlaneFloats, what), 32, what)
        case .im2col:
            try fits(inCg, kernelVolume, outSpatial)
            // Never 0, even for an empty column matrix (no input channels or no output pixels): the path
            // always takes a scratch pointer, so the plan must always provide one.
            scratchFloats = max(16, try checkedMul(im2colSlots, im2colFloats, what))
        }
        _ = try checkedMul(scratchFloats, MemoryLayout<Float>.stride, what)
    }

    /// Floats of one unfolded image-group [Cg·kvol, oS], padded to a cache line.
    var im2colFloats: Int { (inCg * kernelVolume * outSpatial + 15) / 16 * 16 }
    /// Independent (image, group) GEMMs run in parallel, each with its own column buffer, when those
    /// buffers are small; large ones run one at a time with BLAS's own threads.
    var im2colSlots: Int {
        im2colFloats * 4 <= 2 << 20 ? max(1, min(batch * group, threads)) : 1
    }

    // Depthwise works on a zero-padded copy of each input plane (so its loops have no bounds tests),
    // one copy per parallel slot.
    var depthwiseSlots: Int { max(1, min(batch * inC, threads)) }
    /// Row length of the padded plane: room for the last, rounded-up SIMD block of outputs.
    var depthwisePaddedWidth: Int {
        let blocks = (oW + 7) / 8 * 8
        if depthwiseDeinterleaved { return 2 * depthwiseHalfWidth }
        return max(pW + inW, blocks * sW + (kW - 1) * dW + 2) + 8
    }
    /// 3×3 stride 2: each padded row is stored as its even columns then its odd columns, so the three
    /// taps of a row are three contiguous loads (E[ox], O[ox], E[ox + 1]) instead of strided gathers.
    var depthwiseDeinterleaved: Bool { kH == 3 && kW == 3 && sH == 2 && sW == 2 && dH == 1 && dW == 1 }
    /// Length of the even (and of the odd) half of a deinterleaved row.
    var depthwiseHalfWidth: Int { max((pW + inW + 1) / 2, (oW + 7) / 8 * 8 + 1) + 8 }
    var depthwisePaddedHeight: Int { max(pH + inH, (oH - 1) * sH + (kH - 1) * dH + 1) }
    var depthwisePlaneFloats: Int { (depthwisePaddedWidth * depthwisePaddedHeight + 15) / 16 * 16 }

    /// Depthwise planes of at most this many pixels (stride 1) take the flattened-plane path.
    static let smallPlaneLimit = 144
    /// Row length of the flattened path's padded plane (output columns past oW are computed and dropped).
    var flatWidth: Int { max(pW + inW, oW + kW - 1) }
    /// Flat outputs per plane, rounded up to whole SIMD blocks.
    var flatOutputs: Int { (oH * flatWidth + 7) / 8 * 8 }
    /// Padded plane, with room for the last block's reads and the copy's 8-wide stores.
    var flatInputFloats: Int {
        let plane = max((pH + inH) * flatWidth + 8, flatOutputs + (kH - 1) * flatWidth + kW + 8)
        return (plane + 15) / 16 * 16
    }
    /// Planes the flat path moves through its stages together (see convDepthwiseFlat).
    static let flatBatch = 8
    /// One slot of the flat path: flatBatch padded planes and their flat outputs.
    var flatPlaneFloats: Int { ConvGeometry.flatBatch * (flatInputFloats + flatOutputs) + 16 }
}

/// Weights and bias as the Conv paths read them (the ONNX tensors themselves; a following Mul / Add is
/// folded into them by the graph optimiser), plus weight panels for the few-pixels pointwise path.
/// Made once from constant W and B at plan time; for weights computed at run time, remade every run.
final class ConvWeights {
    /// The tensors these were made from (kept alive so their addresses stay unique).
    var sourceW: TensorStorage?
    var sourceB: TensorStorage?
    var weights: UnsafePointer<Float>?
    var bias: UnsafePointer<Float>?
    var panels: UnsafePointer<Float>?
    private var panelStorage: TensorStorage?

    func matches(w: UnsafeMutableRawPointer, b: UnsafeMutableRawPointer?) -> Bool {
        sourceW?.pointer == w && sourceB?.pointer == b
    }

    /// Points at W and B.
    func load(w: UnsafePointer<Float>, b: UnsafePointer<Float>?) {
        panels = nil
        weights = w
        bias = b
    }

    /// Packs the current weights into 8-channel panels (1×1 convs only).
    func packPanels(outC: Int, inC: Int) throws {
        let bytes = convPanelFloats(outC: outC, inC: inC) * 4
        let storage = try panelStorage.flatMap { $0.byteCount >= bytes ? $0 : nil } ?? TensorStorage(byteCount: bytes)
        panelStorage = storage
        let p = storage.pointer.assumingMemoryBound(to: Float.self)
        convPackPanels(w: weights!, bias: bias, outC: outC, inC: inC, into: p)
        panels = UnsafePointer(p)
    }
}

// X: [N,C,D1..Dr] (r = 1, 2, 3), W: [M,C/group,k1..kr], B: [M] (optional) -> Y: [N,M,o1..or]
final class ConvKernel: Kernel {
    let window: WindowAttributes
    let group: Int
    /// Applied after the bias.
    var activation: FusedActivation = .none
    /// Made from constant W and B at plan time.
    private var prepared: ConvWeights?
    /// Remade every run for weights that are not constants.
    private let runtimeWeights = ConvWeights()
    /// One geometry per planned pair of input and weight shapes, made at plan time: runs look it up
    /// (comparing arrays allocates nothing) instead of rebuilding it.
    private(set) var geometries: [(x: [Int], w: [Int], geometry: ConvGeometry)] = []

    /// A Conv outside any graph (the trainer's forward): an explicit window, no bias, no activation.
    init(window: WindowAttributes, group: Int) {
        self.window = window
        self.group = group
    }

    init(_ info: NodeInfo) throws {
        window = try WindowAttributes(info)
        group = try info.int("group", 1)
        guard group >= 1 else { throw KernelError("group must be at least 1, got \(group)") }
        // A Clip / Relu fused by the graph optimiser travels as internal attributes.
        if info.has(FusedAttributes.clipMin) || info.has(FusedAttributes.clipMax) {
            let lo = try info.float(FusedAttributes.clipMin, -.infinity), hi = try info.float(FusedAttributes.clipMax, .infinity)
            activation = lo == 0 && hi == .infinity ? .relu : .clip(min: lo, max: hi)
        }
    }

    /// The geometry for these shapes: the planned one, else made now (and kept) for `threads` scratch slots.
    func geometry(x: [Int], w: [Int], threads: Int) throws -> ConvGeometry {
        if let known = geometries.first(where: { $0.x == x && $0.w == w }) { return known.geometry }
        let g = try ConvGeometry(x: x, w: w, attributes: window, group: group, threads: threads)
        geometries.append((x, w, g))
        return g
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0), w = try inputs.spec(1)
        guard x.dtype == .float, w.dtype == .float else {
            throw KernelError("Conv supports float32 only, got \(x.dtype) input and \(w.dtype) weights", unsupported: true)
        }
        let g = try geometry(x: x.shape, w: w.shape, threads: inputs.threads)
        if let b = inputs.optional(2) {
            guard b.dtype == .float else { throw KernelError("Conv bias must be float32, got \(b.dtype)", unsupported: true) }
            guard b.shape == [g.outC] else { throw KernelError("bias shape \(b.shape) must be [\(g.outC)]") }
        }
        // Constant weights: pack panels once now, never per run.
        if let wc = w.constant, inputs.optional(2).map({ $0.constant != nil }) ?? true {
            let bc = inputs.optional(2)?.constant
            if prepared == nil || !prepared!.matches(w: wc.storage.pointer, b: bc?.storage.pointer) {
                let p = ConvWeights()
                p.sourceW = wc.storage
                p.sourceB = bc?.storage
                p.load(w: wc.ref.floats, b: bc?.ref.floats)
                prepared = p
            }
            if g.path == .pointwiseSmall && prepared!.panels == nil { try prepared!.packPanels(outC: g.outC, inC: g.inC) }
        }
        return [ValueSpec(.float, g.outputShape)]
    }

    func scratchBytes(inputs: [ValueSpec?], outputs: [ValueSpec]) throws -> Int {
        guard let x = inputs[0], let w = inputs[1] else { return 0 }
        return try geometry(x: x.shape, w: w.shape, threads: 1).scratchFloats * MemoryLayout<Float>.stride
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0), w = inputs.at(1), y = outputs[0]
        let b = inputs.count > 2 ? inputs[2] : nil
        let g = try geometry(x: x.shape, w: w.shape, threads: context.threads)
        let scratch = context.scratch.map { $0.assumingMemoryBound(to: Float.self) }

        // Weights and bias as this run uses them.
        let prepared: ConvWeights
        if let p = self.prepared, p.matches(w: w.data, b: b?.data) {
            prepared = p
        } else {
            // Weights computed at run time: prepare them again now.
            prepared = runtimeWeights
            prepared.load(w: w.floats, b: b?.floats)
        }
        if g.path == .pointwiseSmall && prepared.panels == nil { try prepared.packPanels(outC: g.outC, inC: g.inC) }
        let weights = prepared.weights!, bias = prepared.bias
        if g.batch == 0 || g.outC == 0 || g.outSpatial == 0 { return }
        guard g.scratchFloats == 0 || scratch != nil else { throw KernelError("Conv was planned without scratch memory") }

        switch g.path {
        case .pointwise:
            convPointwise(g, x: x.floats, w: weights, bias: bias, y: y.floats, context: context)
        case .pointwiseSmall:
            convPointwiseSmall(g, x: x.floats, panels: prepared.panels!, y: y.floats, context: context)
        case .pointwiseBatched:
            convPointwiseBatched(g, x: x.floats, w: weights, bias: bias, y: y.floats, scratch: scratch!, context: context)
        case .depthwiseSmall:
            convDepthwiseFlat(g, x: x.floats, w: weights, bias: bias, y: y.floats, scratch: scratch!, context: context)
        case .depthwise:
            convDepthwise(g, x: x.floats, w: weights, bias: bias, y: y.floats, scratch: scratch!, context: context)
        case .im2col:
            convIm2col(g, x: x.floats, w: weights, bias: bias, y: y.floats, scratch: scratch!, context: context)
        }
    }

    // MARK: - Paths

    /// Bias and activation over `rows` channel rows of `length` outputs starting at channel `firstChannel`.
    private func epilogueRows(_ y: UnsafeMutablePointer<Float>, rows: Int, length: Int, firstChannel: Int,
                              bias: UnsafePointer<Float>?, context: RunContext) {
        if bias == nil && activation == .none { return }
        let act = activation
        context.parallelFor(rows, minChunk: max(1, 32768 / max(length, 1))) { range in
            for r in range { convEpilogue(y + r * length, length, bias: bias?[firstChannel + r] ?? 0, act) }
        }
    }

    /// 1×1, stride 1, unpadded: per image and group, Y[Mg, S] = W[Mg, Cg] · X[Cg, S].
    func convPointwise(_ g: ConvGeometry, x: UnsafePointer<Float>, w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               y: UnsafeMutablePointer<Float>, context: RunContext) {
        let s = g.outSpatial, mg = g.outCg, cg = g.inCg
        let act = activation
        // Work items: (image, group, column range). With fewer images·groups than threads (one image),
        // the pixels are split too, so every thread runs a whole single-threaded GEMM of its own.
        let tasks = g.batch * g.group
        // Too few maps to go round: split each GEMM by columns (pixels) when maps are wide, else by
        // rows (output channels), which late layers (few pixels, many channels) have plenty of.
        let wanted = context.threads > tasks ? (context.threads + tasks - 1) / tasks : 1
        let byColumns = s >= 128
        let split = byColumns ? min(wanted, max(1, s / 64)) : min(wanted, max(1, mg / 32))
        func item(_ i: Int) {
            let t = i / split, part = i % split
            let n = t / g.group, gr = t % g.group
            // Ranges in multiples of 16 so each starts on a cache line (columns) or a whole panel (rows).
            let extent = byColumns ? s : mg
            let lo = (extent * part / split) / 16 * 16, hi = part == split - 1 ? extent : (extent * (part + 1) / split) / 16 * 16
            if lo >= hi { return }
            let (c0, c1) = byColumns ? (lo, hi) : (0, s)
            let (r0, r1) = byColumns ? (0, mg) : (lo, hi)
            let yp = y + (n * g.outC + gr * mg + r0) * s + c0
            sgemm(m: r1 - r0, n: c1 - c0, k: cg, a: w + (gr * mg + r0) * cg, lda: cg, b: x + (n * g.inC + gr * cg) * s + c0, ldb: s,
                  c: yp, ldc: s)
            if bias != nil || act != .none {
                for r in r0..<r1 { convEpilogue(yp + (r - r0) * s, c1 - c0, bias: bias?[gr * mg + r] ?? 0, act) }
            }
        }
        let items = tasks * split
        if context.threads > 1 && items > 1 {
            // These GEMMs are too small for BLAS to split well: run whole ones in parallel instead.
            context.parallelFor(items) { range in for i in range { item(i) } }
        } else {
            for i in 0..<items { item(i) }
        }
    }

    /// 1×1 over small images: gather X into [C, N·S], one GEMM to [M, N·S], scatter with the epilogue.
    func convPointwiseBatched(_ g: ConvGeometry, x: UnsafePointer<Float>, w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                      y: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, context: RunContext) {
        let s = g.outSpatial, n = g.batch, c = g.inC, m = g.outC, cols = n * s
        let xt = scratch, yt = scratch + (c * cols + 15) / 16 * 16
        context.parallelFor(c, minChunk: max(1, 16384 / max(cols, 1))) { range in
            for ci in range {
                for ni in 0..<n { (xt + ci * cols + ni * s).update(from: x + (ni * c + ci) * s, count: s) }
            }
        }
        sgemm(context: context, m: m, n: cols, k: c, a: w, lda: c, b: xt, ldb: cols, c: yt, ldc: cols)
        let act = activation
        context.parallelFor(m, minChunk: max(1, 16384 / max(cols, 1))) { range in
            for mi in range {
                let bv = bias?[mi] ?? 0
                for ni in 0..<n {
                    let dst = y + (ni * m + mi) * s
                    dst.update(from: yt + mi * cols + ni * s, count: s)
                    convEpilogue(dst, s, bias: bv, act)
                }
            }
        }
    }

    /// General conv: per image and group, unfold the receptive fields into columns [Cg·kvol, oS]
    /// (im2col) and multiply by W[Mg, Cg·kvol].
    func convIm2col(_ g: ConvGeometry, x: UnsafePointer<Float>, w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                            y: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, context: RunContext) {
        let os = g.outSpatial, mg = g.outCg, cg = g.inCg, kdim = cg * g.kernelVolume
        let act = activation
        let tasks = g.batch * g.group, slots = g.im2colSlots
        func task(_ i: Int, col: UnsafeMutablePointer<Float>, parallel: Bool) {
            let n = i / g.group, gr = i % g.group
            let src = x + (n * g.inC + gr * cg) * g.inSpatial
            if parallel {
                context.parallelFor(kdim, minChunk: max(1, 16384 / max(os, 1))) { range in
                    for row in range { convIm2colRow(g, row: row, src: src, dst: col + row * os) }
                }
            } else {
                for row in 0..<kdim { convIm2colRow(g, row: row, src: src, dst: col + row * os) }
            }
            let yp = y + (n * g.outC + gr * mg) * os
            if parallel {
                sgemm(context: context, m: mg, n: os, k: kdim, a: w + gr * mg * kdim, lda: kdim, b: col, ldb: os, c: yp, ldc: os)
            } else {
                sgemm(m: mg, n: os, k: kdim, a: w + gr * mg * kdim, lda: kdim, b: col, ldb: os, c: yp, ldc: os)
            }
            if parallel {
                epilogueRows(yp, rows: mg, length: os, firstChannel: gr * mg, bias: bias, context: context)
            } else if bias != nil || act != .none {
                for r in 0..<mg { convEpilogue(yp + r * os, os, bias: bias?[gr * mg + r] ?? 0, act) }
            }
        }
        if context.threads > 1 && tasks > 1 && slots > 1 {
            // Whole (image, group) problems in parallel, each chunk with its own column buffer.
            context.parallelFor(slots) { slotRange in
                let col = scratch + slotRange.lowerBound * g.im2colFloats
                let first = tasks * slotRange.lowerBound / slots, last = tasks * slotRange.upperBound / slots
                for i in first..<last { task(i, col: col, parallel: false) }
            }
        } else {
            for i in 0..<tasks { task(i, col: scratch, parallel: true) }
        }
    }
}

/// One im2col row: kernel offset (c, kd, kh, kw) sampled at every output position; zeros where it reads padding.
@inline(__always)
func convIm2colRow(_ g: ConvGeometry, row: Int, src: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>) {
    let kvol = g.kernelVolume
    let c = row / kvol, k = row % kvol
    let kd = k / (g.kH * g.kW), kh = (k / g.kW) % g.kH, kw = k % g.kW
    let plane = src + c * g.inSpatial
    let (off, lo, hi) = convValidColumns(g, kw: kw)
    var out = dst
    for od in 0..<g.oD {
        let id = od * g.sD - g.pD + kd * g.dD
        for oh in 0..<g.oH {
            let ih = oh * g.sH - g.pH + kh * g.dH
            if id < 0 || id >= g.inD || ih < 0 || ih >= g.inH || hi <= lo {
                out.update(repeating: 0, count: g.oW)
            } else {
                let line = plane + (id * g.inH + ih) * g.inW + off
                if lo > 0 { out.update(repeating: 0, count: lo) }
                if g.sW == 1 {
                    (out + lo).update(from: line + lo, count: hi - lo)
                } else {
                    for ow in lo..<hi { out[ow] = line[ow * g.sW] }
                }
                if hi < g.oW { (out + hi).update(repeating: 0, count: g.oW - hi) }
            }
            out += g.oW
        }
    }
}

/// Kernel column kw reads input column ow·sW + off for output column ow; [lo, hi) are the output columns
/// for which that lies inside [0, inW).
@inline(__always)
func convValidColumns(_ g: ConvGeometry, kw: Int) -> (off: Int, lo: Int, hi: Int) {
    let off = kw * g.dW - g.pW
    let lo = off >= 0 ? 0 : Swift.min(g.oW, (-off + g.sW - 1) / g.sW)
    let hi = g.inW - 1 - off < 0 ? 0 : Swift.min(g.oW, (g.inW - 1 - off) / g.sW + 1)
    return (off, lo, hi)
}

/// The adjoint of `convIm2colRow`: adds one row of a column-matrix gradient back onto the input
/// positions that row was read from (what it read from padding has nowhere to go and drops out).
/// Forward: `out[ow] = line[ow * g.sW]`, so backward: `line[ow * g.sW] += from[ow]`.
@inline(__always)
func convCol2imRow(_ g: ConvGeometry, row: Int, src: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>) {
    let kvol = g.kernelVolume
    let c = row / kvol, k = row % kvol
    let kd = k / (g.kH * g.kW), kh = (k / g.kW) % g.kH, kw = k % g.kW
    let plane = dst + c * g.inSpatial
    let (off, lo, hi) = convValidColumns(g, kw: kw)
    var from = src
    for od in 0..<g.oD {
        let id = od * g.sD - g.pD + kd * g.dD
        for oh in 0..<g.oH {
            let ih = oh * g.sH - g.pH + kh * g.dH
            if id >= 0 && id < g.inD && ih >= 0 && ih < g.inH && lo < hi {
                let line = plane + (id * g.inH + ih) * g.inW + off
                for ow in lo..<hi { line[ow * g.sW] += from[ow] }
            }
            from += g.oW
        }
    }
}

// MARK: - Training (forward with batch activations kept, and backward)

/// A 2-D convolution as the trainer runs it: x [batch, inChannels, height, width] (NCHW),
/// w [outChannels, inChannels / group, kernelH, kernelW] (OIHW), no bias, explicit (possibly asymmetric)
/// zero padding. group == inChannels == outChannels is a depthwise convolution.
public struct Conv2DShape: Equatable, Sendable {
    public var batch, inChannels, height, width, outChannels: Int
    public var kernelH, kernelW, strideH, strideW, group: Int
    public var padTop, padLeft, padBottom, padRight: Int

    public init(batch: Int, inChannels: Int, height: Int, width: Int, outChannels: Int,
                kernelH: Int, kernelW: Int, strideH: Int = 1, strideW: Int = 1, group: Int = 1,
                padTop: Int = 0, padLeft: Int = 0, padBottom: Int = 0, padRight: Int = 0) {
        self.batch = batch; self.inChannels = inChannels; self.height = height; self.width = width
        self.outChannels = outChannels; self.kernelH = kernelH; self.kernelW = kernelW
        self.strideH = strideH; self.strideW = strideW; self.group = group
        self.padTop = padTop; self.padLeft = padLeft; self.padBottom = padBottom; self.padRight = padRight
    }

    public var outHeight: Int { (height + padTop + padBottom - kernelH) / strideH + 1 }
    public var outWidth: Int { (width + padLeft + padRight - kernelW) / strideW + 1 }
    public var inputCount: Int { batch * inChannels * height * width }
    public var outputCount: Int { batch * outChannels * outHeight * outWidth }
    public var weightCount: Int { outChannels * (inChannels / group) * kernelH * kernelW }
    public var isDepthwise: Bool { group > 1 && group == inChannels && group == outChannels }
}

extension Conv2DShape {
    /// The window as a Conv node's attributes would give it.
    var window: WindowAttributes {
        WindowAttributes(kernelShape: [kernelH, kernelW], strides: [strideH, strideW], pads: [padTop, padLeft, padBottom, padRight])
    }

    /// The engine's geometry of this convolution, with per-thread scratch slots for `threads` threads.
    func geometry(threads: Int) -> ConvGeometry {
        do {
            return try ConvGeometry(x: [batch, inChannels, height, width], w: [outChannels, inChannels / group, kernelH, kernelW],
                                    attributes: window, group: group, threads: threads)
        } catch {
            preconditionFailure("ConvTraining: \(self) is not a valid convolution: \(error)")
        }
    }
}

/// The trainer's convolutions. The forward is the inference kernel's (same paths, no bias or activation);
/// the backward takes one of the paths of `ConvBackwardPlan`. Both are bit-reproducible for a fixed
/// thread count: every weight gradient is summed in a fixed order (see each path).
public enum ConvTraining {
    /// Floats of scratch that `forward` and `backward` need for this shape on `threads` threads.
    public static func scratchFloats(_ s: Conv2DShape, threads: Int) -> Int {
        max(16, s.geometry(threads: threads).scratchFloats, ConvBackwardPlan(s, threads: threads).scratchFloats)
    }

    /// y [batch, outChannels, outHeight, outWidth] = conv(x, w).
    public static func forward(_ s: Conv2DShape, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                               y: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, threads: Int) {
        let g = s.geometry(threads: threads)
        if g.batch == 0 || g.outC == 0 || g.outSpatial == 0 { return }
        let kernel = ConvKernel(window: s.window, group: s.group)
        let context = RunContext(threads: max(1, threads), scratch: UnsafeMutableRawPointer(scratch))
        switch g.path {
        case .pointwise, .pointwiseSmall:
            // The few-pixels path streams pre-packed weight panels; the trainer's weights change every step.
            kernel.convPointwise(g, x: x, w: w, bias: nil, y: y, context: context)
        case .pointwiseBatched:
            kernel.convPointwiseBatched(g, x: x, w: w, bias: nil, y: y, scratch: scratch, context: context)
        case .depthwiseSmall:
            kernel.convDepthwiseFlat(g, x: x, w: w, bias: nil, y: y, scratch: scratch, context: context)
        case .depthwise:
            kernel.convDepthwise(g, x: x, w: w, bias: nil, y: y, scratch: scratch, context: context)
        case .im2col:
            kernel.convIm2col(g, x: x, w: w, bias: nil, y: y, scratch: scratch, context: context)
        }
    }

    /// Given dy (y's shape): dw = dL/dw (overwritten) and, unless dx is nil (the first layer), dx = dL/dx (overwritten).
    public static func backward(_ s: Conv2DShape, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                                dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>,
                                scratch: UnsafeMutablePointer<Float>, threads: Int) {
        let plan = ConvBackwardPlan(s, threads: threads)
        let context = RunContext(threads: max(1, threads), scratch: UnsafeMutableRawPointer(scratch))
        if s.outputCount == 0 {
            // No output depends on anything: both gradients are zero.
            dw.update(repeating: 0, count: s.weightCount)
            dx?.update(repeating: 0, count: s.inputCount)
            return
        }
        switch plan.path {
        case .pointwise:
            convPointwiseBackward(s, plan, x: x, w: w, dy: dy, dx: dx, dw: dw, scratch: scratch, context: context)
        case .pointwiseGathered:
            convPointwiseGatheredBackward(s, x: x, w: w, dy: dy, dx: dx, dw: dw, scratch: scratch, context: context)
        case .depthwise3x3:
            convDepthwise3x3Backward(s, plan, x: x, w: w, dy: dy, dx: dx, dw: dw, scratch: scratch, context: context)
        case .im2col:
            convIm2colBackward(s, plan, x: x, w: w, dy: dy, dx: dx, dw: dw, scratch: scratch, context: context)
        }
    }
}
