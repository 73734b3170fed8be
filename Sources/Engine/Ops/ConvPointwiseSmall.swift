import Foundation

// 1×1 convolution over very few pixels in all (batch · H · W ≤ 16, e.g. one image at 3×3): a GEMM whose
// output has a handful of columns. BLAS would re-pack the whole weight matrix on every call for that,
// tripling the memory traffic of what is then a weight-streaming problem. Instead W is packed once
// (at plan time, for constant weights) into panels of 8 output channels × all input channels, and each
// panel is streamed once per group of up to 8 pixels, accumulating 8 channels × 8 pixels in registers.
//
// Panels: [ceil(M/8)][C][8] floats (rows past M are zero), followed by the bias padded to ceil(M/8)·8.

/// Floats of the packed panels plus padded bias for M output and C input channels.
func convPanelFloats(outC: Int, inC: Int) -> Int {
    let blocks = (outC + 7) / 8
    return blocks * inC * 8 + blocks * 8
}

/// Packs W [M, C] (row-major) and B [M] into 8-channel panels.
func convPackPanels(w: UnsafePointer<Float>, bias: UnsafePointer<Float>?, outC: Int, inC: Int, into p: UnsafeMutablePointer<Float>) {
    let blocks = (outC + 7) / 8
    p.update(repeating: 0, count: convPanelFloats(outC: outC, inC: inC))
    for mb in 0..<blocks {
        let panel = p + mb * inC * 8
        for i in 0..<min(8, outC - mb * 8) {
            let row = w + (mb * 8 + i) * inC
            for c in 0..<inC { panel[c * 8 + i] = row[c] }
        }
    }
    if let bias {
        let b = p + blocks * inC * 8
        for m in 0..<outC { b[m] = bias[m] }
    }
}

extension ConvKernel {
    // X: [N,C,H,W] with N·H·W ≤ 16, panels of W: [M,C,1,1] -> Y: [N,M,H,W]
    func convPointwiseSmall(_ g: ConvGeometry, x: UnsafePointer<Float>, panels: UnsafePointer<Float>,
                            y: UnsafeMutablePointer<Float>, context: RunContext) {
        let s = g.outSpatial, cIn = g.inC, m = g.outC
        let columns = g.batch * s, blocks = (m + 7) / 8
        let biasPanel = panels + blocks * cIn * 8
        let bounds = activation.bounds
        let lo = SIMD8<Float>(repeating: bounds?.lo ?? 0), hi = SIMD8<Float>(repeating: bounds?.hi ?? 0)
        // Offset of pixel j's first input value (channel 0); channel c adds c·s.
        var offsets = [Int](repeating: 0, count: columns)
        for j in 0..<columns { offsets[j] = (j / s) * cIn * s + j % s }

        offsets.withUnsafeBufferPointer { off in
            context.parallelFor(blocks, minChunk: max(1, 64 / max(cIn / 64, 1))) { range in
                var acc = [SIMD8<Float>](repeating: .zero, count: 8)
                for mb in range {
                    let panel = panels + mb * cIn * 8
                    let b8 = load8(biasPanel + mb * 8)
                    let rows = min(8, m - mb * 8)
                    var j0 = 0
                    while j0 < columns {
                        // 8 pixels per pass keeps 8 accumulators, the weights and a broadcast in the 16
                        // AVX2 registers (12 pixels would spill).
                        let left = columns - j0
                        let width = left >= 8 ? 8 : left >= 4 ? 4 : 1
                        switch width {
                        case 8: ConvKernel.panelTimes8(panel, cIn, x, s, off.baseAddress! + j0, b8, &acc)
                        case 4: ConvKernel.panelTimes4(panel, cIn, x, s, off.baseAddress! + j0, b8, &acc)
                        default: ConvKernel.panelTimes1(panel, cIn, x, s, off[j0], b8, &acc)
                        }
                        // Bias is in; activation, then scatter each pixel's 8 channels (stride s in Y).
                        for j in 0..<width {
                            var v = acc[j]
                            if bounds != nil { v = clamp8(v, lo, hi) }
                            let col = j0 + j
                            let out = y + ((col / s) * m + mb * 8) * s + col % s
                            withUnsafeBytes(of: v) { raw in
                                let lanes = raw.baseAddress!.assumingMemoryBound(to: Float.self)
                                for i in 0..<rows { out[i * s] = lanes[i] }
                            }
                        }
                        j0 += width
                    }
                }
            }
        }
    }

    /// acc[0..<8] = bias + panel · X[:, 8 pixels].
    @inline(never)
    static func panelTimes8(_ panel: UnsafePointer<Float>, _ cIn: Int, _ x: UnsafePointer<Float>, _ s: Int,
                            _ off: UnsafePointer<Int>, _ bias: SIMD8<Float>, _ acc: inout [SIMD8<Float>]) {
        var a0 = bias, a1 = bias, a2 = bias, a3 = bias, a4 = bias, a5 = bias, a6 = bias, a7 = bias
        let p0 = x + off[0], p1 = x + off[1], p2 = x + off[2], p3 = x + off[3]
        let p4 = x + off[4], p5 = x + off[5], p6 = x + off[6], p7 = x + off[7]
        var i = 0
        for c in 0..<cIn {
            let w = load8(panel + c * 8)
            a0.addProduct(w, p0[i]); a1.addProduct(w, p1[i]); a2.addProduct(w, p2[i]); a3.addProduct(w, p3[i])
            a4.addProduct(w, p4[i]); a5.addProduct(w, p5[i]); a6.addProduct(w, p6[i]); a7.addProduct(w, p7[i])
            i += s
        }
        acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3; acc[4] = a4; acc[5] = a5; acc[6] = a6; acc[7] = a7
    }

    @inline(never)
    static func panelTimes4(_ panel: UnsafePointer<Float>, _ cIn: Int, _ x: UnsafePointer<Float>, _ s: Int,
                            _ off: UnsafePointer<Int>, _ bias: SIMD8<Float>, _ acc: inout [SIMD8<Float>]) {
        var a0 = bias, a1 = bias, a2 = bias, a3 = bias
        let p0 = x + off[0], p1 = x + off[1], p2 = x + off[2], p3 = x + off[3]
        var i = 0
        for c in 0..<cIn {
            let w = load8(panel + c * 8)
            a0.addProduct(w, p0[i]); a1.addProduct(w, p1[i]); a2.addProduct(w, p2[i]); a3.addProduct(w, p3[i])
            i += s
        }
        acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3
    }

    @inline(never)
    static func panelTimes1(_ panel: UnsafePointer<Float>, _ cIn: Int, _ x: UnsafePointer<Float>, _ s: Int,
                            _ off: Int, _ bias: SIMD8<Float>, _ acc: inout [SIMD8<Float>]) {
        // Two accumulators halve the dependency chain.
        var a0 = bias, a1 = SIMD8<Float>.zero
        let p = x + off
        var c = 0
        while c + 2 <= cIn {
            a0.addProduct(load8(panel + c * 8), p[c * s])
            a1.addProduct(load8(panel + c * 8 + 8), p[(c + 1) * s])
            c += 2
        }
        if c < cIn { a0.addProduct(load8(panel + c * 8), p[c * s]) }
        acc[0] = a0 + a1
    }
}
