import Foundation

// Depthwise convolution (group == C == M, one k×k filter per channel) as direct SIMD loops, parallel
// over planes. Each input plane is first copied into a zero-bordered buffer so the loops never test
// bounds. Row kernels: 3×3 stride 1 (two output rows per step), 3×3 stride 2 (rows stored as even then
// odd columns), and a generic loop. Small planes at stride 1 use the flattened-plane path at the end.

/// Eight floats from any address (the conv family's SIMD loops read at every offset).
@inline(__always) func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always) private func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}

/// Stores the first `count` (≤ 8) lanes. The partial case goes through memory on purpose: indexing
/// lanes dynamically (v[i]) would make the compiler split every vector of the caller into halves.
@inline(__always) func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
    if count >= 8 {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
    } else {
        withUnsafeBytes(of: v) { raw in
            let lanes = raw.baseAddress!.assumingMemoryBound(to: Float.self)
            for i in 0..<count { p[i] = lanes[i] }
        }
    }
}

/// Copies an input row into a deinterleaved padded row: padded column c = pad + i goes to
/// row[c / 2] when c is even and to row[half + c / 2] when odd.
@inline(__always) func copyDeinterleaved(_ row: UnsafeMutablePointer<Float>, half: Int, _ src: UnsafePointer<Float>,
                                         _ count: Int, pad: Int) {
    // Input index i lands in the even half when pad + i is even.
    let evenBase = row + (pad + 1) / 2, oddBase = row + half + pad / 2
    // Inputs with i even go to `first`, odd i to `second` (which half depends on the parity of pad).
    let first = pad % 2 == 0 ? evenBase : oddBase, second = pad % 2 == 0 ? oddBase : evenBase
    var i = 0
    while i + 16 <= count {
        let v = load16(src + i)
        UnsafeMutableRawPointer(first + i / 2).storeBytes(of: v.evenHalf, as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(second + i / 2).storeBytes(of: v.oddHalf, as: SIMD8<Float>.self)
        i += 16
    }
    while i < count {
        if i % 2 == 0 { first[i / 2] = src[i] } else { second[i / 2] = src[i] }
        i += 1
    }
}

extension ConvKernel {
    // X: [N,C,H,W] (or [N,C,L]), W: [C,1,kH,kW], B: [C] -> Y: [N,C,oH,oW]
    func convDepthwise(_ g: ConvGeometry, x: UnsafePointer<Float>, w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                       y: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, context: RunContext) {
        let planes = g.batch * g.inC
        let slots = g.depthwiseSlots
        let wp = g.depthwisePaddedWidth, planeFloats = g.depthwisePlaneFloats
        let act = activation
        // parallelFor hands each chunk a contiguous range of slots; the chunk uses the buffer of its
        // first slot and processes the planes of all its slots.
        context.parallelFor(slots) { slotRange in
            let buf = scratch + slotRange.lowerBound * planeFloats
            buf.update(repeating: 0, count: planeFloats)
            let first = planes * slotRange.lowerBound / slots, last = planes * slotRange.upperBound / slots
            for p in first..<last {
                let c = p % g.inC
                let src = x + p * g.inSpatial
                if g.depthwiseDeinterleaved {
                    for ih in 0..<g.inH { copyDeinterleaved(buf + (g.pH + ih) * wp, half: wp / 2, src + ih * g.inW, g.inW, pad: g.pW) }
                } else {
                    for ih in 0..<g.inH { (buf + (g.pH + ih) * wp + g.pW).update(from: src + ih * g.inW, count: g.inW) }
                }
                depthwisePlane(g, padded: UnsafePointer(buf), wp: wp, w: w + c * g.kH * g.kW, bias: bias?[c] ?? 0,
                               y: y + p * g.outSpatial, act)
            }
        }
    }

    private func depthwisePlane(_ g: ConvGeometry, padded: UnsafePointer<Float>, wp: Int, w: UnsafePointer<Float>, bias: Float,
                                y: UnsafeMutablePointer<Float>, _ act: FusedActivation) {
        if g.kH == 3 && g.kW == 3 && g.dH == 1 && g.dW == 1 {
            if g.sH == 1 && g.sW == 1 { return depthwise3x3s1(g, padded, wp, w, bias, y, act) }
            if g.sH == 2 && g.sW == 2 { return depthwise3x3s2(g, padded, wp, w, bias, y, act) }
        }
        depthwiseGeneric(g, padded, wp, w, bias, y, act)
    }

    private func depthwise3x3s1(_ g: ConvGeometry, _ padded: UnsafePointer<Float>, _ wp: Int, _ w: UnsafePointer<Float>,
                                _ bias: Float, _ y: UnsafeMutablePointer<Float>, _ act: FusedActivation) {
        let w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6], w7 = w[7], w8 = w[8]
        let bounds = act.bounds
        let lo = SIMD8<Float>(repeating: bounds?.lo ?? 0), hi = SIMD8<Float>(repeating: bounds?.hi ?? 0)
        let oW = g.oW
        // Two output rows per step: they share two input rows, and their two accumulation chains
        // are independent, which hides FMA latency.
        var oh = 0
        while oh + 2 <= g.oH {
            let r0 = padded + oh * wp, r1 = r0 + wp, r2 = r1 + wp, r3 = r2 + wp
            let out0 = y + oh * oW, out1 = out0 + oW
            var ox = 0
            while ox < oW {
                var a = SIMD8<Float>(repeating: bias), b = a
                var v = load8(r0 + ox); a.addProduct(v, w0)
                v = load8(r0 + ox + 1); a.addProduct(v, w1)
                v = load8(r0 + ox + 2); a.addProduct(v, w2)
                v = load8(r1 + ox); a.addProduct(v, w3); b.addProduct(v, w0)
                v = load8(r1 + ox + 1); a.addProduct(v, w4); b.addProduct(v, w1)
                v = load8(r1 + ox + 2); a.addProduct(v, w5); b.addProduct(v, w2)
                v = load8(r2 + ox); a.addProduct(v, w6); b.addProduct(v, w3)
                v = load8(r2 + ox + 1); a.addProduct(v, w7); b.addProduct(v, w4)
                v = load8(r2 + ox + 2); a.addProduct(v, w8); b.addProduct(v, w5)
                v = load8(r3 + ox); b.addProduct(v, w6)
                v = load8(r3 + ox + 1); b.addProduct(v, w7)
                v = load8(r3 + ox + 2); b.addProduct(v, w8)
                if bounds != nil {
                    a = clamp8(a, lo, hi)
                    b = clamp8(b, lo, hi)
                }
                store8(a, out0 + ox, oW - ox)
                store8(b, out1 + ox, oW - ox)
                ox += 8
            }
            oh += 2
        }
        if oh < g.oH {
            let r0 = padded + oh * wp, r1 = r0 + wp, r2 = r1 + wp
            let out = y + oh * oW
            var ox = 0
            while ox < oW {
                var acc = SIMD8<Float>(repeating: bias)
                acc.addProduct(load8(r0 + ox), w0)
                acc.addProduct(load8(r0 + ox + 1), w1)
                acc.addProduct(load8(r0 + ox + 2), w2)
                acc.addProduct(load8(r1 + ox), w3)
                acc.addProduct(load8(r1 + ox + 1), w4)
                acc.addProduct(load8(r1 + ox + 2), w5)
                acc.addProduct(load8(r2 + ox), w6)
                acc.addProduct(load8(r2 + ox + 1), w7)
                acc.addProduct(load8(r2 + ox + 2), w8)
                if bounds != nil { acc = clamp8(acc, lo, hi) }
                store8(acc, out + ox, oW - ox)
                ox += 8
            }
        }
    }

    /// 3×3 stride 2 over deinterleaved rows (even columns, then odd columns, each `wp / 2` long).
    private func depthwise3x3s2(_ g: ConvGeometry, _ padded: UnsafePointer<Float>, _ wp: Int, _ w: UnsafePointer<Float>,
                                _ bias: Float, _ y: UnsafeMutablePointer<Float>, _ act: FusedActivation) {
        let w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6], w7 = w[7], w8 = w[8]
        let bounds = act.bounds
        let lo = SIMD8<Float>(repeating: bounds?.lo ?? 0), hi = SIMD8<Float>(repeating: bounds?.hi ?? 0)
        let b8 = SIMD8<Float>(repeating: bias)
        let oW = g.oW, half = wp / 2
        for oh in 0..<g.oH {
            let e0 = padded + 2 * oh * wp, e1 = e0 + wp, e2 = e1 + wp
            let o0 = e0 + half, o1 = e1 + half, o2 = e2 + half
            let out = y + oh * oW
            var ox = 0
            while ox < oW {
                // Output lane j reads padded columns 2(ox+j), 2(ox+j)+1, 2(ox+j)+2 = E[ox+j], O[ox+j], E[ox+j+1].
                var a0 = b8, a1 = SIMD8<Float>.zero, a2 = SIMD8<Float>.zero
                a0.addProduct(load8(e0 + ox), w0)
                a1.addProduct(load8(e1 + ox), w3)
                a2.addProduct(load8(e2 + ox), w6)
                a0.addProduct(load8(o0 + ox), w1)
                a1.addProduct(load8(o1 + ox), w4)
                a2.addProduct(load8(o2 + ox), w7)
                a0.addProduct(load8(e0 + ox + 1), w2)
                a1.addProduct(load8(e1 + ox + 1), w5)
                a2.addProduct(load8(e2 + ox + 1), w8)
                var acc = a0 + a1 + a2
                if bounds != nil { acc = clamp8(acc, lo, hi) }
                store8(acc, out + ox, oW - ox)
                ox += 8
            }
        }
    }

    /// Any kernel size, stride and dilation: accumulate one filter tap at a time into each output row.
    private func depthwiseGeneric(_ g: ConvGeometry, _ padded: UnsafePointer<Float>, _ wp: Int, _ w: UnsafePointer<Float>,
                                  _ bias: Float, _ y: UnsafeMutablePointer<Float>, _ act: FusedActivation) {
        let oW = g.oW
        for oh in 0..<g.oH {
            let out = y + oh * oW
            out.update(repeating: bias, count: oW)
            for kh in 0..<g.kH {
                let row = padded + (oh * g.sH + kh * g.dH) * wp
                for kw in 0..<g.kW {
                    let wv = w[kh * g.kW + kw]
                    let src = row + kw * g.dW
                    if g.sW == 1 {
                        var ox = 0
                        while ox + 8 <= oW {
                            var acc = UnsafeRawPointer(out + ox).loadUnaligned(as: SIMD8<Float>.self)
                            acc.addProduct(load8(src + ox), wv)
                            UnsafeMutableRawPointer(out + ox).storeBytes(of: acc, as: SIMD8<Float>.self)
                            ox += 8
                        }
                        while ox < oW { out[ox] += wv * src[ox]; ox += 1 }
                    } else {
                        for ox in 0..<oW { out[ox] += wv * src[ox * g.sW] }
                    }
                }
            }
            if act != .none { convEpilogue(out, oW, bias: 0, act) }
        }
    }
}

extension ConvKernel {
    // Depthwise over small planes, stride 1: X: [N,C,H,W], W: [C,1,kH,kW], B: [C] -> Y: [N,C,oH,oW]
    // Rows of a few pixels leave most SIMD lanes idle and every row ends in a partial store. Instead,
    // each plane is copied into a zero-padded plane of width Wf and treated as one flat row: flat output
    // i = oh·Wf + ow is Σ w[kh,kw]·P[i + kh·Wf + kw], contiguous in i, so whole 8-wide blocks run over
    // all rows at once. The columns ow ≥ oW are computed too and dropped when copying out.
    func convDepthwiseFlat(_ g: ConvGeometry, x: UnsafePointer<Float>, w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                           y: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, context: RunContext) {
        let planes = g.batch * g.inC
        let slots = g.depthwiseSlots, slotFloats = g.flatPlaneFloats
        let wf = g.flatWidth, flat = g.flatOutputs, taps = g.kH * g.kW
        let inFloats = g.flatInputFloats, batch = ConvGeometry.flatBatch
        let inputEnd = x + planes * g.inSpatial
        let bounds = activation.bounds
        let lo = SIMD8<Float>(repeating: bounds?.lo ?? 0), hi = SIMD8<Float>(repeating: bounds?.hi ?? 0)
        let lanes = SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7), rowEnd = SIMD8<Int32>(repeating: Int32(g.inW))
        context.parallelFor(slots) { slotRange in
            let base = scratch + slotRange.lowerBound * slotFloats
            let outs = base + batch * inFloats
            base.update(repeating: 0, count: batch * inFloats)
            let first = planes * slotRange.lowerBound / slots, last = planes * slotRange.upperBound / slots
            // Planes go through copy-in, compute and copy-out in groups: the compute's unaligned loads
            // then read stores that have long left the store buffer (loads overlapping two recent
            // stores cannot be forwarded and stall).
            var p0 = first
            while p0 < last {
                let count = min(batch, last - p0)
                for k in 0..<count {
                    // Copy in. Rows of ≤ 8 go as one vector with the lanes past the row zeroed: those land
                    // on padding, or on the next row's cells, which its own copy then overwrites.
                    let src = x + (p0 + k) * g.inSpatial, buf = base + k * inFloats
                    for ih in 0..<g.inH {
                        let from = src + ih * g.inW, to = buf + (g.pH + ih) * wf + g.pW
                        if g.inW <= 8 && from + 8 <= inputEnd {
                            var v = load8(from)
                            v.replace(with: 0, where: lanes .>= rowEnd)
                            UnsafeMutableRawPointer(to).storeBytes(of: v, as: SIMD8<Float>.self)
                        } else {
                            for iw in 0..<g.inW { to[iw] = from[iw] }
                        }
                    }
                }
                for k in 0..<count {
                    let c = (p0 + k) % g.inC
                    let buf = base + k * inFloats, out = outs + k * flat
                    let wc = w + c * taps
                    let b = bias?[c] ?? 0
                    if g.kH == 3 && g.kW == 3 {
                        ConvKernel.flat3x3(buf, wf, wc, b, out, flat, bounds != nil, lo, hi)
                    } else {
                        var i = 0
                        while i < flat {
                            var acc = SIMD8<Float>(repeating: b)
                            for kh in 0..<g.kH {
                                for kw in 0..<g.kW { acc.addProduct(load8(buf + i + kh * wf + kw), wc[kh * g.kW + kw]) }
                            }
                            if bounds != nil { acc = clamp8(acc, lo, hi) }
                            UnsafeMutableRawPointer(out + i).storeBytes(of: acc, as: SIMD8<Float>.self)
                            i += 8
                        }
                    }
                }
                for k in 0..<count {
                    // Copy out the oW valid columns of each flat row.
                    let out = outs + k * flat, dst = y + (p0 + k) * g.outSpatial
                    for oh in 0..<g.oH {
                        let from = out + oh * wf, to = dst + oh * g.oW
                        if g.oW <= 8 && oh * g.oW + 8 <= g.outSpatial {
                            // Spills into the following rows of this plane, which are written after this one.
                            UnsafeMutableRawPointer(to).storeBytes(of: load8(from), as: SIMD8<Float>.self)
                        } else {
                            for ow in 0..<g.oW { to[ow] = from[ow] }
                        }
                    }
                }
                p0 += count
            }
        }
    }

    /// Flat 3×3: out[i] = b + Σ w[kh·3 + kw]·P[i + kh·wf + kw] for i in 0..<count (a multiple of 8).
    @inline(__always)
    static func flat3x3(_ p: UnsafePointer<Float>, _ wf: Int, _ w: UnsafePointer<Float>, _ b: Float,
                        _ out: UnsafeMutablePointer<Float>, _ count: Int, _ clamp: Bool, _ lo: SIMD8<Float>, _ hi: SIMD8<Float>) {
        let w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6], w7 = w[7], w8 = w[8]
        let r1 = p + wf, r2 = p + 2 * wf
        var i = 0
        let b8 = SIMD8<Float>(repeating: b)
        while i < count {
            // One accumulator per kernel row: three short chains instead of one of nine dependent FMAs
            // (a plane has only a couple of blocks, too few to hide the latency otherwise).
            var a0 = b8, a1 = SIMD8<Float>.zero, a2 = SIMD8<Float>.zero
            a0.addProduct(load8(p + i), w0)
            a1.addProduct(load8(r1 + i), w3)
            a2.addProduct(load8(r2 + i), w6)
            a0.addProduct(load8(p + i + 1), w1)
            a1.addProduct(load8(r1 + i + 1), w4)
            a2.addProduct(load8(r2 + i + 1), w7)
            a0.addProduct(load8(p + i + 2), w2)
            a1.addProduct(load8(r1 + i + 2), w5)
            a2.addProduct(load8(r2 + i + 2), w8)
            var acc = a0 + a1 + a2
            if clamp { acc = clamp8(acc, lo, hi) }
            UnsafeMutableRawPointer(out + i).storeBytes(of: acc, as: SIMD8<Float>.self)
            i += 8
        }
    }
}
