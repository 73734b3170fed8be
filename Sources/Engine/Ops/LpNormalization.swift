import Foundation
import OnnxIO

extension OpRegistry {
    static let lpNormalizationOps: [String: KernelFactory] = [
        "LpNormalization": { info in try LpNormalizationKernel(info) },
    ]
}

// X: [d0, ..., d(r-1)] float or double -> Y: X's shape, each vector along `axis` divided by its Lp norm (p 1 or 2):
// y = x / ‖x‖_p, and y = 0 where the norm is 0 (as onnxruntime; the ONNX spec leaves 0/0 open).
// The norm is summed in double, so the result does not depend on the length of the vector or the split.
final class LpNormalizationKernel: Kernel {
    let axis: Int
    let p: Int

    init(_ info: NodeInfo) throws {
        axis = try info.int("axis", -1)
        p = try info.int("p", 2)
        guard p == 1 || p == 2 else { throw info.unsupported("p=\(p) (only 1 and 2 are defined)") }
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0)
        guard x.dtype == .float || x.dtype == .double else { throw unsupportedType(x.dtype, "LpNormalization") }
        _ = try normalizeAxis(axis, rank: x.shape.count)
        return [ValueSpec(x.dtype, x.shape)]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0), y = outputs[0]
        let rank = x.shape.count
        let a = try normalizeAxis(axis, rank: rank)
        // [outer, length, inner]: a vector is `length` values `inner` apart.
        let length = rank == 0 ? 1 : x.shape[a]
        let inner = rank == 0 ? 1 : x.shape[(a + 1)...].reduce(1, *)
        let outer = rank == 0 ? 1 : x.shape[..<a].reduce(1, *)
        let vectors = outer * inner
        guard vectors > 0, length > 0 else { return }
        if x.dtype == .double {
            let px = UnsafePointer(x.typed(Double.self)), py = y.typed(Double.self)
            context.parallelFor(vectors, minChunk: max(1, 4096 / length)) { range in
                for v in range { Self.normalize(px, py, vector: v, length: length, inner: inner, p: p) }
            }
        } else {
            let px = UnsafePointer(x.floats), py = y.floats
            context.parallelFor(vectors, minChunk: max(1, 4096 / length)) { range in
                for v in range { Self.normalize(px, py, vector: v, length: length, inner: inner, p: p) }
            }
        }
    }

    /// Vector `v` (outer index v / inner, inner index v % inner) of x into y; returns its norm.
    @discardableResult
    static func normalize<T: BinaryFloatingPoint>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, vector v: Int, length: Int,
                                                   inner: Int, p: Int) -> Double {
        let start = (v / inner) * length * inner + v % inner
        var sum = 0.0
        for i in 0..<length {
            let value = Double(x[start + i * inner])
            sum += p == 1 ? abs(value) : value * value
        }
        let norm = p == 1 ? sum : sum.squareRoot()
        let scale = norm > 0 ? 1 / norm : 0
        for i in 0..<length { y[start + i * inner] = T(Double(x[start + i * inner]) * scale) }
        return norm
    }
}

// MARK: - Training

/// L2 normalisation of the rows of x [rows, dim] (LpNormalization p 2 on the last axis of a 2-D value: the embedding
/// head when `kizuki train --l2-normalize`). Norms in double, one row at a time (rows are few: the batch).
public enum L2NormalizeTraining {
    /// y = x / ‖x‖ per row (0 for a zero row), and norm [rows] = ‖x‖ saved for `backward`.
    public static func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, norm: UnsafeMutablePointer<Float>,
                               rows: Int, dim: Int) {
        for r in 0..<rows { norm[r] = Float(LpNormalizationKernel.normalize(x, y, vector: r, length: dim, inner: 1, p: 2)) }
    }

    /// dx [rows, dim] (overwritten; may not alias dy) from dy, the forward's y and norm.
    /// Of `y = x / ‖x‖`: ∂y_i/∂x_j = (δ_ij − y_i y_j) / ‖x‖, so dx = (dy − y · ⟨y, dy⟩) / ‖x‖ (in double, rounded once);
    /// a zero row (y = 0 there) passes no gradient.
    public static func backward(y: UnsafePointer<Float>, norm: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                dx: UnsafeMutablePointer<Float>, rows: Int, dim: Int) {
        for r in 0..<rows {
            let o = r * dim
            guard norm[r] > 0 else { (dx + o).update(repeating: 0, count: dim); continue }
            var dot = 0.0
            for k in 0..<dim { dot += Double(y[o + k]) * Double(dy[o + k]) }
            let inverse = 1 / Double(norm[r])
            for k in 0..<dim { dx[o + k] = Float((Double(dy[o + k]) - Double(y[o + k]) * dot) * inverse) }
        }
    }
}
