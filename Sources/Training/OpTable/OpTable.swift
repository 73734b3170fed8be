/// The one table of training-kernel cases: every operator of the training graph, forward and backward.
/// Each op family lists its cases in its own file beside this one.
public enum OpTable {
    public static func cases(_ size: GradCaseSize) -> [GradCase] {
        convCases(size) + layerCases(size)
    }
}
