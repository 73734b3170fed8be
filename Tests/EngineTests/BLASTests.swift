import CBLAS
import XCTest
@testable import Engine

/// OpenBLAS is loaded with kernels that fit the CPU, and the GEMM entry points compute the right thing.
final class BLASTests: XCTestCase {
    /// x86 OpenBLAS cores with AVX2 (or AVX-512) kernels. Anything else on a CPU that has AVX2 is a
    /// generic fallback (Prescott, Core2, Penryn, Nehalem, Sandybridge, Atom, ...), 3-5x slower:
    /// what Debian's OpenBLAS 0.3.21 chose on its own on a Xeon of family 6 model 207.
    static let wideCores: Set<String> = ["haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"]

    func testBLASCoreUsesWideKernelsWhenTheCPUHasThem() throws {
        try BLAS.load()
        let cpu = CPUInfo.current
        guard cpu.hasWideVectors else { throw XCTSkip("\(cpu.summary): no AVX2, any core is right") }
        XCTAssertTrue(Self.wideCores.contains(BLAS.core.lowercased()),
                      "OpenBLAS runs its \(BLAS.core) kernels (\(BLAS.coreSource)) on \(cpu.summary)")
        if kizuki_blas_source() == KIZUKI_BLAS_CORE_CHOSEN {
            XCTAssertEqual(BLAS.core.lowercased(), cpu.preferredBLASCore?.lowercased(), "the core Kizuki asked for")
        }
    }

    func testCoreChoiceFollowsTheFeatures() {
        func choice(_ vendor: String, _ set: (inout kizuki_cpu_features) -> Void) -> String? {
            var features = kizuki_cpu_features()
            withUnsafeMutableBytes(of: &features.vendor) { bytes in
                for (i, c) in vendor.utf8.prefix(12).enumerated() { bytes[i] = c }
            }
            set(&features)
            return kizuki_blas_core_for(&features).map { String(cString: $0) }
        }
        func avx2(_ f: inout kizuki_cpu_features) { f.avx = true; f.fma = true; f.avx2 = true }
        func avx512(_ f: inout kizuki_cpu_features) {
            avx2(&f); f.avx512f = true; f.avx512vl = true; f.avx512bw = true; f.avx512dq = true; f.avx512cd = true
        }
        XCTAssertNil(choice("GenuineIntel") { $0.sse3 = true; $0.avx = true }, "no AVX2: OpenBLAS decides")
        XCTAssertNil(choice("GenuineIntel") { $0.avx2 = true }, "AVX2 without FMA: OpenBLAS decides")
        XCTAssertEqual(choice("GenuineIntel", avx2), "Haswell")
        XCTAssertEqual(choice("AuthenticAMD", avx2), "Zen")
        XCTAssertEqual(choice("HygonGenuine", avx2), "Zen")
        XCTAssertEqual(choice("GenuineIntel", avx512), "SkylakeX")
        XCTAssertEqual(choice("GenuineIntel") { avx512(&$0); $0.avx512_bf16 = true; $0.amx_tile = true }, "Cooperlake")
        XCTAssertEqual(choice("AuthenticAMD") { avx512(&$0); $0.avx512_bf16 = true }, "Cooperlake", "Zen 4")
        XCTAssertEqual(choice("GenuineIntel") { avx2(&$0); $0.avx512f = true }, "Haswell", "AVX-512F alone is not enough")
    }

    /// The features CPUID reports agree with the kernel's view in /proc/cpuinfo.
    func testFeaturesAgreeWithTheKernel() throws {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flagsLine = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else {
            throw XCTSkip("no /proc/cpuinfo")
        }
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        let features = Set(CPUInfo.current.features)
        for (ours, kernels) in [("avx2", "avx2"), ("fma", "fma"), ("avx512f", "avx512f"), ("avx512bw", "avx512bw"),
                                ("avx512vl", "avx512vl"), ("avx512_bf16", "avx512_bf16"), ("amx_tile", "amx_tile")] {
            XCTAssertEqual(features.contains(ours), flags.contains(kernels), ours)
        }
    }

    /// The threaded entry points (sgemm: the k-NN search; dgemm: the PCA baseline) against a float64 triple
    /// loop, on shapes that split over threads and shapes that do not, with and without transposes.
    func testThreadedGemmsMatchReference() throws {
        try checkThreadedGemm(Float.self, tolerancePerTerm: 1e-4) {
            try BLAS.sgemm(threads: $0, transA: $1, transB: $2, m: $3, n: $4, k: $5, a: $6, lda: $7, b: $8, ldb: $9, c: &$10, ldc: $11)
        }
        try checkThreadedGemm(Double.self, tolerancePerTerm: 1e-14) {
            try BLAS.dgemm(threads: $0, transA: $1, transB: $2, m: $3, n: $4, k: $5, a: $6, lda: $7, b: $8, ldb: $9, c: &$10, ldc: $11)
        }
    }

    typealias ThreadedGemm<T> = (Int, Bool, Bool, Int, Int, Int, [T], Int, [T], Int, inout [T], Int) throws -> Void

    func checkThreadedGemm<T: BinaryFloatingPoint>(_: T.Type, tolerancePerTerm: Double, _ gemm: ThreadedGemm<T>) throws {
        var random = TestRandom(7)
        for (m, n, k, transA, transB) in [(37, 300, 64, false, true), (5, 7, 3, true, false), (64, 129, 128, true, true), (1, 1000, 128, false, true)] {
            let a = random.floats(m * k).map { T($0) }, b = random.floats(k * n).map { T($0) }
            for threads in [1, 2, 4] {
                var c = [T](repeating: .nan, count: m * n)
                try gemm(threads, transA, transB, m, n, k, a, transA ? m : k, b, transB ? k : n, &c, n)
                for i in 0..<m {
                    for j in 0..<n {
                        var expected = 0.0
                        for p in 0..<k {
                            expected += Double(transA ? a[p * m + i] : a[i * k + p]) * Double(transB ? b[j * k + p] : b[p * n + j])
                        }
                        XCTAssertEqual(Double(c[i * n + j]), expected, accuracy: tolerancePerTerm * Double(k),
                                       "\(T.self) \(m)x\(n)x\(k) [\(i),\(j)] on \(threads) threads")
                    }
                }
            }
        }
    }

    /// OpenBLAS takes 32-bit sizes; a leading dimension beyond Int32.max (reachable within a large memory
    /// budget) used to trap converting it. With one row only row 0 is ever read, so the test needs no memory.
    func testLeadingDimensionsBeyond32BitsTakeThePlainLoop() throws {
        try BLAS.load()
        let huge = Int(Int32.max) + 5
        let a: [Float] = [1.5, -2, 4], b: [Float] = [2, 0.25, -1]
        var c: [Float] = [7]
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                c.withUnsafeMutableBufferPointer { c in
                    sgemm(m: 1, n: 1, k: 3, a: a.baseAddress!, lda: huge, b: b.baseAddress!, ldb: 1, c: c.baseAddress!, ldc: huge)
                }
            }
        }
        XCTAssertEqual(c[0], 1.5 * 2 - 2 * 0.25 - 4)
    }
}
