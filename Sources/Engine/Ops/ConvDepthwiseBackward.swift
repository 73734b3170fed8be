import Foundation

// Backward of the depthwise 3×3 convolution (group == C == M), stride 1 or 2, any padding, as direct
// SIMD loops. The forward is ConvDepthwise.swift's (`convDepthwise`, `convDepthwiseFlat`).
//
// Threads split the batch into `slots` runs of images and walk their planes in memory order; each run
// keeps its own dw accumulators (9 SIMD vectors per channel), added in slot order at the end, so dw
// depends on the thread count only.

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
    /// P, D, R, then the slot's dw accumulators (`Taps3x3.floats` per channel).
    func slotFloats(channels: Int) -> Int { pFloats + dFloats + roundUp16(rFloats) + channels * Taps3x3.floats }
}

/// Nine SIMD accumulators, one per tap of a 3×3 filter, kept in memory between planes (8 floats each).
struct Taps3x3 {
    static let floats = 72
    var t0, t1, t2, t3, t4, t5, t6, t7, t8: SIMD8<Float>

    @inline(__always) init(_ p: UnsafePointer<Float>) {
        t0 = load8(p); t1 = load8(p + 8); t2 = load8(p + 16)
        t3 = load8(p + 24); t4 = load8(p + 32); t5 = load8(p + 40)
        t6 = load8(p + 48); t7 = load8(p + 56); t8 = load8(p + 64)
    }

    @inline(__always) func store(_ p: UnsafeMutablePointer<Float>) {
        store8(t0, p, 8); store8(t1, p + 8, 8); store8(t2, p + 16, 8)
        store8(t3, p + 24, 8); store8(t4, p + 32, 8); store8(t5, p + 40, 8)
        store8(t6, p + 48, 8); store8(t7, p + 56, 8); store8(t8, p + 64, 8)
    }
}

extension ConvTraining {
    // x: [N, C, H, W], w: [C, 1, 3, 3], dy: [N, C, oH, oW] -> dw: [C, 1, 3, 3], dx: [N, C, H, W]
    // (stride 1 or 2 on both axes, any padding). Per plane: copy x into P and dy into D, then dw, then dx.
    static func convDepthwise3x3Backward(_ s: Conv2DShape, _ plan: ConvBackwardPlan, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                                         dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>,
                                         scratch: UnsafeMutablePointer<Float>, context: RunContext) {
        let layout = DepthwiseBackwardLayout(s)
        let channels = s.inChannels, slots = plan.slots, n = s.batch
        let h = s.height, wd = s.width, oH = s.outHeight, oW = s.outWidth
        let inPlane = h * wd, outPlane = oH * oW
        let accOffset = layout.pFloats + layout.dFloats + roundUp16(layout.rFloats)
        context.parallelFor(slots) { range in
            for slot in range {
                let p = scratch + slot * plan.slotFloats, d = p + layout.pFloats, r = d + layout.dFloats
                let acc = p + accOffset
                p.update(repeating: 0, count: plan.slotFloats)
                for plane in n * slot / slots * channels ..< n * (slot + 1) / slots * channels {
                    let c = plane % channels, wc = w + 9 * c, accC = acc + c * Taps3x3.floats
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
                        depthwise3x3s1Weights(layout, oH: oH, oW: oW, p: p, d: d, acc: accC)
                        if let dx { depthwise3x3s1Data(s, layout, w: wc, d: d, dx: dx + plane * inPlane) }
                    } else {
                        depthwise3x3s2Weights(layout, oH: oH, oW: oW, p: p, d: d, acc: accC)
                        if let dx { depthwise3x3s2Data(s, layout, w: wc, d: d, r: r, dx: dx + plane * inPlane) }
                    }
                }
            }
        }
        // dw[c][k] = lane sum of (slot 0's + slot 1's + … accumulator k of channel c).
        context.parallelFor(channels, minChunk: 64) { range in
            for c in range {
                for k in 0..<9 {
                    var v = SIMD8<Float>.zero
                    for slot in 0..<slots { v += load8(scratch + slot * plan.slotFloats + accOffset + c * Taps3x3.floats + 8 * k) }
                    dw[9 * c + k] = v.sum()
                }
            }
        }
    }

    // P: padded x plane (rows of pRowFloats), D: bordered dy plane -> acc (9 tap accumulators) += this plane's part.
    // Forward: y[oh][ow] = Σ_kh,kw w[kh][kw] · P[oh + kh][ow + kw]
    // so:      dw[kh][kw] += Σ_oh,ow dy[oh][ow] · P[oh + kh][ow + kw]
    // Lanes past oW read D's zeros, so whole blocks need no tail.
    private static func depthwise3x3s1Weights(_ l: DepthwiseBackwardLayout, oH: Int, oW: Int, p: UnsafePointer<Float>,
                                              d: UnsafePointer<Float>, acc: UnsafeMutablePointer<Float>) {
        var a = Taps3x3(acc)
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
        a.store(acc)
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
    // border of 1 -> acc (9 tap accumulators) += this plane's part.
    // Forward: y[oh][ow] = Σ_kh w[kh][0]·E_{2oh+kh}[ow] + w[kh][1]·O_{2oh+kh}[ow] + w[kh][2]·E_{2oh+kh}[ow + 1]
    // so:      dw[kh][0] += Σ dy[oh][ow]·E_{2oh+kh}[ow], dw[kh][1] += Σ dy·O_{2oh+kh}[ow], dw[kh][2] += Σ dy·E_{2oh+kh}[ow + 1]
    private static func depthwise3x3s2Weights(_ l: DepthwiseBackwardLayout, oH: Int, oW: Int, p: UnsafePointer<Float>,
                                              d: UnsafePointer<Float>, acc: UnsafeMutablePointer<Float>) {
        var a = Taps3x3(acc)
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
        a.store(acc)
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
