import Foundation
import OnnxIO

// Pools in NHWC (LayoutNHWC.swift puts them there): each output pixel is a whole channel vector, so a window's
// taps are contiguous vector maxima or sums instead of strided scalar reads of C separate planes.

// X: [N, H, W, C] (NHWC, float) -> Y: [N, OH, OW, C], Y[n, oy, ox, c] = max over the window's taps inside the input of
// X[n, oy·sH − padTop + i, ox·sW − padLeft + j, c]; a window with no tap inside gives −inf. 2-D, dilation 1, any pads,
// auto_pad or ceil_mode (WindowAttributes). The first tap seeds the maximum, then only a greater value replaces it:
// the NCHW MaxPool's rule, so a NaN in the first tap stays and a later NaN is passed over, the same in both layouts.
final class NhwcMaxPoolKernel: Kernel {
    let window: WindowAttributes
    private var geometries: [(x: [Int], g: Geometry)] = []

    struct Geometry {
        var batch = 0, height = 0, width = 0, channels = 0, outH = 0, outW = 0
        var kH = 1, kW = 1, sH = 1, sW = 1, padTop = 0, padLeft = 0
    }

    init(_ info: NodeInfo) throws {
        let ceil = try info.int("ceil_mode", 0)
        guard ceil == 0 || ceil == 1 else { throw KernelError("ceil_mode must be 0 or 1, got \(ceil)") }
        window = try WindowAttributes(info, ceilMode: ceil == 1)
        guard (window.dilations ?? [1, 1]).allSatisfy({ $0 == 1 }) else { throw KernelError("NhwcMaxPool takes no dilation") }
    }

    func geometry(_ x: [Int]) throws -> Geometry {
        if let known = geometries.first(where: { $0.x == x }) { return known.g }
        guard x.count == 4 else { throw KernelError("NhwcMaxPool needs a 4-D input, got \(x)") }
        guard let k = window.kernelShape, k.count == 2 else { throw KernelError("NhwcMaxPool needs a 2-D kernel_shape") }
        var g = Geometry()
        (g.batch, g.height, g.width, g.channels) = (x[0], x[1], x[2], x[3])
        let win = try window.resolve(input: [g.height, g.width], kernel: k)
        (g.kH, g.kW) = (k[0], k[1])
        (g.sH, g.sW) = (win.strides[0], win.strides[1])
        (g.padTop, g.padLeft) = (win.padBegin[0], win.padBegin[1])
        (g.outH, g.outW) = (win.output[0], win.output[1])
        _ = try checkedProduct([g.batch, g.outH, g.outW, g.channels, 4], "NhwcMaxPool output")
        geometries.append((x, g))
        return g
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0)
        guard x.dtype == .float else { throw KernelError("NhwcMaxPool needs float32, got \(x.dtype)", unsupported: true) }
        let g = try geometry(x.shape)
        return [ValueSpec(.float, [g.batch, g.outH, g.outW, g.channels])]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let g = try geometry(inputs.at(0).shape)
        let x = UnsafePointer(inputs.at(0).floats), y = outputs[0].floats
        let c = g.channels
        guard c > 0 else { return }
        // Work items: output rows of the whole batch.
        context.parallelFor(g.batch * g.outH, minChunk: max(1, 8192 / max(g.outW * c, 1))) { range in
            for row in range {
                let n = row / g.outH, oy = row % g.outH
                let iy0 = oy * g.sH - g.padTop
                let ky = max(0, -iy0)..<min(g.kH, g.height - iy0)
                for ox in 0..<g.outW {
                    let out = y + ((row * g.outW) + ox) * c
                    let ix0 = ox * g.sW - g.padLeft
                    let kx = max(0, -ix0)..<min(g.kW, g.width - ix0)
                    guard !ky.isEmpty, !kx.isEmpty else { out.update(repeating: -.infinity, count: c); continue }
                    var first = true
                    for i in ky {
                        let line = x + ((n * g.height + iy0 + i) * g.width + ix0) * c
                        for j in kx {
                            let tap = line + j * c
                            if first { out.update(from: tap, count: c); first = false } else { nhwcMaxInto(out, tap, c) }
                        }
                    }
                }
            }
        }
    }
}

/// out[i] = tap[i] > out[i] ? tap[i] : out[i] for i < count, eight lanes at a time.
@inline(__always)
private func nhwcMaxInto(_ out: UnsafeMutablePointer<Float>, _ tap: UnsafePointer<Float>, _ count: Int) {
    var i = 0
    while i + 8 <= count {
        let o = UnsafeRawPointer(out + i).loadUnaligned(as: SIMD8<Float>.self)
        let t = UnsafeRawPointer(tap + i).loadUnaligned(as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(out + i).storeBytes(of: o.replacing(with: t, where: t .> o), as: SIMD8<Float>.self)
        i += 8
    }
    while i < count {
        if tap[i] > out[i] { out[i] = tap[i] }
        i += 1
    }
}

// X: [N, H, W, C] (NHWC) -> Y: [N, C, 1, 1], the mean over H·W (the same memory order as [N, 1, 1, C]).
final class NhwcGlobalAveragePoolKernel: Kernel {
    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0)
        guard x.dtype == .float, x.shape.count == 4 else {
            throw KernelError("NhwcGlobalAveragePool needs a 4-D float32 input, got \(x.dtype) \(x.shape)", unsupported: true)
        }
        return [ValueSpec(.float, [x.shape[0], x.shape[3], 1, 1])]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0), y = outputs[0]
        let n = x.shape[0], pixels = x.shape[1] * x.shape[2], c = x.shape[3]
        let xp = x.floats, yp = y.floats
        let scale = pixels > 0 ? 1 / Float(pixels) : .nan
        context.parallelFor(n) { range in
            for i in range {
                let out = yp + i * c
                out.update(repeating: 0, count: c)
                for p in 0..<pixels {
                    let row = xp + (i * pixels + p) * c
                    for ch in 0..<c { out[ch] += row[ch] }
                }
                for ch in 0..<c { out[ch] *= scale }
            }
        }
    }
}
