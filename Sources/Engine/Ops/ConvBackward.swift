import Foundation

// Backward of the trainer's convolutions through GEMMs: pointwise (per image, or gathered over the batch
// for small images) and the general im2col path (any kernel, stride, padding and group). The depthwise 3×3
// kernels are in ConvDepthwiseBackward.swift. Forwards are in Conv.swift (`ConvTraining.forward`).
//
// Reproducibility: a weight gradient is a sum over the batch. Where threads split the batch, each of
// `slots` contiguous runs of images sums into its own buffer and the buffers are added in slot order, so
// the result depends on the thread count only (never on which thread ran what, or when).

/// Which backward path a training convolution takes, and the scratch it needs.
struct ConvBackwardPlan {
    enum Path { case pointwise, pointwiseGathered, depthwise3x3, im2col }
    var path: Path
    /// Pieces of work with a scratch slot each: runs of images.
    var slots = 1
    var slotFloats = 0
    var scratchFloats = 0

    /// Pointwise convs over at most this many pixels per image gather the batch into two wide GEMMs.
    /// Measured at batch 128 (2 threads): gathered wins on 3×3 and 6×6 maps, per image from 11×11 up.
    static let gatherSpatialLimit = 64

    init(_ s: Conv2DShape, threads: Int) {
        let threads = max(1, threads)
        let spatial = s.height * s.width
        let unit = s.kernelH == 1 && s.kernelW == 1 && s.strideH == 1 && s.strideW == 1
            && s.padTop == 0 && s.padLeft == 0 && s.padBottom == 0 && s.padRight == 0
        if unit && s.group == 1 {
            if spatial <= ConvBackwardPlan.gatherSpatialLimit {
                path = .pointwiseGathered
                scratchFloats = roundUp16(s.inChannels * s.batch * spatial) + roundUp16(s.outChannels * s.batch * spatial)
            } else {
                path = .pointwise
                slots = max(1, min(threads, s.batch))
                slotFloats = roundUp16(s.weightCount)
                scratchFloats = slots > 1 ? slots * slotFloats : 0
            }
        } else if s.isDepthwise && s.kernelH == 3 && s.kernelW == 3 && s.strideH == s.strideW && (1...2).contains(s.strideH) {
            path = .depthwise3x3
            slots = max(1, min(threads, s.batch))
            slotFloats = DepthwiseBackwardLayout(s).slotFloats(channels: s.inChannels)
            scratchFloats = slots * slotFloats
        } else {
            path = .im2col
            let g = s.geometry(threads: 1)
            slots = max(1, min(threads, s.batch))
            // Column matrix, its gradient, and this slot's share of dw.
            slotFloats = 2 * g.im2colFloats + roundUp16(s.weightCount)
            scratchFloats = slots * slotFloats
        }
    }
}

@inline(__always) func roundUp16(_ n: Int) -> Int { (n + 15) / 16 * 16 }

extension ConvTraining {
    /// dst[i] = slot 0's [i] + slot 1's [i] + … in that order (`slots` buffers `slotFloats` apart).
    static func sumSlots(_ partials: UnsafePointer<Float>, slotFloats: Int, slots: Int, count: Int,
                         into dst: UnsafeMutablePointer<Float>, context: RunContext) {
        context.parallelFor(count, minChunk: 16384) { range in
            for i in range {
                var v = partials[i]
                for slot in 1..<slots { v += partials[slot * slotFloats + i] }
                dst[i] = v
            }
        }
    }

    // x: [N, C, S], w: [M, C], dy: [N, M, S] -> dw: [M, C], dx: [N, C, S]   (1×1, stride 1, no padding,
    // group 1; S = H·W). Runs of images in parallel, whole single-threaded GEMMs per image.
    static func convPointwiseBackward(_ s: Conv2DShape, _ plan: ConvBackwardPlan, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                                      dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>,
                                      scratch: UnsafeMutablePointer<Float>, context: RunContext) {
        let n = s.batch, c = s.inChannels, m = s.outChannels, sp = s.height * s.width
        let slots = plan.slots
        context.parallelFor(slots) { range in
            for slot in range {
                let partial = slots == 1 ? dw : scratch + slot * plan.slotFloats
                partial.update(repeating: 0, count: m * c)
                for i in n * slot / slots ..< n * (slot + 1) / slots {
                    let xi = x + i * c * sp, dyi = dy + i * m * sp
                    // Forward: y_i[M, S] = w[M, C] · x_i[C, S]
                    // dw[M, C] += dy_i[M, S] · x_iᵀ[S, C]
                    sgemm(transB: true, m: m, n: c, k: sp, a: dyi, lda: sp, b: xi, ldb: sp, beta: 1, c: partial, ldc: c)
                    // dx_i[C, S] = wᵀ[C, M] · dy_i[M, S]
                    if let dx { sgemm(transA: true, m: c, n: sp, k: m, a: w, lda: c, b: dyi, ldb: sp, c: dx + i * c * sp, ldc: sp) }
                }
            }
        }
        if slots > 1 { sumSlots(scratch, slotFloats: plan.slotFloats, slots: slots, count: m * c, into: dw, context: context) }
    }

    // x: [N, C, S], w: [M, C], dy: [N, M, S] -> dw: [M, C], dx: [N, C, S], for small S. Per image these
    // would be N thin GEMMs of S columns; gathered as X[C, N·S] and DY[M, N·S] they are two wide ones.
    static func convPointwiseGatheredBackward(_ s: Conv2DShape, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                                              dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>,
                                              scratch: UnsafeMutablePointer<Float>, context: RunContext) {
        let n = s.batch, c = s.inChannels, m = s.outChannels, sp = s.height * s.width, cols = n * sp
        let xg = scratch, dyg = scratch + roundUp16(c * cols)
        gatherImages(x, images: n, channels: c, spatial: sp, into: xg, context: context)
        gatherImages(dy, images: n, channels: m, spatial: sp, into: dyg, context: context)
        // Forward: Y[M, N·S] = w[M, C] · X[C, N·S]
        // dw[M, C] = DY[M, N·S] · Xᵀ[N·S, C]: rows of dw split over threads, each a whole sum (no reduction).
        context.parallelFor(m, minChunk: 8) { rows in
            sgemm(transB: true, m: rows.count, n: c, k: cols, a: dyg + rows.lowerBound * cols, lda: cols, b: xg, ldb: cols,
                  c: dw + rows.lowerBound * c, ldc: c)
        }
        guard let dx else { return }
        // dX[C, N·S] = wᵀ[C, M] · DY[M, N·S], into X's buffer (X is not needed any more).
        sgemm(context: context, transA: true, m: c, n: cols, k: m, a: w, lda: c, b: dyg, ldb: cols, c: xg, ldc: cols)
        scatterImages(xg, images: n, channels: c, spatial: sp, into: dx, context: context)
    }

    /// [N, C, S] → [C, N·S].
    private static func gatherImages(_ src: UnsafePointer<Float>, images: Int, channels: Int, spatial: Int,
                                     into dst: UnsafeMutablePointer<Float>, context: RunContext) {
        let cols = images * spatial
        context.parallelFor(channels, minChunk: max(1, 16384 / max(cols, 1))) { range in
            for ch in range {
                for i in 0..<images { (dst + ch * cols + i * spatial).update(from: src + (i * channels + ch) * spatial, count: spatial) }
            }
        }
    }

    /// [C, N·S] → [N, C, S].
    private static func scatterImages(_ src: UnsafePointer<Float>, images: Int, channels: Int, spatial: Int,
                                      into dst: UnsafeMutablePointer<Float>, context: RunContext) {
        let cols = images * spatial
        context.parallelFor(channels, minChunk: max(1, 16384 / max(cols, 1))) { range in
            for ch in range {
                for i in 0..<images { (dst + (i * channels + ch) * spatial).update(from: src + ch * cols + i * spatial, count: spatial) }
            }
        }
    }

    // x: [N, C, H, W], w: [M, C/G, kH, kW], dy: [N, M, oH, oW] -> dw (w's shape), dx (x's shape), for any
    // kernel, stride, padding and group count G. Per image n and group g, with kdim = (C/G)·kH·kW,
    // oS = oH·oW and col = im2col(x_n, g) [kdim, oS] (as the forward's `convIm2colRow` builds it).
    // Runs of images in parallel, each with its own column buffers and share of dw.
    static func convIm2colBackward(_ s: Conv2DShape, _ plan: ConvBackwardPlan, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                                   dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>,
                                   scratch: UnsafeMutablePointer<Float>, context: RunContext) {
        let g = s.geometry(threads: 1)
        let os = g.outSpatial, mg = g.outCg, cg = g.inCg, kdim = cg * g.kernelVolume
        let imageIn = g.inC * g.inSpatial, wCount = s.weightCount
        let slots = plan.slots, n = g.batch
        context.parallelFor(slots) { range in
            for slot in range {
                let col = scratch + slot * plan.slotFloats, dcol = col + g.im2colFloats
                let partial = slots == 1 ? dw : dcol + g.im2colFloats
                partial.update(repeating: 0, count: wCount)
                for i in n * slot / slots ..< n * (slot + 1) / slots {
                    if let dx { (dx + i * imageIn).update(repeating: 0, count: imageIn) }
                    for gr in 0..<g.group {
                        let xg = x + (i * g.inC + gr * cg) * g.inSpatial
                        for row in 0..<kdim { convIm2colRow(g, row: row, src: xg, dst: col + row * os) }
                        let dyg = dy + (i * g.outC + gr * mg) * os, wg = w + gr * mg * kdim
                        // Forward: y_ig[Mg, oS] = w_g[Mg, kdim] · col[kdim, oS]
                        // dw_g[Mg, kdim] += dy_ig[Mg, oS] · colᵀ[oS, kdim]
                        sgemm(transB: true, m: mg, n: kdim, k: os, a: dyg, lda: os, b: col, ldb: os, beta: 1,
                              c: partial + gr * mg * kdim, ldc: kdim)
                        guard let dx else { continue }
                        // dcol[kdim, oS] = w_gᵀ[kdim, Mg] · dy_ig[Mg, oS], then each column row back where im2col read it.
                        sgemm(transA: true, m: kdim, n: os, k: mg, a: wg, lda: kdim, b: dyg, ldb: os, c: dcol, ldc: os)
                        let dxg = dx + (i * g.inC + gr * cg) * g.inSpatial
                        for row in 0..<kdim { convCol2imRow(g, row: row, src: dcol + row * os, dst: dxg) }
                    }
                }
            }
        }
        if slots > 1 { sumSlots(scratch + 2 * g.im2colFloats, slotFloats: plan.slotFloats, slots: slots, count: wCount, into: dw, context: context) }
    }
}
