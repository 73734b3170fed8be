import CKernels
import Foundation
import XCTest
@testable import Engine

/// The C kernels of module CKernels (packed GEMM with fused epilogue, NHWC depthwise) against plain Double loops,
/// under every instruction set this CPU has.
final class NHWCKernelTests: XCTestCase {
    /// Runs `body` once per ISA the CPU supports (0 portable, 1 AVX2, 2 AVX-512), then restores the one in use.
    private func forEachISA(_ body: (String) throws -> Void) rethrows {
        let original = kz_kernels_isa()
        defer { kz_kernels_set_isa(original) }
        let widest = kz_kernels_set_isa(2)  // lowered to what the hardware has
        for isa in 0...widest {
            XCTAssertEqual(kz_kernels_set_isa(isa), isa)
            try body(String(cString: kz_kernels_isa_name()))
        }
    }

    /// ‖got − want‖ ≤ 1e-5 ‖want‖ (plus a floor for all-zero references).
    private func assertClose(_ got: [Float], _ want: [Double], _ what: @autoclosure () -> String,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, what(), file: file, line: line)
        var diff = 0.0, norm = 0.0
        for (g, w) in zip(got, want) {
            if g.isNaN || w.isNaN { diff = .infinity; break }
            diff += (Double(g) - w) * (Double(g) - w)
            norm += w * w
        }
        XCTAssertLessThanOrEqual(diff.squareRoot(), 1e-5 * norm.squareRoot() + 1e-6, what(), file: file, line: line)
    }

    // MARK: GEMM

    struct GemmCase: CustomStringConvertible {
        var rows: Int, k: Int, m: Int
        var bias = true, residual = false, yIsR = false, clamp = false, ldxExtra = 0
        var description: String {
            "rows \(rows) K \(k) M \(m) bias \(bias) R \(residual) Y==R \(yIsR) clamp \(clamp) ldx K+\(ldxExtra)"
        }
    }

    static let gemmCases: [GemmCase] = [
        GemmCase(rows: 1, k: 1, m: 1),
        GemmCase(rows: 7, k: 0, m: 19, residual: true, clamp: true),
        GemmCase(rows: 5, k: 0, m: 16, bias: false),
        GemmCase(rows: 13, k: 1, m: 33, residual: true),
        GemmCase(rows: 6, k: 16, m: 16),
        GemmCase(rows: 37, k: 9, m: 32, clamp: true, ldxExtra: 3),
        GemmCase(rows: 29, k: 24, m: 144, residual: true, yIsR: true, clamp: true),
        GemmCase(rows: 250, k: 32, m: 24, bias: false, residual: true, ldxExtra: 5),
        GemmCase(rows: 11, k: 17, m: 1, clamp: true),
        GemmCase(rows: 131, k: 96, m: 40, residual: true, clamp: true, ldxExtra: 1),
        GemmCase(rows: 23, k: 600, m: 56, residual: true, yIsR: true, clamp: true),
        GemmCase(rows: 19, k: 513, m: 72, bias: false, clamp: true),
        GemmCase(rows: 3, k: 257, m: 8, residual: true, yIsR: true),
        GemmCase(rows: 14, k: 160, m: 960, clamp: true),
        GemmCase(rows: 26, k: 320, m: 48, residual: true, ldxExtra: 7),
        GemmCase(rows: 17, k: 40, m: 30, residual: true, clamp: true),
        GemmCase(rows: 10, k: 64, m: 46, bias: false, residual: true, yIsR: true),
        GemmCase(rows: 130, k: 300, m: 24, residual: true, clamp: true, ldxExtra: 2),
    ]

    /// kz_gemm_nhwc equals the Double reference for shapes off the tiles (M % 16 of 0, 1..7, 8 and 9..15, M over an
    /// odd number of panels), K = 0 and 1, M = 1, with and without bias, R (also Y == R), clamps, ldx > K, K split
    /// into blocks, rows over several row blocks; Y's padding columns stay untouched.
    func testGEMMMatchesReference() {
        var random = TestRandom(10)
        forEachISA { isa in
            for c in Self.gemmCases { checkGemm(c, &random, "\(isa): \(c)") }
        }
    }

    private func checkGemm(_ c: GemmCase, _ random: inout TestRandom, _ what: String) {
        let ldx = c.k + c.ldxExtra, ldy = c.m + 2
        let x = random.floats(c.rows * ldx), w = random.floats(c.k * c.m), bias = random.floats(c.m)
        let r = random.floats(c.rows * ldy)
        // Bounds around ±0.3·√K bite on a good share of the values.
        let bound = 0.3 * Float(max(c.k, 1)).squareRoot()
        let lo = c.clamp ? -bound : -Float.infinity, hi = c.clamp ? bound * 0.5 : Float.infinity
        var want = [Double](repeating: 0, count: c.rows * c.m)
        for i in 0..<c.rows {
            for j in 0..<c.m {
                var s = c.bias ? Double(bias[j]) : 0
                if c.residual { s += Double(r[i * ldy + j]) }
                for p in 0..<c.k { s += Double(x[i * ldx + p]) * Double(w[p * c.m + j]) }
                want[i * c.m + j] = min(max(s, Double(lo)), Double(hi))
            }
        }
        var packed = [Float](repeating: .nan, count: kz_gemm_packed_floats(Int32(c.k), Int32(c.m)))
        kz_gemm_pack(w, Int32(c.k), Int32(c.m), &packed)
        let sentinel: Float = 12345
        var y = c.yIsR ? r : [Float](repeating: sentinel, count: c.rows * ldy)
        if c.yIsR { for i in 0..<c.rows { for j in c.m..<ldy { y[i * ldy + j] = sentinel } } }
        y.withUnsafeMutableBufferPointer { yb in
            r.withUnsafeBufferPointer { rb in
                let rp = c.yIsR ? UnsafePointer(yb.baseAddress!) : (c.residual ? rb.baseAddress : nil)
                kz_gemm_nhwc(x, ldx, packed, Int32(c.k), Int32(c.m), c.bias ? bias : nil, rp, ldy, yb.baseAddress!, ldy,
                             c.rows, lo, hi)
            }
        }
        let got = (0..<c.rows).flatMap { i in y[(i * ldy)..<(i * ldy + c.m)] }
        assertClose(got, want, what)
        let padding = (0..<c.rows).flatMap { i in y[(i * ldy + c.m)..<((i + 1) * ldy)] }
        XCTAssertTrue(padding.allSatisfy { $0 == sentinel }, "\(what): wrote past M")
    }

    /// A NaN in X reaches Y through a clamp (ONNX Clip keeps NaN).
    func testGEMMClampKeepsNaN() {
        forEachISA { isa in
            let k = 4, m = 16
            var packed = [Float](repeating: 0, count: kz_gemm_packed_floats(Int32(k), Int32(m)))
            kz_gemm_pack([Float](repeating: 1, count: k * m), Int32(k), Int32(m), &packed)
            var y = [Float](repeating: 0, count: m)
            kz_gemm_nhwc([1, .nan, 1, 1], k, packed, Int32(k), Int32(m), nil, nil, 0, &y, m, 1, 0, 6)
            XCTAssertTrue(y.allSatisfy(\.isNaN), "\(isa): \(y)")
        }
    }

    // MARK: Depthwise

    struct DepthwiseCase: CustomStringConvertible {
        var h: Int, w: Int, c: Int, kh = 3, kw = 3, sh = 1, sw = 1, pt = 1, pl = 1, pb = 1, pr = 1
        var bias = true, clamp = false
        var oh: Int { (h + pt + pb - kh) / sh + 1 }
        var ow: Int { (w + pl + pr - kw) / sw + 1 }
        var description: String {
            "\(h)x\(w)x\(c) k \(kh)x\(kw) s \(sh),\(sw) pads t\(pt) l\(pl) b\(pb) r\(pr) bias \(bias) clamp \(clamp)"
        }
    }

    static let depthwiseCases: [DepthwiseCase] = [
        DepthwiseCase(h: 12, w: 13, c: 8),
        DepthwiseCase(h: 11, w: 17, c: 24, clamp: true),
        DepthwiseCase(h: 9, w: 9, c: 7, bias: false),
        DepthwiseCase(h: 6, w: 10, c: 1, clamp: true),
        DepthwiseCase(h: 7, w: 21, c: 144),
        DepthwiseCase(h: 14, w: 15, c: 24, sh: 2, sw: 2, pt: 0, pl: 0, pb: 1, pr: 1, clamp: true),
        DepthwiseCase(h: 13, w: 13, c: 8, sh: 2, sw: 2),
        DepthwiseCase(h: 10, w: 11, c: 9, sh: 2, sw: 2, pt: 1, pl: 0, pb: 0, pr: 1),
        DepthwiseCase(h: 8, w: 12, c: 16, pt: 0, pl: 2, pb: 2, pr: 0),
        DepthwiseCase(h: 9, w: 11, c: 20, kh: 5, kw: 5, pt: 2, pl: 2, pb: 2, pr: 2, clamp: true),
        DepthwiseCase(h: 10, w: 10, c: 8, kh: 5, kw: 5, sh: 2, sw: 2, pt: 1, pl: 2, pb: 2, pr: 1),
        DepthwiseCase(h: 1, w: 1, c: 24),
        DepthwiseCase(h: 1, w: 1, c: 8, kh: 1, kw: 1, pt: 0, pl: 0, pb: 0, pr: 0, bias: false),
        DepthwiseCase(h: 2, w: 2, c: 7, kh: 5, kw: 5, pt: 2, pl: 2, pb: 2, pr: 2),
        DepthwiseCase(h: 5, w: 7, c: 12, kh: 1, kw: 1, pt: 0, pl: 0, pb: 0, pr: 0),
        DepthwiseCase(h: 5, w: 14, c: 40, clamp: true),
        // 64-channel border passes, a 16-float vector, an 8-float one and three single lanes (AVX-512).
        DepthwiseCase(h: 9, w: 13, c: 91, clamp: true),
        DepthwiseCase(h: 11, w: 12, c: 88, sh: 2, sw: 2, pt: 0, pl: 0, pb: 1, pr: 1),
        DepthwiseCase(h: 6, w: 30, c: 16, kh: 5, kw: 5, pt: 2, pl: 2, pb: 2, pr: 2),
        DepthwiseCase(h: 7, w: 41, c: 11, kh: 5, kw: 5, sh: 2, sw: 2, pt: 1, pl: 2, pb: 2, pr: 2, clamp: true),
        DepthwiseCase(h: 9, w: 16, c: 8, kh: 3, kw: 7, sh: 3, sw: 1, pt: 0, pl: 3, pb: 0, pr: 3, clamp: true),
    ]

    /// kz_dwconv_nhwc equals the Double reference: 3x3 and 5x5, stride 1 and 2, with symmetric and asymmetric pads,
    /// rows long enough for every interior block size (8, 4, 1 pixels), 1x1 planes and kernels, other kernels (3x7
    /// stride 3), C = 1, 7, 8, 24, 40, 144 and others, clamps; computed as two row ranges, and a middle range alone
    /// writes only its rows.
    func testDepthwiseMatchesReference() {
        var random = TestRandom(11)
        forEachISA { isa in
            for c in Self.depthwiseCases { checkDepthwise(c, &random, "\(isa): \(c)") }
        }
    }

    private func checkDepthwise(_ c: DepthwiseCase, _ random: inout TestRandom, _ what: String) {
        let x = random.floats(c.h * c.w * c.c), wt = random.floats(c.kh * c.kw * c.c), bias = random.floats(c.c)
        let lo: Float = c.clamp ? -0.5 : -.infinity, hi: Float = c.clamp ? 0.8 : .infinity
        var want = [Double](repeating: 0, count: c.oh * c.ow * c.c)
        for oy in 0..<c.oh {
            for ox in 0..<c.ow {
                for ch in 0..<c.c {
                    var s = c.bias ? Double(bias[ch]) : 0
                    for i in 0..<c.kh {
                        for j in 0..<c.kw {
                            let iy = oy * c.sh - c.pt + i, ix = ox * c.sw - c.pl + j
                            guard iy >= 0, iy < c.h, ix >= 0, ix < c.w else { continue }
                            s += Double(x[(iy * c.w + ix) * c.c + ch]) * Double(wt[(i * c.kw + j) * c.c + ch])
                        }
                    }
                    want[(oy * c.ow + ox) * c.c + ch] = min(max(s, Double(lo)), Double(hi))
                }
            }
        }
        func run(_ y: inout [Float], _ oy0: Int, _ oy1: Int) {
            kz_dwconv_nhwc(x, Int32(c.h), Int32(c.w), Int32(c.c), wt, Int32(c.kh), Int32(c.kw), Int32(c.sh),
                           Int32(c.sw), Int32(c.pt), Int32(c.pl), c.bias ? bias : nil, &y, Int32(c.oh), Int32(c.ow),
                           Int32(oy0), Int32(oy1), lo, hi)
        }
        let sentinel: Float = 12345
        var y = [Float](repeating: sentinel, count: c.oh * c.ow * c.c)
        let split = c.oh / 2
        run(&y, 0, split)
        run(&y, split, c.oh)
        assertClose(y, want, what)

        guard c.oh >= 3 else { return }
        var middle = [Float](repeating: sentinel, count: c.oh * c.ow * c.c)
        run(&middle, 1, c.oh - 1)
        let rowFloats = c.ow * c.c
        XCTAssertTrue(middle[..<rowFloats].allSatisfy { $0 == sentinel } &&
                      middle[((c.oh - 1) * rowFloats)...].allSatisfy { $0 == sentinel }, "\(what): rows outside [1, OH-1)")
        assertClose(Array(middle[rowFloats..<((c.oh - 1) * rowFloats)]),
                    Array(want[rowFloats..<((c.oh - 1) * rowFloats)]), "\(what), rows 1..<OH-1")
    }
}
