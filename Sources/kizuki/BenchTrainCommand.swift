import Anomaly
import ArgumentParser
import Engine
import Foundation
import Training

struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-train",
        abstract: "Time SGD steps of the reference recipe (MobileNetV2 embedder, batch-all triplet loss) on real images.",
        discussion: "Median images per second over the timed steps, peak memory, and time per op kind for forward and backward. " +
                    "`make bench-train` runs TensorFlow on the same recipe in the same run.")

    @Option(help: "Images per step.") var batch = 128
    @Option(help: "Threads.") var threads = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Timed steps (after warm-up).") var steps = 10
    @Option(help: "Untimed warm-up steps.") var warmup = 2
    @Option(help: "Fashion-MNIST folder.") var data: String?
    @Flag(help: "Print one JSON object.") var json = false
    @Flag(help: "Time each training kernel of the gradient table at the network's sizes instead (forward and backward).") var ops = false

    func validate() throws {
        guard batch >= 2 else { throw ValidationError("--batch must be at least 2 (got \(batch))") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1 (got \(threads))") }
        guard steps >= 1, warmup >= 0 else { throw ValidationError("--steps must be at least 1 and --warmup non-negative") }
    }

    func run() throws {
        do {
            try BLAS.loadSingleThreaded()
            if ops { return timeOps() }
            let recipe = TrainingRecipe()
            let data = try TrainingData.fashionMNIST(normal: recipe.normal, exclude: recipe.exclude, directory: FashionMNIST.directory(self.data),
                                                     limit: batch * (steps + warmup))
            let built = MobileNetV2Embedder().build(seed: recipe.seed)
            let program = try TrainingProgram(graph: TrainingGraph(model: built.model, parameters: built.parameters), batch: batch, threads: threads)
            var state = TrainingState(recipe: recipe)
            state.recipe.batch = batch
            let trainer = try Trainer(program: program, state: state, images: data.images, labels: data.labels)
            var times: [Double] = []
            for s in 0..<(warmup + steps) {
                if s == warmup { program.profiling = true; program.resetProfile() }
                let t0 = DispatchTime.now().uptimeNanoseconds
                let loss = trainer.step(Array(s * batch..<(s + 1) * batch)[...], lr: recipe.schedule.base)
                guard loss.isFinite else { throw TrainingError("the loss became \(loss) at step \(s + 1)") }
                if s >= warmup { times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6) }
            }
            let median = times.sorted()[times.count / 2]
            let perSecond = Double(batch) / (median / 1000)
            let ops = program.profile.mapValues { $0 * 1000 / Double(steps) }
            let peak = PeakMemory.mebibytes()
            if json {
                let object: [String: Any] = ["images_per_second": perSecond, "step_ms_median": median, "peak_rss_bytes": Int(peak * 1024 * 1024),
                                             "batch": batch, "threads": threads, "steps": steps, "ops": ops, "cpu": CPUInfo.current.summary, "blas": BLAS.summary]
                print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
            } else {
                for line in Kizuki.platformLines() { print(line) }
                print(String(format: "batch %d, %d thread(s): median step %.1f ms, %.1f images/s, peak RSS %.0f MiB", batch, threads, median, perSecond, peak))
                for (op, ms) in ops.sorted(by: { $0.value > $1.value }) {
                    print("  " + op.padding(toLength: 32, withPad: " ", startingAt: 0) + String(format: " %8.1f ms/step", ms))
                }
            }
        } catch let e as ExitCode { throw e } catch { throw fail(error) }
    }

    /// The gradient table's `.timing` cases on `threads` threads: median of `steps` runs each.
    func timeOps() {
        var random = TrainingRandom(seed: 1)
        func row(_ op: String, _ name: String, _ forward: String, _ backward: String) {
            let pad = { (s: String, n: Int) in s.padding(toLength: max(n, s.count), withPad: " ", startingAt: 0) }
            print(pad(op, 18) + " " + pad(name, 64) + " " + String(repeating: " ", count: max(0, 9 - forward.count)) + forward
                  + " " + String(repeating: " ", count: max(0, 9 - backward.count)) + backward)
        }
        row("op", "case", "fwd ms", "bwd ms")
        for c in OpTable.cases(.timing, threads: threads) {
            let inputs = zip(c.inputShapes, c.inputRanges).map { shape, range in
                (0..<shape.reduce(1, *)).map { _ in random.uniform(range.lowerBound, range.upperBound) }
            }
            let dy = (0..<c.outputShape.reduce(1, *)).map { _ in random.uniform(-1, 1) }
            func median(_ body: () -> Void) -> Double {
                body()
                let times = (0..<steps).map { _ -> Double in
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    body()
                    return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
                }
                return times.sorted()[times.count / 2]
            }
            let forward = median { _ = c.forward(inputs) }
            let backward = median { _ = c.backward(inputs, dy) }
            row(c.op, c.name, String(format: "%.2f", forward), String(format: "%.2f", backward))
        }
    }
}
