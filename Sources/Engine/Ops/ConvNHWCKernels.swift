import Foundation

// The two inner kernels of NHWC convolutions (ConvNHWC.swift), one thread each.

/// Y[r, m] = clamp(Σ_k X[r, k] · W[k, m] + bias[m] + R[r, m], lo, hi) for r < rows, m < M.
/// X: rows × K (row stride ldx); W: [K, M] row-major; R: rows × M or nil; Y: rows × M. Y never aliases X or R.
func nhwcGemm(_ x: UnsafePointer<Float>, ldx: Int, _ w: UnsafePointer<Float>, k: Int, m: Int, bias: UnsafePointer<Float>?,
              residual: UnsafePointer<Float>?, _ y: UnsafeMutablePointer<Float>, rows: Int, lo: Float, hi: Float) {
    sgemm(m: rows, n: m, k: k, a: x, lda: ldx, b: w, ldb: m, c: y, ldc: m)
    nhwcEpilogue(y, rows: rows, m: m, bias: bias, residual: residual, lo: lo, hi: hi)
}

/// Y[r, m] = clamp(Y[r, m] + bias[m] + R[r, m], lo, hi), 8 lanes at a time.
func nhwcEpilogue(_ y: UnsafeMutablePointer<Float>, rows: Int, m: Int, bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?,
                  lo: Float, hi: Float) {
    if bias == nil && residual == nil && lo == -.infinity && hi == .infinity { return }
    let lo8 = SIMD8<Float>(repeating: lo), hi8 = SIMD8<Float>(repeating: hi)
    let yr = UnsafeMutableRawPointer(y)
    for r in 0..<rows {
        var j = 0
        while j + 8 <= m {
            let at = (r * m + j) * 4
            var v = yr.loadUnaligned(fromByteOffset: at, as: SIMD8<Float>.self)
            if let bias { v += UnsafeRawPointer(bias).loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self) }
            if let residual { v += UnsafeRawPointer(residual).loadUnaligned(fromByteOffset: at, as: SIMD8<Float>.self) }
            yr.storeBytes(of: clamp8(v, lo8, hi8), toByteOffset: at, as: SIMD8<Float>.self)
            j += 8
        }
        while j < m {
            var v = y[r * m + j] + (bias?[j] ?? 0) + (residual?[r * m + j] ?? 0)
            v = Swift.min(Swift.max(v, lo), hi)
            y[r * m + j] = v
            j += 1
        }
    }
}

/// Depthwise convolution of one image, output rows [oy0, oy1): X [H, W, C], W [kh·kw, C] → Y [OH, OW, C],
/// Y[oy, ox, c] = clamp(bias[c] + Σ_{i,j} X[oy·sh − pt + i, ox·sw − pl + j, c] · W[i·kw + j, c], lo, hi), zero padding.
func nhwcDepthwise(_ x: UnsafePointer<Float>, _ g: NhwcConvGeometry, _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                   _ y: UnsafeMutablePointer<Float>, _ oy0: Int, _ oy1: Int, _ lo: Float, _ hi: Float) {
    let c = g.inC
    for oy in oy0..<oy1 {
        for ox in 0..<g.outW {
            let out = y + (oy * g.outW + ox) * c
            for ch in 0..<c { out[ch] = bias?[ch] ?? 0 }
            for i in 0..<g.kH {
                let iy = oy * g.sH - g.padTop + i
                if iy < 0 || iy >= g.height { continue }
                for j in 0..<g.kW {
                    let ix = ox * g.sW - g.padLeft + j
                    if ix < 0 || ix >= g.width { continue }
                    let xp = x + (iy * g.width + ix) * c, wp = w + (i * g.kW + j) * c
                    for ch in 0..<c { out[ch] += xp[ch] * wp[ch] }
                }
            }
            for ch in 0..<c { out[ch] = Swift.min(Swift.max(out[ch], lo), hi) }
        }
    }
}
