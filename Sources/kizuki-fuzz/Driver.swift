import ArgumentParser
import Foundation

/// The child process of the model trials: runs trials first, first+1, ... until the deadline.
/// Before each it writes the model to `--current` and prints `B n`, after it `E n ok|refused|notrun`,
/// so when a trial kills it the supervisor knows which one and has its input (a refusal's
/// line ends with the error, to see where mutants stop).
struct Drive: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run model trials in this process (started by the supervisor).")
    @Option(help: "Seed of the run.") var seed: UInt64
    @Option(help: "First trial number.") var first: Int
    @Option(help: "Stop after this many trials.") var count = Int.max
    @Option(help: "Stop at this time (seconds since 1970).") var until: Double = .infinity
    @Option(help: "The corpus folder the supervisor wrote.") var corpus: String
    @Option(help: "ONNX backend test data (.cache/onnx-conformance).") var conformance: String?
    @Option(help: "Conformance allow-list: its cases are the seeds.") var allowList: String?
    @Option(help: "A further seed model (the shipped one).") var shippedModel: String?
    @Option(help: "Where each trial's model is written before it runs.") var current: String
    @Option(help: "The engine's memory budget per trial, MiB (default: the engine's own default).") var memoryBudget: Int?

    func run() throws {
        // Never outlive the supervisor: a trial may block for ever (prctl's death signal is not callable from Swift).
        let parent = getppid()
        Thread.detachNewThread { while getppid() == parent { sleep(1) }; _exit(2) }
        var trials = try ModelTrials(corpus: URL(fileURLWithPath: corpus), conformance: conformance.map(URL.init(fileURLWithPath:)),
                                     allowList: allowList.map(URL.init(fileURLWithPath:)), shippedModel: shippedModel.map(URL.init(fileURLWithPath:)))
        if let memoryBudget { trials.memoryBudget = memoryBudget << 20 }
        let currentURL = URL(fileURLWithPath: current)
        emit("ready \(trials.seeds.count) seeds")
        var n = first
        while n - first < count, Date().timeIntervalSince1970 < until {
            var rng = TrialRandom(seed: seed, kind: .model, trial: n)
            emit("G \(n)")  // a crash before B is in making the input (the model encoder)
            let (bytes, seedModel) = trials.input(trial: n, &rng)
            try bytes.write(to: currentURL)
            emit("B \(n) \(seedModel.name)")
            do { emit("E \(n) \(try trials.run(bytes, seed: seedModel, &rng).rawValue)") } catch {
                emit("E \(n) \(Outcome.refused.rawValue) \(String(describing: error).prefix(160).replacingOccurrences(of: "\n", with: " "))")
            }
            n += 1
        }
    }

    func emit(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
}
