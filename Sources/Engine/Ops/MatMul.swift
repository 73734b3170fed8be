import Foundation
import OnnxIO

extension OpRegistry {
    static let matmulOps: [String: KernelFactory] = [
        "MatMul": { _ in MatMulKernel() },
        "Gemm": { info in try GemmKernel(info) },
    ]
}

/// Broadcast of two batch shapes (NumPy rules), or nil when they do not broadcast.
func matmulBroadcastShapes(_ a: [Int], _ b: [Int]) -> [Int]? {
    let r = max(a.count, b.count)
    let pa = Array(repeating: 1, count: r - a.count) + a, pb = Array(repeating: 1, count: r - b.count) + b
    var out: [Int] = []
    for (x, y) in zip(pa, pb) {
        if x == y || y == 1 { out.append(x) } else if x == 1 { out.append(y) } else { return nil }
    }
    return out
}

/// Row-major element strides of `shape` right-aligned to `rank`, 0 on broadcast (size-1 or missing) axes.
func matmulBroadcastStrides(_ shape: [Int], rank: Int, elementStride: Int) -> [Int] {
    let padded = Array(repeating: 1, count: rank - shape.count) + shape
    var strides = [Int](repeating: 0, count: rank)
    var s = elementStride
    for i in stride(from: rank - 1, through: 0, by: -1) {
        strides[i] = padded[i] == 1 ? 0 : s
        s *= padded[i]
    }
    return strides
}

// A: [..., M, K] (or [K]), B: [..., K, N] (or [K]) -> Y: [broadcast(...), M, N] (1-D operands' axes dropped)
final class MatMulKernel: Kernel {
    struct Dims {
        var m = 0, k = 0, n = 0
        var batchA: [Int] = [], batchB: [Int] = [], batch: [Int] = []
        var outputShape: [Int] = []
    }

    static func dims(_ a: [Int], _ b: [Int]) throws -> Dims {
        guard !a.isEmpty, !b.isEmpty else { throw KernelError("MatMul operands must have rank ≥ 1, got \(a) and \(b)") }
        var d = Dims()
        let a2 = a.count == 1 ? [1, a[0]] : a
        let b2 = b.count == 1 ? [b[0], 1] : b
        d.m = a2[a2.count - 2]; d.k = a2[a2.count - 1]; d.n = b2[b2.count - 1]
        guard b2[b2.count - 2] == d.k else {
            throw KernelError("MatMul inner dimensions differ: \(a) × \(b) (\(d.k) vs \(b2[b2.count - 2]))")
        }
        d.batchA = Array(a2.dropLast(2)); d.batchB = Array(b2.dropLast(2))
        guard let batch = matmulBroadcastShapes(d.batchA, d.batchB) else {
            throw KernelError("MatMul batch dimensions \(d.batchA) and \(d.batchB) do not broadcast")
        }
        d.batch = batch
        d.outputShape = batch + (a.count == 1 ? [] : [d.m]) + (b.count == 1 ? [] : [d.n])
        return d
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let a = try inputs.spec(0), b = try inputs.spec(1)
        guard a.dtype == b.dtype else { throw KernelError("MatMul operands have different types \(a.dtype) and \(b.dtype)") }
        guard a.dtype == .float || a.dtype == .double else {
            throw KernelError("MatMul supports float and double, got \(a.dtype)", unsupported: true)
        }
        return [ValueSpec(a.dtype, try MatMulKernel.dims(a.shape, b.shape).outputShape)]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let a = inputs.at(0), b = inputs.at(1), y = outputs[0]
        let d = try MatMulKernel.dims(a.shape, b.shape)
        if a.dtype == .double {
            forEachBatch(d) { ao, bo, yo, rows in
                dgemm(m: rows, n: d.n, k: d.k, a: a.typed(Double.self) + ao, lda: d.k, b: b.typed(Double.self) + bo, ldb: d.n,
                      c: y.typed(Double.self) + yo, ldc: d.n)
            }
        } else {
            forEachBatch(d) { ao, bo, yo, rows in
                sgemm(context: context, m: rows, n: d.n, k: d.k, a: a.floats + ao, lda: d.k, b: b.floats + bo, ldb: d.n, c: y.floats + yo, ldc: d.n)
            }
        }
    }

    /// Calls `body(aOffset, bOffset, yOffset, rows)` per GEMM. When B is one matrix for every batch,
    /// A's batches stack into a single GEMM of batch·M rows.
    private func forEachBatch(_ d: Dims, _ body: (Int, Int, Int, Int) -> Void) {
        let count = d.batch.reduce(1, *)
        if count == 0 { return }
        if d.batchB.reduce(1, *) == 1 {
            body(0, 0, 0, count * d.m)
            return
        }
        let r = d.batch.count
        let sa = matmulBroadcastStrides(d.batchA, rank: r, elementStride: d.m * d.k)
        let sb = matmulBroadcastStrides(d.batchB, rank: r, elementStride: d.k * d.n)
        var index = [Int](repeating: 0, count: r)
        for i in 0..<count {
            var ao = 0, bo = 0
            for j in 0..<r { ao += index[j] * sa[j]; bo += index[j] * sb[j] }
            body(ao, bo, i * d.m * d.n, d.m)
            var j = r - 1
            while j >= 0 { index[j] += 1; if index[j] < d.batch[j] { break }; index[j] = 0; j -= 1 }
        }
    }
}

// A: [M,K] (transA: [K,M]), B: [K,N] (transB: [N,K]), C: broadcastable to [M,N] -> Y: [M,N] = alpha·A'·B' + beta·C
final class GemmKernel: Kernel {
    let alpha: Float, beta: Float
    let transA: Bool, transB: Bool
    /// Before opset 7 a C that is not [M, N] needs `broadcast` = 1.
    let legacyNoBroadcast: Bool

    init(_ info: NodeInfo) throws {
        alpha = try info.float("alpha", 1)
        beta = try info.float("beta", 1)
        transA = try info.int("transA", 0) != 0
        transB = try info.int("transB", 0) != 0
        legacyNoBroadcast = try info.opset < 7 && info.int("broadcast", 0) == 0
    }

    private func dims(_ a: [Int], _ b: [Int]) throws -> (m: Int, k: Int, n: Int) {
        guard a.count == 2, b.count == 2 else { throw KernelError("Gemm operands must be 2-D, got \(a) and \(b)") }
        let (m, k) = transA ? (a[1], a[0]) : (a[0], a[1])
        let (k2, n) = transB ? (b[1], b[0]) : (b[0], b[1])
        guard k == k2 else { throw KernelError("Gemm inner dimensions differ: \(k) vs \(k2)") }
        return (m, k, n)
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let a = try inputs.spec(0), b = try inputs.spec(1)
        guard a.dtype == b.dtype, a.dtype == .float || a.dtype == .double else {
            throw KernelError("Gemm supports float and double operands of one type, got \(a.dtype) and \(b.dtype)", unsupported: true)
        }
        let (m, _, n) = try dims(a.shape, b.shape)
        if let c = inputs.optional(2) {
            guard c.dtype == a.dtype else { throw KernelError("Gemm C has type \(c.dtype), expected \(a.dtype)") }
            guard c.shape.count <= 2, matmulBroadcastShapes([m, n], c.shape) == [m, n] else {
                throw KernelError("Gemm C of shape \(c.shape) does not broadcast to [\(m), \(n)]")
            }
            if legacyNoBroadcast && c.shape != [m, n] {
                throw KernelError("Gemm C of shape \(c.shape) must be [\(m), \(n)] without broadcast=1")
            }
        }
        return [ValueSpec(a.dtype, [m, n])]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let a = inputs.at(0), b = inputs.at(1), y = outputs[0]
        let c = inputs.count > 2 ? inputs[2] : nil
        let (m, k, n) = try dims(a.shape, b.shape)
        let useC = c != nil && beta != 0
        if a.dtype == .double {
            let yp = y.typed(Double.self)
            if let c, useC { fillBroadcast(c, c.typed(Double.self), yp, m, n, scale: Double(beta)) }
            dgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: Double(alpha), a: a.typed(Double.self), lda: a.shape[1],
                  b: b.typed(Double.self), ldb: b.shape[1], beta: useC ? 1 : 0, c: yp, ldc: n)
        } else {
            let yp = y.floats
            if let c, useC { fillBroadcast(c, c.floats, yp, m, n, scale: beta) }
            sgemm(context: context, transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a.floats, lda: a.shape[1],
                  b: b.floats, ldb: b.shape[1], beta: useC ? 1 : 0, c: yp, ldc: n)
        }
    }

    /// Y[i, j] = scale · C broadcast to [m, n].
    private func fillBroadcast<T: BinaryFloatingPoint>(_ c: TensorRef, _ src: UnsafeMutablePointer<T>, _ y: UnsafeMutablePointer<T>,
                                                       _ m: Int, _ n: Int, scale: T) {
        let shape = Array(repeating: 1, count: 2 - c.shape.count) + c.shape
        let rowStride = shape[0] == 1 ? 0 : shape[1]
        let colStride = shape[1] == 1 ? 0 : 1
        for i in 0..<m {
            let row = src + i * rowStride, out = y + i * n
            for j in 0..<n { out[j] = scale * row[j * colStride] }
        }
    }
}

// MARK: - Training

/// Dense (Keras layout): x [rows, inFeatures] · w [inFeatures, outFeatures] + b [outFeatures] → y [rows, outFeatures].
/// The products run on OpenBLAS, which the caller has loaded (`BLAS.loadSingleThreaded()`), split over `threads`.
public enum DenseTraining {
    /// y = x · w + b: each row of y starts as b and the product is added to it.
    public static func forward(x: UnsafePointer<Float>, w: UnsafePointer<Float>, b: UnsafePointer<Float>,
                               y: UnsafeMutablePointer<Float>, rows: Int, inFeatures: Int, outFeatures: Int, threads: Int) {
        for r in 0..<rows { (y + r * outFeatures).update(from: b, count: outFeatures) }
        sgemm(context: RunContext(threads: threads, scratch: nil), m: rows, n: outFeatures, k: inFeatures,
              a: x, lda: inFeatures, b: w, ldb: outFeatures, beta: 1, c: y, ldc: outFeatures)
    }
    /// dw = xᵀ·dy, db = Σ rows dy (overwritten); dx = dy·wᵀ (overwritten) unless nil.
    /// Of `y = x · w + b`: dy/dw pairs each x row with its dy row, b is added to every row, and x meets wᵀ.
    /// db adds the rows in order (16 lanes at a time), so it does not depend on the thread count.
    public static func backward(x: UnsafePointer<Float>, w: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>,
                                db: UnsafeMutablePointer<Float>, rows: Int, inFeatures: Int, outFeatures: Int, threads: Int) {
        let context = RunContext(threads: threads, scratch: nil)
        sgemm(context: context, transA: true, m: inFeatures, n: outFeatures, k: rows,
              a: x, lda: inFeatures, b: dy, ldb: outFeatures, c: dw, ldc: outFeatures)
        db.update(repeating: 0, count: outFeatures)
        for r in 0..<rows {
            binaryLoop(UnsafePointer(db), 1, dy + r * outFeatures, 1, db, outFeatures, VectorAdd.self)
        }
        if let dx {
            sgemm(context: context, transB: true, m: rows, n: inFeatures, k: outFeatures,
                  a: dy, lda: outFeatures, b: w, ldb: outFeatures, c: dx, ldc: inFeatures)
        }
    }
}
