import Anomaly
import Engine
import Foundation
import OnnxIO

/// A training run in its folder: starts or resumes, trains epoch by epoch, and after every epoch writes the
/// checkpoint, model.onnx when the epoch loss is the lowest so far, train.json and a line of train.log.
public final class TrainingRun {
    public struct Options {
        public var dataDirectory: URL
        /// Compute the inference-mode AUC after each epoch (for information).
        public var evaluate = true
        /// Per-epoch lines and notes.
        public var log: (String) -> Void = { print($0) }
        public var progress: Trainer.Progress?
        /// Asked after every step: true stops the run with a resumable checkpoint.
        public var shouldStop: () -> Bool = { false }
        /// The command line that started or resumed the run (recorded in the model card).
        public var commandLine: String?
        public init(dataDirectory: URL) { self.dataDirectory = dataDirectory }
    }

    public let directory: URL
    public let trainer: Trainer
    let options: Options

    /// A new run in `directory` (created; an existing checkpoint there is refused: resume it instead).
    public convenience init(newRun directory: URL, recipe: TrainingRecipe, options: Options) throws {
        if FileManager.default.fileExists(atPath: directory.appendingPathComponent("checkpoint.json").path) {
            throw TrainingError("\(directory.path) already holds a training run: continue it with --resume \(directory.path) or choose another --out")
        }
        var graph: TrainingGraph
        if let initFrom = recipe.initFrom {
            let model = try Model(contentsOf: URL(fileURLWithPath: initFrom))
            graph = try TrainingGraph(model: model, file: initFrom)
        } else {
            let built = MobileNetV2Embedder().build(seed: recipe.seed)
            graph = TrainingGraph(model: built.model, parameters: built.parameters)
        }
        // Checkpoints hold the changed graph, so a resumed run keeps them without asking the recipe again.
        if recipe.l2Normalize == true { graph = graph.l2NormalizingOutput() }
        if let momentum = recipe.bnMomentum { graph = graph.settingBatchNormMomentum(momentum) }
        try self.init(directory: directory, graph: graph, state: TrainingState(recipe: recipe), optimizer: nil, options: options)
    }

    /// Continues the run in `directory`; `epochs` raises (or lowers) its total.
    public convenience init(resume directory: URL, epochs: Int?, options: Options) throws {
        var (state, model, optimizer) = try Checkpoint.load(directory)
        if let epochs { state.recipe.epochs = epochs }
        let graph = try TrainingGraph(model: model, file: directory.appendingPathComponent("checkpoint.onnx").path)
        try self.init(directory: directory, graph: graph, state: state, optimizer: optimizer, options: options)
    }

    private init(directory: URL, graph: TrainingGraph, state: TrainingState, optimizer: [Float]?, options: Options) throws {
        self.directory = directory
        self.options = options
        let recipe = state.recipe
        let data = try TrainingData.fashionMNIST(normal: recipe.normal, exclude: recipe.exclude, directory: options.dataDirectory,
                                                 limit: recipe.trainImages, classLabels: recipe.classLabels == true)
        let program = try TrainingProgram(graph: graph, batch: recipe.batch, threads: recipe.threads)
        var state = state
        if let line = options.commandLine { state.commands = (state.commands ?? []) + [line] }
        trainer = try Trainer(program: program, state: state, images: data.images, labels: data.labels)
        if let optimizer { try trainer.restoreOptimizer(optimizer) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    /// Trains until the recipe's epoch count. Throws `Trainer.Stop` on Ctrl-C (after saving) or a non-finite loss
    /// (leaving the last good checkpoint as it was).
    public func run() throws {
        let recipe = trainer.state.recipe
        let positives = trainer.images.labels.filter { $0 == recipe.normal }.count
        let labels = recipe.classLabels == true ? "labels = classes" : "labels normal 1 / rest 0"
        options.log("training on \(trainer.images.count) images (\(positives) normal, class \(recipe.normal); excluded \(recipe.exclude); \(labels)), " +
                    "\(trainer.stepsPerEpoch) steps of \(recipe.batch) per epoch, \(recipe.threads) thread(s), loss \(recipe.loss)")
        if trainer.state.epoch > 0 || trainer.state.stepInEpoch > 0 {
            options.log("resuming at epoch \(trainer.state.epoch + 1), step \(trainer.state.step)")
        }
        while trainer.state.epoch < recipe.epochs {
            let epoch = trainer.state.epoch
            let lr = recipe.schedule.rate(epoch: epoch)
            let result: (loss: Double, seconds: Double)
            do {
                result = try trainer.runEpoch(progress: options.progress, afterStep: stepEvaluation(), shouldStop: options.shouldStop)
            } catch Trainer.Stop.interrupted {
                try saveCheckpoint()
                options.log("stopped at step \(trainer.state.step) (epoch \(epoch + 1), step \(trainer.state.stepInEpoch) of \(trainer.stepsPerEpoch)); " +
                            "continue with: kizuki train --resume \(directory.path)")
                throw Trainer.Stop.interrupted
            }
            let auc = options.evaluate ? try evaluate() : nil
            let images = Double(trainer.stepsPerEpoch * recipe.batch)
            let record = EpochRecord(epoch: epoch + 1, loss: result.loss, learningRate: lr, seconds: result.seconds,
                                     imagesPerSecond: images / max(result.seconds, 1e-9), auc: auc)
            let best = trainer.record(record)
            try saveCheckpoint()
            if best { try Checkpoint.replace(directory.appendingPathComponent("model.onnx"), with: try trainer.currentModel().serialized()) }
            try writeLog()
            options.log(line(record) + (best ? "  * lowest loss: model.onnx" : ""))
        }
        // Also when there was nothing left to train: the logs and model card follow this version's format.
        if !trainer.state.history.isEmpty { try writeLog() }
    }

    /// With `evalEvery`, the hook that measures the AUC every that many steps (an error there is logged, not fatal).
    func stepEvaluation() -> (() -> Void)? {
        guard options.evaluate, let every = trainer.state.recipe.evalEvery, every > 0 else { return nil }
        return { [self] in
            let s = trainer.state
            guard s.step % every == 0 else { return }
            do {
                let auc = try evaluate()
                let epoch = Double(s.step) / Double(trainer.stepsPerEpoch)
                trainer.noteStepEvaluation(StepEvaluation(step: s.step, epoch: epoch, auc: auc))
                options.log(String(format: "  step %d (epoch %.2f)  auc %.4f", s.step, epoch, auc))
            } catch {
                options.log("  step \(s.step): evaluation failed: \(error)")
            }
        }
    }

    func saveCheckpoint() throws {
        try Checkpoint.save(directory, state: trainer.state, model: trainer.currentModel(), optimizer: trainer.optimizer.state)
    }

    func line(_ r: EpochRecord) -> String {
        let auc = r.auc.map { String(format: "  auc %.4f", $0) } ?? ""
        return String(format: "epoch %3d/%d  loss %.6f  lr %.0e  %.0f s  %.1f img/s", r.epoch, trainer.state.recipe.epochs, r.loss,
                      Double(r.learningRate), r.seconds, r.imagesPerSecond) + auc
    }

    /// The inference-mode AUC of the current weights: normal class against the first excluded class, up to 6000 anchors.
    func evaluate() throws -> Double {
        let recipe = trainer.state.recipe
        let file = directory.appendingPathComponent(".epoch-eval.onnx")
        try trainer.currentModel().save(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        var sessionOptions = SessionOptions()
        sessionOptions.threads = recipe.threads
        let embedder = try Embedder(modelFile: file, options: sessionOptions)
        let experiment = try FashionMNIST.experiment(normal: recipe.normal, anomaly: recipe.exclude[0], from: options.dataDirectory)
        let anchors = min(6000, experiment.anchors.count)
        let evaluation = try Evaluation.run(embedder: embedder, anchors: experiment.anchors, test: experiment.test, anchorCounts: [anchors],
                                            batches: [128], k: 1, fpr: nil)
        return evaluation.rows[0].auc
    }

    func writeLog() throws {
        struct Log: Codable {
            var recipe: TrainingRecipe
            var epochs: [EpochRecord]
            var bestEpoch: Int?
            var bestLoss: Double?
            var steps: Int
            var stepEvaluations: [StepEvaluation]?
            var kizuki: String
        }
        let s = trainer.state
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try Checkpoint.replace(directory.appendingPathComponent("train.json"),
                               with: encoder.encode(Log(recipe: s.recipe, epochs: s.history, bestEpoch: s.bestEpoch, bestLoss: s.bestLoss, steps: s.step,
                                                       stepEvaluations: s.stepEvaluations?.isEmpty == false ? s.stepEvaluations : nil,
                                                       kizuki: "training program over the ONNX graph; BatchNormalization moving statistics as Keras "
                                                           + "(momentum \(s.recipe.bnMomentum ?? MobileNetV2Embedder.momentum))")))
        let text = s.history.map(line).joined(separator: "\n") + "\n"
        try Checkpoint.replace(directory.appendingPathComponent("train.log"), with: Data(text.utf8))
        try Checkpoint.replace(directory.appendingPathComponent("MODEL_CARD.md"), with: Data(ModelCard(state: s).markdown.utf8))
    }
}
