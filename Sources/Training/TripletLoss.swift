/// Triplet losses over a batch of embeddings with integer labels.
public enum TripletLossKind: String, CaseIterable, Sendable {
    /// The reference recipe: every (positive pair, negative pair) combination of the batch.
    case batchAll = "batch-all"
    /// Hermans et al. 2017: per anchor, hardest positive against hardest negative, hinge at the margin.
    case batchHard = "batch-hard"
    /// Hermans et al. 2017: batch-hard with softplus instead of the hinge (no margin).
    case softMargin = "soft-margin"
}

public enum TripletLoss {
    /// The loss of `embeddings` [count, dim] and, when `gradient` is given, dL/dembeddings [count, dim] (overwritten).
    public static func evaluate(_ kind: TripletLossKind, embeddings: UnsafePointer<Float>, labels: [Int32], dim: Int,
                                margin: Float, gradient: UnsafeMutablePointer<Float>?) -> Double {
        fatalError("TripletLoss.evaluate: not implemented yet")
    }
}
