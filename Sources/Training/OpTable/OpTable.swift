/// The one table of training-kernel cases: every operator of the training graph, forward and backward.
/// Each op family lists its cases in its own file beside this one.
public enum OpTable {
    /// The kernels of the cases run on `threads` threads (2 by default: per-thread sums and their reduction
    /// are then exercised by the checks).
    public static func cases(_ size: GradCaseSize, threads: Int = 2) -> [GradCase] {
        convCases(size, threads: threads) + layerCases(size, threads: threads)
    }
}
