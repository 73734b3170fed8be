extension OpTable {
    /// Convolutions: regular, pointwise, depthwise; stride 1 and 2; symmetric and asymmetric padding.
    static func convCases(_ size: GradCaseSize) -> [GradCase] { [] }
}
