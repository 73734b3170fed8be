import Anomaly
import ArgumentParser
import Engine
import Foundation
import OnnxIO
import Synchronization
import Training

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train the MobileNetV2 triplet embedder on Fashion-MNIST (the reference recipe by default).",
        discussion: """
        Writes to --out: checkpoint.onnx/.json + optimizer.bin after every epoch (resumable with --resume, also after \
        Ctrl-C), model.onnx (the epoch with the lowest training loss, input 'input' [N,28,28,1], output 'embedding'), \
        train.json and train.log (per epoch: loss, learning rate, time, images/s, and the inference-mode AUC against \
        the first excluded class, for information only).
        """)

    @Option(help: "The normal class (label 1); the other classes kept are label 0.") var normal = 7
    @Option(help: "A class left out of training (repeatable; the first is the anomaly class of the per-epoch AUC).") var exclude: [Int] = [9]
    @Option(help: "Epochs in all (default 50; a resumed run keeps its own total unless this is given).") var epochs: Int?
    @Option(help: "Output folder.") var out: String?
    @Option(help: "Images per SGD step (the last partial batch of an epoch is dropped).") var batch = 128
    @Option(help: "Base learning rate.") var lr: Float = 1e-3
    @Option(help: "0-based epochs at which the rate is divided by 10, comma separated.") var lrDrops = "25,45"
    @Option(help: "SGD momentum (Keras form).") var momentum: Float = 0.9
    @Option(help: "Triplet margin.") var margin: Float = 0.2
    @Option(help: "Loss: batch-all (the reference), batch-hard or soft-margin.") var loss = "batch-all"
    @Option(help: "Triplet labels: binary (the reference: normal 1, every other class 0) or classes (each class its own label).")
    var labels = "binary"
    @Flag(help: "L2-normalise the embeddings (an LpNormalization after the Dense head, also in model.onnx).") var l2Normalize = false
    @Option(help: "Momentum of the BatchNormalization moving statistics (default: the model's own, Keras's 0.999).") var bnMomentum: Float?
    @Option(help: "Seed of the initial weights and the per-epoch permutations.") var seed: UInt64 = 1
    @Option(help: "Threads (a bit-exact resume needs the same count).") var threads = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Continue the run in this folder from its last checkpoint, with its own recipe and thread count (only --epochs changes it).") var resume: String?
    @Option(name: .customLong("init"), help: "Start from the weights of this training-form ONNX file (a checkpoint.onnx or model.onnx).")
    var initFrom: String?
    @Option(help: "Use only the first N training images (quick runs).") var trainImages: Int?
    @Flag(help: "Skip the per-epoch inference-mode AUC.") var noEval = false
    @Option(help: "Also measure the AUC every N steps inside epochs (for information; logged and kept in train.json).") var evalEvery: Int?
    @Option(help: "Fashion-MNIST folder (default: $KIZUKI_DATA, else /usr/share/datasets/fashion-mnist).") var data: String?
    @Flag(help: "No progress bar.") var quiet = false

    func validate() throws {
        if out == nil && resume == nil { throw ValidationError("give --out DIR for a new run or --resume DIR to continue one") }
        if out != nil && resume != nil { throw ValidationError("--out and --resume are exclusive: a resumed run writes to its own folder") }
        if resume != nil && initFrom != nil { throw ValidationError("--init starts a new run; it cannot be combined with --resume") }
        if let epochs, epochs < 1 { throw ValidationError("--epochs must be at least 1 (got \(epochs))") }
        guard batch >= 2 else { throw ValidationError("--batch must be at least 2 (got \(batch))") }
        guard lr > 0, lr.isFinite else { throw ValidationError("--lr must be positive (got \(lr))") }
        guard (0..<1).contains(momentum) else { throw ValidationError("--momentum must be in [0, 1) (got \(momentum))") }
        guard margin >= 0, margin.isFinite else { throw ValidationError("--margin must be non-negative (got \(margin))") }
        guard TripletLossKind(rawValue: loss) != nil else {
            throw ValidationError("--loss must be one of \(TripletLossKind.allCases.map(\.rawValue).joined(separator: ", ")) (got '\(loss)')")
        }
        if let bnMomentum { guard (0..<1).contains(bnMomentum) else { throw ValidationError("--bn-momentum must be in [0, 1) (got \(bnMomentum))") } }
        if resume != nil && (l2Normalize || bnMomentum != nil) {
            throw ValidationError("--l2-normalize and --bn-momentum start a new run; a resumed run keeps its own recipe")
        }
        guard ["binary", "classes"].contains(labels) else { throw ValidationError("--labels must be binary or classes (got '\(labels)')") }
        if resume != nil && labels != "binary" { throw ValidationError("--labels starts a new run; a resumed run keeps its own recipe") }
        if let evalEvery, evalEvery < 1 { throw ValidationError("--eval-every must be at least 1 step (got \(evalEvery))") }
        if evalEvery != nil && (noEval || resume != nil) {
            throw ValidationError("--eval-every needs the evaluation (not --no-eval) and a new run (a resumed run keeps its own recipe)")
        }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1 (got \(threads))") }
        _ = try drops()
        if let trainImages, trainImages < batch { throw ValidationError("--train-images must be at least one batch (\(batch))") }
        guard !exclude.isEmpty else { throw ValidationError("--exclude needs at least one class (the anomaly class)") }
        guard (0..<10).contains(normal), exclude.allSatisfy({ (0..<10).contains($0) }), !exclude.contains(normal) else {
            throw ValidationError("--normal and --exclude must be classes in 0...9, the normal class not excluded (got \(normal), \(exclude))")
        }
    }

    func drops() throws -> [Int] {
        if lrDrops.isEmpty || lrDrops == "none" { return [] }
        let values = lrDrops.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard values.allSatisfy({ ($0 ?? -1) >= 0 }) else { throw ValidationError("--lr-drops must be epochs such as 25,45 (got '\(lrDrops)')") }
        return values.compactMap { $0 }
    }

    func run() throws {
        do {
            try BLAS.loadSingleThreaded()
            let session = try TrainingSession(command: self)
            try session.run()
        } catch let e as ExitCode { throw e } catch { throw fail(error) }
    }

    func recipe() throws -> TrainingRecipe {
        var r = TrainingRecipe()
        r.normal = normal; r.exclude = exclude; r.epochs = epochs ?? r.epochs; r.batch = batch
        r.schedule = LearningRateSchedule(base: lr, drops: try drops())
        r.momentum = momentum; r.margin = margin; r.loss = loss; r.seed = seed; r.threads = threads
        r.initFrom = initFrom
        r.l2Normalize = l2Normalize ? true : nil
        r.bnMomentum = bnMomentum
        r.evalEvery = evalEvery
        r.classLabels = labels == "classes" ? true : nil
        r.trainImages = trainImages
        return r
    }
}

/// Ctrl-C asks the training loop to stop after its current step (a second Ctrl-C exits at once).
enum Interrupt {
    private static let requested = Atomic<Bool>(false)
    nonisolated(unsafe) private static var source: DispatchSourceSignal?

    static func install() {
        signal(SIGINT, SIG_IGN)
        let s = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        s.setEventHandler {
            if requested.exchange(true, ordering: .relaxed) { exit(130) }
            FileHandle.standardError.write(Data("\ninterrupt: stopping after this step and saving a checkpoint (Ctrl-C again to quit now)\n".utf8))
        }
        s.resume()
        source = s
    }

    static var isRequested: Bool { requested.load(ordering: .relaxed) }
}

/// `kizuki train` as it runs: options to a `TrainingRun`, a progress bar (loss, images/s, ETA), and the
/// way it ends (done, interrupted with a checkpoint, or a non-finite loss).
struct TrainingSession {
    let training: TrainingRun

    init(command: Train) throws {
        var options = TrainingRun.Options(dataDirectory: FashionMNIST.directory(command.data))
        options.evaluate = !command.noEval
        options.commandLine = (["kizuki"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        // Epoch lines as they happen, also when stdout is a file (nohup, CI logs).
        options.log = { print($0); fflush(stdout) }
        options.progress = TrainingProgressBar(quiet: command.quiet, batch: command.batch).update
        Interrupt.install()
        options.shouldStop = { Interrupt.isRequested }
        if let resume = command.resume {
            training = try TrainingRun(resume: URL(fileURLWithPath: resume), epochs: command.epochs, options: options)
        } else {
            training = try TrainingRun(newRun: URL(fileURLWithPath: command.out!), recipe: try command.recipe(), options: options)
        }
    }

    func run() throws {
        do {
            try training.run()
            let s = training.trainer.state
            print("done: \(s.recipe.epochs) epochs, \(s.step) steps; model.onnx = epoch \(s.bestEpoch ?? 0) (lowest loss \(s.bestLoss.map { String(format: "%.6f", $0) } ?? "-")) in \(training.directory.path)")
        } catch Trainer.Stop.interrupted {
            throw ExitCode(130)
        } catch Trainer.Stop.nonFinite(let step, let loss) {
            let last = training.trainer.state.epoch
            throw TrainingError("the loss became \(loss) at step \(step); stopped. The last good checkpoint (epoch \(last)) is in \(training.directory.path)")
        }
    }
}

/// "[#####.....] 120/421  loss 0.1183  158 img/s  ETA 1:54" on stderr when it is a terminal; otherwise (a log
/// file, nohup) the same numbers as a plain line at every tenth of the epoch.
struct TrainingProgressBar {
    let quiet: Bool
    let terminal: Bool
    let batch: Int
    init(quiet: Bool, batch: Int) { self.quiet = quiet; terminal = isatty(STDERR_FILENO) != 0; self.batch = batch }

    func update(_ done: Int, _ total: Int, _ loss: Double, _ rate: Double) {
        guard !quiet, total > 0 else { return }
        let eta = rate > 0 ? Int(Double((total - done) * batch) / rate) : 0
        let numbers = String(format: "%d/%d  loss %.4f  %.0f img/s  ETA %d:%02d", done, total, loss, rate, eta / 60, eta % 60)
        if terminal {
            let width = 24, filled = width * done / total
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            FileHandle.standardError.write(Data("\r[\(bar)] \(numbers) ".utf8))
            if done >= total { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        } else if done < total, done % max(total / 10, 1) == 0 {
            FileHandle.standardError.write(Data("  step \(numbers)\n".utf8))
        }
    }
}
