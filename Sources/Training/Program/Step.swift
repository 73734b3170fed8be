import Engine

/// One node of a training graph as the program runs it: which kernel, its values (indices into the
/// program's value table) and parameters (indices into the `ParameterStore`).
enum StepKind {
    /// NHWC graph input → NCHW (the permutation [0, 3, 1, 2]); no gradient (it reads the images).
    case toChannelsFirst(height: Int, width: Int, channels: Int)
    case upsample(factorH: Int, factorW: Int)
    /// Zero padding of H and W: [top, left, bottom, right].
    case pad([Int])
    case conv(Conv2DShape, weight: Int)
    /// `saved`: which of the program's saved buffers holds its mean and invStd (saving steps in order);
    /// `relu6`: the ReLU6 (Clip(0, 6)) that alone reads its output is fused in, forward and backward.
    case batchNorm(BatchNormShape, gamma: Int, beta: Int, mean: Int, variance: Int, saved: Int, relu6: Bool)
    case relu6
    case add
    case globalAveragePool
    /// Flatten [N, C, 1, 1] → [N, C]: the output shares the input's memory.
    case flatten
    case dense(weight: Int, bias: Int)
    /// LpNormalization p 2 over the rows of [N, D]; `saved`: the program's saved buffer holding the N norms.
    case l2Normalize(saved: Int)
}

struct Step {
    var op: String
    var kind: StepKind
    var inputs: [Int]
    var output: Int
}

/// A value of the graph: its shape (batch first), its memory, and whether its gradient is needed.
struct ValueSlot {
    var name: String
    var shape: [Int]
    var count: Int { shape.reduce(1, *) }
    /// Index of another value whose memory this one shares (in-place ReLU6, Flatten), or nil.
    var aliasOf: Int?
    var requiresGradient = false
}
