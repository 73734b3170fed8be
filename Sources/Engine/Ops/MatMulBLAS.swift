import CBLAS
import Foundation

// Thin wrappers over OpenBLAS (loaded by module CBLAS) for row-major matrices, shared by MatMul, Gemm,
// Conv, and the k-NN and PCA baselines of module Anomaly.
// They handle the degenerate sizes BLAS rejects (an empty product, leading dimensions of 0).

/// C[m,n] = alpha · op(A)[m,k] · op(B)[k,n] + beta · C, all row-major.
@inline(__always)
func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
           beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
}

/// Double-precision twin of `sgemm`.
@inline(__always)
func dgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Double = 1,
           a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
           beta: Double = 0, c: UnsafeMutablePointer<Double>, ldc: Int) {
    gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
}

/// Float and Double, the element types of OpenBLAS's gemm: each names its C entry point, so the size
/// handling here and the threaded split below are written once for both.
protocol GemmScalar: BinaryFloatingPoint {
    typealias CGemm = (Bool, Bool, Int32, Int32, Int32, Self, UnsafePointer<Self>?, Int32, UnsafePointer<Self>?, Int32,
                       Self, UnsafeMutablePointer<Self>?, Int32) -> Void
    static var cGemm: CGemm { get }
}

extension Float: GemmScalar { static var cGemm: CGemm { kizuki_sgemm } }
extension Double: GemmScalar { static var cGemm: CGemm { kizuki_dgemm } }

/// `sgemm` and `dgemm` on one thread.
@inline(__always)
func gemm<T: GemmScalar>(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: T,
                         a: UnsafePointer<T>, lda: Int, b: UnsafePointer<T>, ldb: Int,
                         beta: T, c: UnsafeMutablePointer<T>, ldc: Int) {
    if gemmWithoutBLAS(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                       beta: beta, c: c, ldc: ldc) { return }
    T.cGemm(transA, transB, Int32(m), Int32(n), Int32(k), alpha, a, Int32(max(lda, 1)), b, Int32(max(ldb, 1)),
            beta, c, Int32(max(ldc, 1)))
}

/// Does what OpenBLAS cannot, and returns true when it did: an empty product (C = beta · C; beta 0 clears,
/// so NaNs in C do not survive) and sizes beyond OpenBLAS's 32-bit integers (a plain loop).
@inline(__always)
private func gemmWithoutBLAS<T: BinaryFloatingPoint>(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: T,
                                                     a: UnsafePointer<T>, lda: Int, b: UnsafePointer<T>, ldb: Int,
                                                     beta: T, c: UnsafeMutablePointer<T>, ldc: Int) -> Bool {
    if m == 0 || n == 0 { return true }
    if k == 0 || alpha == 0 {
        for i in 0..<m {
            let row = c + i * ldc
            if beta == 0 { row.update(repeating: 0, count: n) } else if beta != 1 { for j in 0..<n { row[j] *= beta } }
        }
        return true
    }
    guard fitsBLASInt(m, n, k, lda, ldb, ldc) else {
        naiveGemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                  beta: beta, c: c, ldc: ldc)
        return true
    }
    return false
}

/// OpenBLAS takes 32-bit sizes. Within a large memory budget a model can still ask for a product with a
/// side of 2^31 or more (MatMul [2^31, 1] x [1, 1] is 8 GiB); such degenerate shapes take the plain loop.
@inline(__always)
private func fitsBLASInt(_ m: Int, _ n: Int, _ k: Int, _ lda: Int, _ ldb: Int, _ ldc: Int) -> Bool {
    let limit = Int(Int32.max)
    return m <= limit && n <= limit && k <= limit && lda <= limit && ldb <= limit && ldc <= limit
}

/// C = alpha · op(A) · op(B) + beta · C without BLAS, for sizes BLAS cannot address.
private func naiveGemm<T: BinaryFloatingPoint>(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: T,
                                               a: UnsafePointer<T>, lda: Int, b: UnsafePointer<T>, ldb: Int,
                                               beta: T, c: UnsafeMutablePointer<T>, ldc: Int) {
    for i in 0..<m {
        for j in 0..<n {
            var sum: T = 0
            for p in 0..<k { sum += (transA ? a[p * lda + i] : a[i * lda + p]) * (transB ? b[j * ldb + p] : b[p * ldb + j]) }
            c[i * ldc + j] = alpha * sum + (beta == 0 ? 0 : beta * c[i * ldc + j])
        }
    }
}

/// `sgemm` split over the session's threads by columns of C: OpenBLAS runs single-threaded (the
/// engine owns all parallelism, so BLAS threads never spin against the pool's), and each thread
/// computes C[:, lo..<hi] = op(A) · op(B)[:, lo..<hi]. Small products stay on one thread.
func sgemm(context: RunContext, transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
           beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    gemm(context: context, transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
         beta: beta, c: c, ldc: ldc)
}

/// The threaded split of `sgemm(context:)`, for either element type.
func gemm<T: GemmScalar>(context: RunContext, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: T,
                         a: UnsafePointer<T>, lda: Int, b: UnsafePointer<T>, ldb: Int,
                         beta: T, c: UnsafeMutablePointer<T>, ldc: Int) {
    // Below ~128 KFLOP per thread the split costs more than it saves; keep columns in 16s (cache lines).
    let blocks = n / 16
    let flopsPerColumn = 2 * m * k
    guard context.threads > 1, blocks >= 2, flopsPerColumn * n >= 1 << 18 else {
        gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        return
    }
    context.parallelFor(blocks, minChunk: max(1, (1 << 17) / max(flopsPerColumn * 16, 1))) { range in
        let lo = range.lowerBound * 16, hi = range.upperBound == blocks ? n : range.upperBound * 16
        gemm(transA: transA, transB: transB, m: m, n: hi - lo, k: k, alpha: alpha, a: a, lda: lda,
             b: transB ? b + lo * ldb : b + lo, ldb: ldb, beta: beta, c: c + lo, ldc: ldc)
    }
}

extension BLAS {
    /// Row-major C[m,n] = op(A)[m,k] · op(B)[k,n] split over `threads` threads of the engine's pool
    /// (as kernels do), for callers outside a session such as the k-NN search. OpenBLAS stays on one
    /// thread: its own threads would spin against the pool's, and its thread count is process-wide.
    public static func sgemm(threads: Int, transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                             a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                             c: UnsafeMutablePointer<Float>, ldc: Int) throws {
        try gemm(threads: threads, transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc)
    }

    /// Double-precision twin of `sgemm(threads:)`, for float64 statistics such as the PCA baseline's covariance.
    public static func dgemm(threads: Int, transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                             a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
                             c: UnsafeMutablePointer<Double>, ldc: Int) throws {
        try gemm(threads: threads, transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc)
    }

    private static func gemm<T: GemmScalar>(threads: Int, transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                                            a: UnsafePointer<T>, lda: Int, b: UnsafePointer<T>, ldb: Int,
                                            c: UnsafeMutablePointer<T>, ldc: Int) throws {
        try loadSingleThreaded()
        Engine.gemm(context: RunContext(threads: max(1, threads), scratch: nil), transA: transA, transB: transB,
                    m: m, n: n, k: k, alpha: 1, a: a, lda: lda, b: b, ldb: ldb, beta: 0, c: c, ldc: ldc)
    }
}
