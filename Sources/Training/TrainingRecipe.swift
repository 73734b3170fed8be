/// Everything that defines a training run (kept in checkpoints and train.json; `--resume` reuses it).
public struct TrainingRecipe: Codable, Equatable, Sendable {
    /// The normal class (label 1); every other class not excluded is label 0.
    public var normal = 7
    /// Classes left out of training (the anomaly class, never seen).
    public var exclude = [9]
    public var epochs = 50
    public var batch = 128
    public var schedule = LearningRateSchedule(base: 1e-3, drops: [25, 45])
    public var momentum: Float = 0.9
    public var margin: Float = 0.2
    public var loss = TripletLossKind.batchAll.rawValue
    /// Train on the ten class labels instead of normal-vs-rest (`--labels classes`); nil (older runs) means binary.
    public var classLabels: Bool?
    /// L2-normalised embeddings (an LpNormalization appended to the graph); nil (older runs) means no.
    public var l2Normalize: Bool?
    /// Momentum of every BatchNormalization's moving statistics; nil keeps the graph's own (Keras's 0.999).
    public var bnMomentum: Float?
    /// Seeds the initial weights (unless `--init`) and every epoch's permutation.
    public var seed: UInt64 = 1
    /// Reductions are ordered per thread count, so a bit-exact resume needs the same count.
    public var threads = 1
    /// The ONNX file the weights started from, or nil for Keras's initialisers from `seed`.
    public var initFrom: String?
    /// Train on the first N images of the training set only (quick runs, tests); nil for all.
    public var trainImages: Int?
    /// Also evaluate the AUC every this many steps inside an epoch (for information: the curve between epochs); nil: at epoch ends only.
    public var evalEvery: Int?

    public init() {}

    public var lossKind: TripletLossKind { TripletLossKind(rawValue: loss) ?? .batchAll }
}

/// One finished epoch.
public struct EpochRecord: Codable, Equatable, Sendable {
    public var epoch: Int
    public var loss: Double
    public var learningRate: Float
    public var seconds: Double
    public var imagesPerSecond: Double
    /// Inference-mode AUC (normal vs the first excluded class, 6000 anchors), for information only.
    public var auc: Double?
}

/// An inference-mode AUC measured after a step inside an epoch (`TrainingRecipe.evalEvery`), for information only.
public struct StepEvaluation: Codable, Equatable, Sendable {
    /// SGD steps taken in all when it was measured.
    public var step: Int
    /// The same position in epochs (steps / steps per epoch).
    public var epoch: Double
    public var auc: Double
}

/// Where a run is: saved with every checkpoint so `--resume` continues bit-exactly.
public struct TrainingState: Codable, Equatable, Sendable {
    public var recipe: TrainingRecipe
    /// Epochs finished.
    public var epoch = 0
    /// SGD steps taken in all.
    public var step = 0
    /// Steps of the current epoch already taken (non-zero only in a checkpoint written on interruption).
    public var stepInEpoch = 0
    /// The generator as it was at the start of the current epoch, before its permutation was drawn.
    public var epochRandom: [UInt64]
    /// Sum of the current epoch's batch losses so far.
    public var epochLossSum = 0.0
    /// Seconds spent in the current epoch so far.
    public var epochSeconds = 0.0
    public var history: [EpochRecord] = []
    /// The AUCs measured inside epochs (`evalEvery`), in order.
    public var stepEvaluations: [StepEvaluation]? = []
    /// The epoch whose weights are in model.onnx: the lowest training loss so far (Keras ModelCheckpoint(monitor="loss")).
    public var bestEpoch: Int?
    public var bestLoss: Double?
    /// The command lines that started and resumed the run, in order (for the model card).
    public var commands: [String]? = []

    public init(recipe: TrainingRecipe) {
        self.recipe = recipe
        epochRandom = TrainingRandom(seed: recipe.seed ^ 0x7065_726D_7574_6531).state  // "permute1": apart from the weights' stream
    }
}
