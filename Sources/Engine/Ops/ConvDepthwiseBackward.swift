import Foundation

// Backward of the depthwise 3×3 convolution (group == C == M), stride 1 or 2, any padding, as direct
// SIMD loops. The forward is ConvDepthwise.swift's (`convDepthwise`, `convDepthwiseFlat`).
//
// Threads split the channels: a thread owns whole channels and walks every image of each, so dw[c] is
// summed over the batch in image order by one thread, the same whatever the thread count.

/// The per-plane buffers of one slot, zero except where a plane's data is copied in (the same cells
/// for every plane, so they are cleared once per slot):
/// - P: the padded input plane the forward reads, one row per padded row (at stride 2 each row holds
///   its even padded columns, then its odd ones, like the forward's `copyDeinterleaved` rows);
/// - D: dy with `dBorder` zero rows above and zero columns left, and zeros past its end, so dx can
///   gather dy at indices below 0 and past the last row or column without tests;
/// - R: one dx row interleaved back from even and odd columns (stride 2).
struct DepthwiseBackwardLayout {
    var pRowFloats = 0, pRows = 0, half = 0
    var dRowFloats = 0, dRows = 0, dBorder = 0
    /// Entries per dx row half at stride 2: padded columns [0, pL + W) in even/odd pairs.
    var halfColumns = 0
    var rFloats = 0

    init(_ s: Conv2DShape) {
        let oH = s.outHeight, oW = s.outWidth, oW8 = (oW + 7) / 8 * 8
        let h = s.height, w = s.width, pT = s.padTop, pL = s.padLeft
        if s.strideH == 1 {
            // dw reads P[oh + kh][ox + kw ..< +8] for ox < oW8; dx reads D[ih + pT - kh + 2][iw + pL - kw + 2 ..< +8] for iw < W8.
            pRowFloats = max(pL + w, oW8 + 2)
            pRows = max(pT + h, oH + 2)
            dBorder = 2
            dRowFloats = max(2 + oW8, pL + (w + 7) / 8 * 8 + 2)
            dRows = max(2 + oH, h + pT + 2)
        } else {
            // dw reads E/O[ox ..< +9] of padded rows 2·oh + kh; dx reads D[1 + oh][j ..< j + 9] for oh in [-1, (H - 1 + pT) / 2].
            half = max((pL + w + 1) / 2, oW8 + 1) + 8
            pRowFloats = 2 * half
            pRows = max(pT + h, 2 * oH + 1)
            halfColumns = (pL + w + 1) / 2
            let j8 = (halfColumns + 7) / 8 * 8
            dBorder = 1
            dRowFloats = max(1 + oW8, 1 + j8)
            dRows = max(1 + oH, 1 + (h - 1 + pT) / 2 + 1)
            rFloats = 2 * j8
        }
    }

    var pFloats: Int { roundUp16(pRowFloats * pRows) }
    var dFloats: Int { roundUp16(dRowFloats * dRows) }
    var slotFloats: Int { pFloats + dFloats + roundUp16(rFloats) }
}

/// Nine SIMD accumulators, one per tap of a 3×3 filter.
private struct Taps3x3 {
    var t0 = SIMD8<Float>.zero, t1 = SIMD8<Float>.zero, t2 = SIMD8<Float>.zero
    var t3 = SIMD8<Float>.zero, t4 = SIMD8<Float>.zero, t5 = SIMD8<Float>.zero
    var t6 = SIMD8<Float>.zero, t7 = SIMD8<Float>.zero, t8 = SIMD8<Float>.zero

    /// dst[k] += lane sum of tap k.
    func add(to dst: UnsafeMutablePointer<Float>) {
        dst[0] += t0.sum(); dst[1] += t1.sum(); dst[2] += t2.sum()
        dst[3] += t3.sum(); dst[4] += t4.sum(); dst[5] += t5.sum()
        dst[6] += t6.sum(); dst[7] += t7.sum(); dst[8] += t8.sum()
    }
}

extension ConvTraining {
    // x: [N, C, H, W], w: [C, 1, 3, 3], dy: [N, C, oH, oW] -> dw: [C, 1, 3, 3], dx: [N, C, H, W]
    // (stride 1 or 2 on both axes, any padding). Per plane: copy x into P and dy into D, then dw, then dx.
    static func convDepthwise3x3Backward(_ s: Conv2DShape, _ plan: ConvBackwardPlan, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                                         dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>,
                                         scratch: UnsafeMutablePointer<Float>, context: RunContext) {
        let layout = DepthwiseBackwardLayout(s)
        let channels = s.inChannels, slots = plan.slots
        let h = s.height, wd = s.width, oH = s.outHeight, oW = s.outWidth
        let inPlane = h * wd, outPlane = oH * oW
        context.parallelFor(slots) { range in
            for slot in range {
                let p = scratch + slot * plan.slotFloats, d = p + layout.pFloats, r = d + layout.dFloats
                p.update(repeating: 0, count: plan.slotFloats)
                for c in channels * slot / slots ..< channels * (slot + 1) / slots {
                    let wc = w + 9 * c, dwc = dw + 9 * c
                    dwc.update(repeating: 0, count: 9)
                    for i in 0..<s.batch {
                        let plane = i * channels + c
                        let xp = x + plane * inPlane, dyp = dy + plane * outPlane
                        for ih in 0..<h {
                            let row = p + (s.padTop + ih) * layout.pRowFloats
                            if s.strideH == 1 {
                                (row + s.padLeft).update(from: xp + ih * wd, count: wd)
                            } else {
                                copyDeinterleaved(row, half: layout.half, xp + ih * wd, wd, pad: s.padLeft)
                            }
                        }
                        for oh in 0..<oH {
                            (d + (layout.dBorder + oh) * layout.dRowFloats + layout.dBorder).update(from: dyp + oh * oW, count: oW)
                        }
                        if s.strideH == 1 {
                            depthwise3x3s1Weights(layout, oH: oH, oW: oW, p: p, d: d, dw: dwc)
                            if let dx { depthwise3x3s1Data(s, layout, w: wc, d: d, dx: dx + plane * inPlane) }
                        } else {
                            depthwise3x3s2Weights(layout, oH: oH, oW: oW, p: p, d: d, dw: dwc)
                            if let dx { depthwise3x3s2Data(s, layout, w: wc, d: d, r: r, dx: dx + plane * inPlane) }
                        }
                    }
                }
            }
        }
    }

    // P: padded x plane (rows of pRowFloats), D: bordered dy plane -> dw (9 taps) += this plane's part.
    // Forward: y[oh][ow] = Σ_kh,kw w[kh][kw] · P[oh + kh][ow + kw]
    // so:      dw[kh][kw] += Σ_oh,ow dy[oh][ow] · P[oh + kh][ow + kw]
    // Lanes past oW read D's zeros, so whole blocks need no tail.
    private static func depthwise3x3s1Weights(_ l: DepthwiseBackwardLayout, oH: Int, oW: Int, p: UnsafePointer<Float>,
                                              d: UnsafePointer<Float>, dw: UnsafeMutablePointer<Float>) {
        var a = Taps3x3()
        for oh in 0..<oH {
            let g = d + (2 + oh) * l.dRowFloats + 2
            let r0 = p + oh * l.pRowFloats, r1 = r0 + l.pRowFloats, r2 = r1 + l.pRowFloats
            var ox = 0
            while ox < oW {
                let v = load8(g + ox)
                a.t0.addProduct(v, load8(r0 + ox)); a.t1.addProduct(v, load8(r0 + ox + 1)); a.t2.addProduct(v, load8(r0 + ox + 2))
                a.t3.addProduct(v, load8(r1 + ox)); a.t4.addProduct(v, load8(r1 + ox + 1)); a.t5.addProduct(v, load8(r1 + ox + 2))
                a.t6.addProduct(v, load8(r2 + ox)); a.t7.addProduct(v, load8(r2 + ox + 1)); a.t8.addProduct(v, load8(r2 + ox + 2))
                ox += 8
            }
        }
        a.add(to: dw)
    }

    // w: 9 taps, D: bordered dy plane -> dx [H, W] (overwritten).
    // Forward: y[oh][ow] = Σ_kh,kw w[kh][kw] · x[oh − pT + kh][ow − pL + kw]
    // so:      dx[ih][iw] = Σ_kh,kw w[kh][kw] · dy[ih + pT − kh][iw + pL − kw]   (dy is 0 outside its plane)
    private static func depthwise3x3s1Data(_ s: Conv2DShape, _ l: DepthwiseBackwardLayout, w: UnsafePointer<Float>,
                                           d: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>) {
        let w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6], w7 = w[7], w8 = w[8]
        let width = s.width
        for ih in 0..<s.height {
            // D row of dy row ih + pT − kh, at the column of iw = 0 and kw = 0.
            let g0 = d + (ih + s.padTop + 2) * l.dRowFloats + s.padLeft + 2
            let g1 = g0 - l.dRowFloats, g2 = g1 - l.dRowFloats
            let out = dx + ih * width
            var iw = 0
            while iw < width {
                var a0 = SIMD8<Float>.zero, a1 = SIMD8<Float>.zero, a2 = SIMD8<Float>.zero
                a0.addProduct(load8(g0 + iw), w0); a1.addProduct(load8(g1 + iw), w3); a2.addProduct(load8(g2 + iw), w6)
                a0.addProduct(load8(g0 + iw - 1), w1); a1.addProduct(load8(g1 + iw - 1), w4); a2.addProduct(load8(g2 + iw - 1), w7)
                a0.addProduct(load8(g0 + iw - 2), w2); a1.addProduct(load8(g1 + iw - 2), w5); a2.addProduct(load8(g2 + iw - 2), w8)
                store8(a0 + a1 + a2, out + iw, width - iw)
                iw += 8
            }
        }
    }

    // P: deinterleaved padded x rows (E = even padded columns, O = odd, each `half` long), D: dy with a
    // border of 1 -> dw (9 taps) += this plane's part.
    // Forward: y[oh][ow] = Σ_kh w[kh][0]·E_{2oh+kh}[ow] + w[kh][1]·O_{2oh+kh}[ow] + w[kh][2]·E_{2oh+kh}[ow + 1]
    // so:      dw[kh][0] += Σ dy[oh][ow]·E_{2oh+kh}[ow], dw[kh][1] += Σ dy·O_{2oh+kh}[ow], dw[kh][2] += Σ dy·E_{2oh+kh}[ow + 1]
    private static func depthwise3x3s2Weights(_ l: DepthwiseBackwardLayout, oH: Int, oW: Int, p: UnsafePointer<Float>,
                                              d: UnsafePointer<Float>, dw: UnsafeMutablePointer<Float>) {
        var a = Taps3x3()
        for oh in 0..<oH {
            let g = d + (1 + oh) * l.dRowFloats + 1
            let e0 = p + 2 * oh * l.pRowFloats, e1 = e0 + l.pRowFloats, e2 = e1 + l.pRowFloats
            let o0 = e0 + l.half, o1 = e1 + l.half, o2 = e2 + l.half
            var ox = 0
            while ox < oW {
                let v = load8(g + ox)
                a.t0.addProduct(v, load8(e0 + ox)); a.t1.addProduct(v, load8(o0 + ox)); a.t2.addProduct(v, load8(e0 + ox + 1))
                a.t3.addProduct(v, load8(e1 + ox)); a.t4.addProduct(v, load8(o1 + ox)); a.t5.addProduct(v, load8(e1 + ox + 1))
                a.t6.addProduct(v, load8(e2 + ox)); a.t7.addProduct(v, load8(o2 + ox)); a.t8.addProduct(v, load8(e2 + ox + 1))
                ox += 8
            }
        }
        a.add(to: dw)
    }

    // w: 9 taps, D: dy with a border of 1, R: one interleaved row -> dx [H, W] (overwritten).
    // Forward: y[oh][ow] = Σ_kh,kw w[kh][kw] · xpad[2oh + kh][2ow + kw]
    // so padded position (ph, pw) gets w[kh][kw] · dy[oh][ow] wherever ph = 2oh + kh and pw = 2ow + kw:
    //   kh: ph even → (kh 0, oh ph/2) and (kh 2, oh ph/2 − 1); ph odd → (kh 1, oh (ph − 1)/2)
    //   kw: pw = 2j even → w[kh][0]·dy[oh][j] + w[kh][2]·dy[oh][j − 1]; pw = 2j + 1 odd → w[kh][1]·dy[oh][j]
    // and dx[ih][iw] = dxpad[ih + pT][iw + pL]. Each row is built as even (E) and odd (O) halves, interleaved in R.
    private static func depthwise3x3s2Data(_ s: Conv2DShape, _ l: DepthwiseBackwardLayout, w: UnsafePointer<Float>,
                                           d: UnsafePointer<Float>, r: UnsafeMutablePointer<Float>, dx: UnsafeMutablePointer<Float>) {
        let width = s.width
        for ih in 0..<s.height {
            let ph = ih + s.padTop
            // The D row (border 1, so row 1 + oh) of the first tap row, and its filter row.
            let (oh, kh) = ph % 2 == 0 ? (ph / 2, 0) : ((ph - 1) / 2, 1)
            let g = d + (1 + oh) * l.dRowFloats + 1
            let wa = w + 3 * kh
            let (wa0, wa1, wa2) = (wa[0], wa[1], wa[2])
            if ph % 2 == 0 {
                // Second tap row: kh 2 on dy row oh − 1.
                let gb = g - l.dRowFloats
                let (wb0, wb1, wb2) = (w[6], w[7], w[8])
                var j = 0
                while j < l.halfColumns {
                    var e = load8(g + j) * wa0
                    e.addProduct(load8(g + j - 1), wa2)
                    e.addProduct(load8(gb + j), wb0)
                    e.addProduct(load8(gb + j - 1), wb2)
                    var o = load8(g + j) * wa1
                    o.addProduct(load8(gb + j), wb1)
                    interleave(e, o, into: r + 2 * j)
                    j += 8
                }
            } else {
                var j = 0
                while j < l.halfColumns {
                    var e = load8(g + j) * wa0
                    e.addProduct(load8(g + j - 1), wa2)
                    interleave(e, load8(g + j) * wa1, into: r + 2 * j)
                    j += 8
                }
            }
            (dx + ih * width).update(from: r + s.padLeft, count: width)
        }
    }

    /// r[2k] = even[k], r[2k + 1] = odd[k] for k in 0..<8.
    @inline(__always)
    private static func interleave(_ even: SIMD8<Float>, _ odd: SIMD8<Float>, into r: UnsafeMutablePointer<Float>) {
        var v = SIMD16<Float>()
        v.evenHalf = even
        v.oddHalf = odd
        UnsafeMutableRawPointer(r).storeBytes(of: v, as: SIMD16<Float>.self)
    }
}
