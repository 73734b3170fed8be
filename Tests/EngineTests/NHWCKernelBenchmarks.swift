import CKernels
import Foundation
import XCTest
@testable import Engine

/// Throughput of the CKernels GEMM on the reference network's pointwise shapes, beside OpenBLAS's sgemm on the same
/// shapes, and of the depthwise kernel on its depthwise layers (one thread each). Prints tables; runs only with
/// KIZUKI_BENCH=1.
final class NHWCKernelBenchmarks: XCTestCase {
    /// MobileNetV2 at 84x84 (the reference embedder): (K, M, H*W) of its 1x1 convolutions, one per distinct shape,
    /// and the first convolution as im2col (K = 9).
    static let shapes: [(k: Int, m: Int, pixels: Int)] = [
        (9, 32, 1764), (32, 16, 1764), (16, 96, 1764), (96, 24, 441), (24, 144, 441), (144, 24, 441),
        (144, 32, 121), (32, 192, 121), (192, 32, 121), (192, 64, 36), (64, 384, 36), (384, 64, 36),
        (384, 96, 36), (96, 576, 36), (576, 96, 36), (576, 160, 9), (160, 960, 9), (960, 160, 9),
        (960, 320, 9), (320, 1280, 9),
    ]

    func testGEMMThroughput() throws {
        guard ProcessInfo.processInfo.environment["KIZUKI_BENCH"] == "1" else { throw XCTSkip("set KIZUKI_BENCH=1") }
        try BLAS.loadSingleThreaded()
        let batch = Int(ProcessInfo.processInfo.environment["KIZUKI_BENCH_BATCH"] ?? "") ?? 20
        let original = kz_kernels_isa()
        defer { kz_kernels_set_isa(original) }
        let widest = kz_kernels_set_isa(2)
        var random = TestRandom(12)
        var header = "    K     M   rows"
        for isa in 0...widest {
            kz_kernels_set_isa(isa)
            header += String(repeating: " ", count: max(1, 10 - strlen(kz_kernels_isa_name()))) + String(cString: kz_kernels_isa_name())
        }
        print("GFLOP/s, one thread, batch \(batch) (kizuki: bias + ReLU6 fused; OpenBLAS \(BLAS.core): product only)")
        print(header + "  openblas best/openblas")
        var logRatio = 0.0
        for s in Self.shapes {
            let rows = batch * s.pixels
            let x = random.floats(rows * s.k), w = random.floats(s.k * s.m), bias = random.floats(s.m)
            var packed = [Float](repeating: 0, count: kz_gemm_packed_floats(Int32(s.k), Int32(s.m)))
            kz_gemm_pack(w, Int32(s.k), Int32(s.m), &packed)
            var y = [Float](repeating: 0, count: rows * s.m)
            let flops = 2.0 * Double(rows * s.k * s.m)
            // One closure per ISA, then OpenBLAS; timed in interleaved rounds so a busy neighbour hurts all alike.
            var runs: [() -> Void] = (0...widest).map { isa in
                {
                    kz_kernels_set_isa(isa)
                    kz_gemm_nhwc(x, s.k, packed, Int32(s.k), Int32(s.m), bias, nil, 0, &y, s.m, rows, 0, 6)
                }
            }
            runs.append { sgemm(m: rows, n: s.m, k: s.k, a: x, lda: s.k, b: w, ldb: s.m, c: &y, ldc: s.m) }
            let rates = seconds(runs).map { flops / $0 / 1e9 }
            let best = rates.dropLast().max()!, blas = rates.last!
            logRatio += log(best / blas)
            print(String(format: "%5d %5d %6d", s.k, s.m, rows) + rates.map { String(format: "%10.1f", $0) }.joined()
                  + String(format: " %10.2f", best / blas))
        }
        print(String(format: "geometric mean best/openblas: %.2f", exp(logRatio / Double(Self.shapes.count))))
    }

    /// MobileNetV2 at 84x84: (H = W, C, stride) of its 3x3 depthwise convolutions, one per distinct shape.
    static let depthwiseShapes: [(size: Int, c: Int, stride: Int)] = [
        (42, 32, 1), (42, 96, 2), (21, 144, 1), (21, 144, 2), (11, 192, 1), (11, 192, 2), (6, 384, 1), (6, 576, 1),
        (6, 576, 2), (3, 960, 1),
    ]

    func testDepthwiseThroughput() throws {
        guard ProcessInfo.processInfo.environment["KIZUKI_BENCH"] == "1" else { throw XCTSkip("set KIZUKI_BENCH=1") }
        let original = kz_kernels_isa()
        defer { kz_kernels_set_isa(original) }
        let widest = kz_kernels_set_isa(2)
        var random = TestRandom(13)
        let names = (0...widest).map { isa in
            kz_kernels_set_isa(isa)
            return String(cString: kz_kernels_isa_name())
        }
        print("3x3 depthwise, one image, one thread, bias + ReLU6: microseconds (GFLOP/s)")
        print("  H=W     C  s" + names.map { String(repeating: " ", count: max(1, 16 - $0.count)) + $0 }.joined())
        var totals = [Double](repeating: 0, count: names.count)
        for s in Self.depthwiseShapes {
            // ONNX "SAME_UPPER"-style pads, as the Keras export has: stride 2 pads only bottom/right on even sizes.
            let pad = s.stride == 2 && s.size % 2 == 0 ? 0 : 1
            let out = (s.size + pad + 1 - 3) / s.stride + 1
            let x = random.floats(s.size * s.size * s.c), wt = random.floats(9 * s.c), bias = random.floats(s.c)
            var y = [Float](repeating: 0, count: out * out * s.c)
            let runs: [() -> Void] = (0...widest).map { isa in
                {
                    kz_kernels_set_isa(isa)
                    kz_dwconv_nhwc(x, Int32(s.size), Int32(s.size), Int32(s.c), wt, 3, 3, Int32(s.stride), Int32(s.stride),
                                   Int32(pad), Int32(pad), bias, &y, Int32(out), Int32(out), 0, Int32(out), 0, 6)
                }
            }
            let times = seconds(runs)
            let flops = 2.0 * 9 * Double(out * out * s.c)
            for (i, t) in times.enumerated() { totals[i] += t }
            print(String(format: "%5d %5d %2d", s.size, s.c, s.stride)
                  + times.map { String(format: "%8.1f (%5.1f)", $0 * 1e6, flops / $0 / 1e9) }.joined())
        }
        print("total " + totals.map { String(format: "%.1f us", $0 * 1e6) }.joined(separator: ", "))
    }

    /// Seconds per call of each body: the best of 7 rounds, each round timing every body in turn over enough calls
    /// to last ~20 ms.
    private func seconds(_ bodies: [() -> Void]) -> [Double] {
        func time(_ body: () -> Void, _ reps: Int) -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<reps { body() }
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(reps)
        }
        let reps = bodies.map { body in max(1, Int(0.02 / max(time(body, 1), 1e-7))) }
        var best = [Double](repeating: .infinity, count: bodies.count)
        for _ in 0..<7 {
            for (i, body) in bodies.enumerated() { best[i] = min(best[i], time(body, reps[i])) }
        }
        return best
    }
}
