/// Triplet losses over a batch of embeddings with integer labels.
///
/// Every kind works on the same squared Euclidean distances d_ij = Σ_k (e_ik − e_jk)², the reference recipe's
/// distance, so the margin means the same thing whichever kind is chosen. Each kind turns the [count, count]
/// distance matrix into the loss and dL/dd_ij per ordered pair (TripletLossBatchAll.swift,
/// TripletLossBatchHard.swift); this file computes the distances and carries dL/dd back to the embeddings.
/// Everything runs on one thread in a fixed order, so the result is deterministic (at batch 128 the whole
/// evaluation costs a few milliseconds, nothing next to the network).
public enum TripletLossKind: String, CaseIterable, Sendable {
    /// The reference recipe: every (positive pair, negative pair) combination of the batch.
    case batchAll = "batch-all"
    /// Hermans et al. 2017: per anchor, hardest positive against hardest negative, hinge at the margin.
    case batchHard = "batch-hard"
    /// Hermans et al. 2017: batch-hard with softplus instead of the hinge (no margin).
    case softMargin = "soft-margin"
}

public enum TripletLoss {
    /// The loss of `embeddings` [count, dim] (count = labels.count) and, when `gradient` is given,
    /// dL/dembeddings [count, dim] (overwritten). The margin enters at its float32 value (0.2 is 0.20000000298…,
    /// as in a float32 Keras loss); distances, loss and gradient are computed in Double, the gradient rounded once.
    ///
    /// A batch that has no triplet for the chosen kind (one class only; for batch-hard and soft-margin also no
    /// anchor with another sample of its class) has loss 0 and a zero gradient. A non-finite embedding gives a
    /// NaN loss and a NaN gradient: the trainer stops on it, and nothing downstream pretends it was a number.
    public static func evaluate(_ kind: TripletLossKind, embeddings: UnsafePointer<Float>, labels: [Int32], dim: Int,
                                margin: Float, gradient: UnsafeMutablePointer<Float>?) -> Double {
        let count = labels.count
        precondition(dim >= 1, "TripletLoss: dim must be at least 1")
        guard count > 0 else { return 0 }
        let size = count * dim
        guard (0..<size).allSatisfy({ embeddings[$0].isFinite }) else {
            gradient?.update(repeating: .nan, count: size)
            return .nan
        }
        let distances = squaredDistances(embeddings, count: count, dim: dim)
        // dL/dd_ij per ordered pair (i, j), row-major [count, count]; only filled when a gradient is wanted.
        var distanceGradient = gradient == nil ? nil : [Double](repeating: 0, count: count * count)
        let loss: Double
        switch kind {
        case .batchAll:
            loss = batchAll(distances, labels: labels, margin: Double(margin), distanceGradient: &distanceGradient)
        case .batchHard:
            loss = batchHard(distances, labels: labels, margin: Double(margin), soft: false,
                             distanceGradient: &distanceGradient)
        case .softMargin:
            loss = batchHard(distances, labels: labels, margin: 0, soft: true, distanceGradient: &distanceGradient)
        }
        if let gradient, let distanceGradient {
            backpropagate(distanceGradient, embeddings: embeddings, count: count, dim: dim, into: gradient)
        }
        return loss
    }

    /// d [count, count], d_ij = Σ_k (e_ik − e_jk)², accumulated in Double from the differences.
    /// Why not the Gram form |e_i|² + |e_j|² − 2⟨e_i, e_j⟩ (one GEMM): it cancels catastrophically when two
    /// embeddings are close (same-class embeddings cluster as training goes on) and leaves d_ii as rounding noise
    /// instead of exactly 0, and the batch-all positives include every (i, i) pair at the margin's edge. The
    /// differences cost count²/2 · dim multiply-adds (1 M at batch 128): nothing next to the network. The matrix
    /// is exactly symmetric (each pair computed once) so (i, j) and (j, i) always take the same side of a hinge.
    static func squaredDistances(_ e: UnsafePointer<Float>, count: Int, dim: Int) -> [Double] {
        var d = [Double](repeating: 0, count: count * count)
        d.withUnsafeMutableBufferPointer { d in
            for i in 0..<count {
                let ei = e + i * dim
                for j in (i + 1)..<count {
                    let ej = e + j * dim
                    var sum = 0.0
                    for k in 0..<dim {
                        let diff = Double(ei[k]) - Double(ej[k])
                        sum += diff * diff
                    }
                    d[i * count + j] = sum
                    d[j * count + i] = sum
                }
            }
        }
        return d
    }

    /// dL/de_i from dL/dd (G, [count, count]): d_ij = Σ_k (e_ik − e_jk)² gives ∂d_ij/∂e_i = 2(e_i − e_j) and
    /// ∂d_ij/∂e_j = −2(e_i − e_j), so dL/de_i = Σ_j 2 (G_ij + G_ji)(e_i − e_j). Accumulated in Double.
    static func backpropagate(_ g: [Double], embeddings e: UnsafePointer<Float>, count: Int, dim: Int,
                              into gradient: UnsafeMutablePointer<Float>) {
        var row = [Double](repeating: 0, count: dim)
        g.withUnsafeBufferPointer { g in
            row.withUnsafeMutableBufferPointer { row in
                for i in 0..<count {
                    let ei = e + i * dim
                    for k in 0..<dim { row[k] = 0 }
                    for j in 0..<count where j != i {
                        let s = 2 * (g[i * count + j] + g[j * count + i])
                        if s == 0 { continue }
                        let ej = e + j * dim
                        for k in 0..<dim { row[k] += s * (Double(ei[k]) - Double(ej[k])) }
                    }
                    for k in 0..<dim { gradient[i * dim + k] = Float(row[k]) }
                }
            }
        }
    }
}
