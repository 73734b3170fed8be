extension OpTable {
    /// BatchNormalization, ReLU6, Add, nearest upsample, Pad, GlobalAveragePool, Dense.
    static func layerCases(_ size: GradCaseSize) -> [GradCase] { [] }
}
