import CKernels
import Foundation

// How NHWC convolutions (ConvNHWC.swift) drive the C kernels (Sources/CKernels): the packed GEMM with its fused
// epilogue, split across threads, and the depthwise convolution.

/// What the C kernels run on this CPU, for `kizuki --version` and benchmark headers.
public enum NHWCKernels {
    /// "avx2", "avx512" or "generic".
    public static var instructionSet: String { String(cString: kz_kernels_isa_name()) }
}

/// Weights [K, M] (row-major) packed once for `kz_gemm_nhwc`: 16-column panels of K x 16, the last zero-padded.
func nhwcPackGemmWeights(_ w: [Float], k: Int, m: Int) -> [Float] {
    var packed = [Float](repeating: 0, count: kz_gemm_packed_floats(Int32(k), Int32(m)))
    w.withUnsafeBufferPointer { wp in
        packed.withUnsafeMutableBufferPointer { kz_gemm_pack(wp.baseAddress, Int32(k), Int32(m), $0.baseAddress) }
    }
    return packed
}

/// Y[r, m] = post(clamp(Σ_k X[r, k] · W[k, m] + bias[m] + R[r, m], lo, hi)) for r < rows, m < M (Y and R with row
/// stride M), over the context's threads: by rows when there are enough of them, else by 16-column panels of W (late
/// layers of a small batch have few pixels and many channels).
func nhwcGemm(_ x: UnsafePointer<Float>, ldx: Int, packed: UnsafePointer<Float>, k: Int, m: Int, bias: UnsafePointer<Float>?,
              residual: UnsafePointer<Float>?, _ y: UnsafeMutablePointer<Float>, rows: Int, lo: Float, hi: Float,
              post: Activation = .none, context: RunContext) {
    let panels = (m + 15) / 16
    if context.maxChunks > 1 && rows < 48 * context.maxChunks && panels >= 2 {
        context.parallelFor(panels) { range in
            let m0 = range.lowerBound * 16, m1 = min(m, range.upperBound * 16)
            kz_gemm_nhwc(x, ldx, packed + range.lowerBound * k * 16, Int32(k), Int32(m1 - m0), bias.map { $0 + m0 },
                         residual.map { $0 + m0 }, m, y + m0, m, rows, lo, hi)
        }
        if post != .none { context.parallelFor(rows) { range in post.apply(y + range.lowerBound * m, count: range.count * m) } }
        return
    }
    // Row chunks in multiples of 48 (a whole number of the kernels' row tiles), a few per thread for balance; with a
    // post activation at most 240 rows, so the chunk is still in cache when it is applied.
    var chunk = max(48, (rows + context.maxChunks * 4 - 1) / (context.maxChunks * 4) / 48 * 48)
    if post != .none { chunk = min(chunk, 240) }
    context.parallelFor((rows + chunk - 1) / chunk) { range in
        for c in range {
            let r0 = c * chunk, r1 = min(rows, r0 + chunk)
            kz_gemm_nhwc(x + r0 * ldx, ldx, packed, Int32(k), Int32(m), bias, residual.map { $0 + r0 * m }, m, y + r0 * m, m, r1 - r0, lo, hi)
            if post != .none { post.apply(y + r0 * m, count: (r1 - r0) * m) }
        }
    }
}

/// Depthwise convolution of one image, output rows [oy0, oy1): X [H, W, C], W [kh·kw, C] → Y [OH, OW, C]
/// (see kz_dwconv_nhwc).
func nhwcDepthwise(_ x: UnsafePointer<Float>, _ g: NhwcConvGeometry, _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                   _ y: UnsafeMutablePointer<Float>, _ oy0: Int, _ oy1: Int, _ lo: Float, _ hi: Float) {
    kz_dwconv_nhwc(x, Int32(g.height), Int32(g.width), Int32(g.inC), w, Int32(g.kH), Int32(g.kW), Int32(g.sH), Int32(g.sW),
                   Int32(g.padTop), Int32(g.padLeft), bias, y, Int32(g.outH), Int32(g.outW), Int32(oy0), Int32(oy1), lo, hi)
}
