import Anomaly
import Foundation
import OnnxIO

/// Runs the recipe epoch by epoch over a labelled image set: batches from a fresh permutation each epoch
/// (the last partial batch dropped), forward in training mode, the triplet loss, backward, SGD.
public final class Trainer {
    public let program: TrainingProgram
    public let optimizer: SGD
    public private(set) var state: TrainingState
    let images: ImageSet
    let labels: [Int32]
    private let batchImages: UnsafeMutablePointer<Float>
    private let outputGradient: UnsafeMutablePointer<Float>

    /// Progress inside an epoch: steps done, steps in the epoch, mean loss so far, images per second.
    public typealias Progress = (_ done: Int, _ total: Int, _ loss: Double, _ imagesPerSecond: Double) -> Void

    public init(program: TrainingProgram, state: TrainingState, images: ImageSet, labels: [Int]) throws {
        guard images.count == labels.count, images.count >= program.batch else {
            throw TrainingError("training needs at least one batch of \(program.batch) labelled images; got \(images.count)")
        }
        guard images.imageSize == program.inputSize else {
            throw TrainingError("images are \(images.height)x\(images.width); the model's input takes \(program.inputSize) values per image")
        }
        self.program = program
        self.state = state
        self.images = images
        self.labels = labels.map { Int32($0) }
        optimizer = SGD(parameters: program.parameters, momentum: state.recipe.momentum)
        batchImages = .allocate(capacity: program.batch * program.inputSize)
        outputGradient = .allocate(capacity: program.batch * program.outputSize)
    }

    deinit {
        batchImages.deallocate()
        outputGradient.deallocate()
    }

    public var stepsPerEpoch: Int { images.count / program.batch }

    /// The loss of one SGD step on the images at `indices` (forward, loss, backward, update).
    /// Returns a non-finite loss without updating anything.
    public func step(_ indices: ArraySlice<Int>, lr: Float) -> Double {
        let size = program.inputSize
        images.pixels.withUnsafeBufferPointer { px in
            for (row, i) in indices.enumerated() { (batchImages + row * size).update(from: px.baseAddress! + i * size, count: size) }
        }
        let batchLabels = indices.map { labels[$0] }
        program.forward(images: batchImages)
        let loss = TripletLoss.evaluate(state.recipe.lossKind, embeddings: program.output.baseAddress!, labels: batchLabels,
                                        dim: program.outputSize, margin: state.recipe.margin, gradient: outputGradient)
        guard loss.isFinite else { return loss }
        program.backward(outputGradient: outputGradient)
        optimizer.step(program.parameters, lr: lr)
        return loss
    }

    /// Why `runEpoch` stopped before the end of the epoch.
    public enum Stop: Error { case interrupted, nonFinite(step: Int, loss: Double) }

    /// Runs the rest of the current epoch. `shouldStop` is asked after every step (Ctrl-C); on a stop the
    /// state describes the position reached (for a mid-epoch checkpoint). `afterStep` runs after every step but the
    /// epoch's last, outside the epoch's time (a mid-epoch evaluation). Returns the epoch's mean loss.
    public func runEpoch(progress: Progress? = nil, afterStep: (() -> Void)? = nil,
                         shouldStop: () -> Bool = { false }) throws -> (loss: Double, seconds: Double) {
        var random = TrainingRandom(state: state.epochRandom)!
        let order = random.permutation(images.count)
        let steps = stepsPerEpoch, batch = program.batch
        let lr = state.recipe.schedule.rate(epoch: state.epoch)
        var start = DispatchTime.now().uptimeNanoseconds
        while state.stepInEpoch < steps {
            let s = state.stepInEpoch
            let loss = step(order[s * batch..<(s + 1) * batch], lr: lr)
            guard loss.isFinite else { throw Stop.nonFinite(step: state.step + 1, loss: loss) }
            let now = DispatchTime.now().uptimeNanoseconds
            state.epochSeconds += Double(now - start) / 1e9
            start = now
            state.epochLossSum += loss
            state.stepInEpoch += 1
            state.step += 1
            progress?(state.stepInEpoch, steps, state.epochLossSum / Double(state.stepInEpoch),
                      Double(state.stepInEpoch * batch) / max(state.epochSeconds, 1e-9))
            if state.stepInEpoch < steps, let afterStep {
                afterStep()
                start = DispatchTime.now().uptimeNanoseconds
            }
            if state.stepInEpoch < steps, shouldStop() { throw Stop.interrupted }
        }
        let result = (state.epochLossSum / Double(steps), state.epochSeconds)
        state.epoch += 1
        state.stepInEpoch = 0
        state.epochLossSum = 0
        state.epochSeconds = 0
        state.epochRandom = random.state
        return result
    }

    /// Records a finished epoch; returns true when it is the best so far (lowest loss).
    public func record(_ record: EpochRecord) -> Bool {
        state.history.append(record)
        if state.bestLoss.map({ record.loss < $0 }) ?? true {
            state.bestLoss = record.loss
            state.bestEpoch = record.epoch
            return true
        }
        return false
    }

    /// Records an AUC measured inside an epoch.
    public func noteStepEvaluation(_ e: StepEvaluation) { state.stepEvaluations = (state.stepEvaluations ?? []) + [e] }

    /// Restores velocities from a checkpoint.
    public func restoreOptimizer(_ values: [Float]) throws { try optimizer.restore(values) }

    /// The training-form model holding the current parameters.
    public func currentModel() -> Model { program.parameters.write(into: program.graph.model) }
}
