import ArgumentParser
import Foundation

/// The parent process: makes the corpus, runs the model lane (driver children) and the data lane
/// (`kizuki` children) side by side until the budget is spent, prints the counts, and fails when
/// anything crashed, hung or blew up memory.
struct Supervise: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Fuzz for a time budget (the default command).")
    @Option(help: "Wall-time budget in seconds.") var seconds: Double = 90
    @Option(help: "Seed: the same seed makes the same inputs.") var seed: UInt64 = 1
    @Option(help: "Folder for the corpus, scratch files and findings (replaced).") var out = ".build-fuzz"
    @Option(help: "The kizuki binary (default: beside this one).") var kizuki: String?
    @Option(help: "ONNX backend test data; the allow-listed cases' models are seeds.") var conformance = ".cache/onnx-conformance"
    @Option(help: "The conformance allow-list.") var allowList = "Tests/ConformanceTests/allowlist.txt"
    @Option(help: "The shipped model, a further seed.") var shippedModel = "models/keras-seed/model.onnx"
    @Option(help: "Fashion-MNIST folder (seed images).") var data = "/usr/share/datasets/fashion-mnist"
    @Option(help: "Resident memory (MiB) above which a child is killed and counted as a memory blow-up.") var memoryCap = 512
    @Option(help: "Address-space limit (MiB) of every child: larger allocations fail at once.") var addressSpace = 4096
    @Option(help: "Seconds without progress before a trial counts as a hang.") var timeout: Double = 5
    @Option(help: "Lanes run at once (the model lane and the data lane); 1 runs them one after the other.") var jobs = 2
    @Option(parsing: .unconditionalSingleValue, help: "An extra argument for every kizuki command (repeatable), e.g. --kizuki-arg=--threads=1.")
    var kizukiArg: [String] = []

    /// The engine's own memory limit in every child: half the resident cap, so the engine's refusal (a clean
    /// error) comes first and only memory the engine does not account for reaches the cap.
    var engineBudgetMiB: Int { max(1, memoryCap / 2) }

    func run() throws {
        let outURL = URL(fileURLWithPath: out).standardizedFileURL
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()  // the driver is this binary
        let kizukiURL = kizuki.map { URL(fileURLWithPath: $0) } ?? me.deletingLastPathComponent().appendingPathComponent("kizuki")
        guard FileManager.default.isExecutableFile(atPath: kizukiURL.path) else { throw FuzzError("no kizuki binary at \(kizukiURL.path) (--kizuki)") }
        let start = Date()
        let corpus = try Corpus.create(in: outURL.appendingPathComponent("corpus"), kizuki: kizukiURL, fashionMNIST: URL(fileURLWithPath: data))
        // A shell that starts us in the background ignores SIGQUIT, and children inherit that; the
        // hang and blow-up kills use it to get a backtrace (Spawn.stopWithBacktrace).
        signal(SIGQUIT, SIG_DFL)
        // Every child inherits this: an allocation beyond it fails at once instead of paging the machine.
        var limit = rlimit(rlim_cur: rlim_t(addressSpace) << 20, rlim_max: rlim_t(addressSpace) << 20)
        guard setrlimit(Int32(RLIMIT_AS.rawValue), &limit) == 0 else { throw FuzzError("setrlimit(RLIMIT_AS) failed") }

        let findings = try Findings(folder: outURL.appendingPathComponent("findings"))
        let work = outURL.appendingPathComponent("work")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        let budget = seconds - Date().timeIntervalSince(start)
        let lanes: [(Date) throws -> Void] = [
            { try self.modelLane(until: $0, me: me, corpus: corpus, work: work, findings: findings) },
            { try self.dataLane(until: $0, kizuki: kizukiURL, corpus: corpus, work: work, findings: findings) },
        ]
        var errors: [Error] = []
        let errorLock = NSLock()
        if jobs >= 2 {
            let deadline = Date().addingTimeInterval(budget)
            DispatchQueue.concurrentPerform(iterations: lanes.count) { i in
                do { try lanes[i](deadline) } catch { errorLock.lock(); errors.append(error); errorLock.unlock() }
            }
        } else {
            for lane in lanes { try lane(Date().addingTimeInterval(budget / Double(lanes.count))) }
        }
        if let error = errors.first { throw error }
        let report = findings.report(seconds: Date().timeIntervalSince(start), seed: seed)
        print(report)
        try? report.write(to: outURL.appendingPathComponent("report.txt"), atomically: true, encoding: .utf8)
        if findings.failed {
            print("\nFAILED: each folder above holds the input, stderr.txt and description.txt (with the command that reproduces it); all in \(findings.folder.path)")
            throw ExitCode.failure
        }
    }

    /// Swift's backtracer names the crashing frame (grouping by cause); no interaction, short output.
    static let childEnvironment = ["SWIFT_BACKTRACE": "enable=yes,interactive=no,color=no,threads=crashed,registers=none,images=none,limit=30"]

    func modelLane(until deadline: Date, me: URL, corpus: Corpus, work: URL, findings: Findings) throws {
        var next = 0
        let current = work.appendingPathComponent("model-current.onnx")
        let log = work.appendingPathComponent("driver.log")
        let common = ["--seed", String(seed), "--corpus", corpus.folder.path, "--conformance", conformance,
                      "--allow-list", allowList, "--shipped-model", shippedModel, "--memory-budget", String(engineBudgetMiB)]
        while Date() < deadline {
            let result = try Spawn.run(me, ["drive", "--first", String(next), "--until", String(deadline.timeIntervalSince1970),
                                            "--current", current.path] + common,
                                       limits: .init(memoryCap: memoryCap << 20, startupTimeout: 60), timeout: timeout, log: log,
                                       environment: Self.childEnvironment)
            var begun: (trial: Int, inputWritten: Bool, seedModel: String)?
            for line in ((try? String(contentsOf: log, encoding: .utf8)) ?? "").split(separator: "\n") {
                let f = line.split(separator: " ")
                guard f.count >= 2, let n = Int(f[1]) else { continue }
                switch f[0] {
                case "G": begun = (n, false, "")
                case "B": begun = (n, true, f.count > 2 ? String(f[2]) : "")
                case "E": begun = nil; findings.count(.model, Outcome(rawValue: String(f[2])) ?? .refused)
                default: break
                }
            }
            if result.status == .exited(0) { break }
            guard let (trial, inputWritten, seedModel) = begun else {
                throw FuzzError("the model driver failed before its first trial: \(result.status); see \(result.stderr.path)")
            }
            let saved = work.appendingPathComponent("model-\(trial).onnx")
            try? FileManager.default.removeItem(at: saved)
            if inputWritten { try FileManager.default.copyItem(at: current, to: saved) } else { try Data().write(to: saved) }
            findings.record(.model, trial: trial, result.status, input: saved, stderr: result.stderr) { _ in
                (inputWritten ? "(mutated from \(seedModel)) " : "(while making the input) ")
                    + "\(me.path) drive --first \(trial) --count 1 --current /tmp/trial.onnx " + common.joined(separator: " ")
            }
            try? FileManager.default.removeItem(at: saved)
            next = trial + 1
        }
    }

    func dataLane(until deadline: Date, kizuki: URL, corpus: Corpus, work: URL, findings: Findings) throws {
        let trials = CLITrials(corpus: corpus, extraArguments: ["--memory-limit", "\(engineBudgetMiB)M"] + kizukiArg)
        let kinds = TrialKind.allCases.filter { $0 != .model }
        var next: [TrialKind: Int] = [:]
        var i = 0
        while Date() < deadline {
            let kind = kinds[i % kinds.count]
            i += 1
            let n = next[kind, default: 0]
            next[kind] = n + 1
            var rng = TrialRandom(seed: seed, kind: kind, trial: n)
            let folder = work.appendingPathComponent(kind.rawValue)
            let trial = try trials.make(kind, trial: n, in: folder, &rng)
            let result = try Spawn.run(kizuki, trial.arguments, limits: .init(memoryCap: memoryCap << 20, startupTimeout: timeout),
                                       timeout: timeout, log: work.appendingPathComponent("\(kind.rawValue).log"),
                                       environment: Self.childEnvironment)
            switch result.status {
            case .exited(0): findings.count(kind, .success)
            case .exited(1), .exited(64): findings.count(kind, .refused)  // a clean error; 64 = usage error
            default:
                findings.record(kind, trial: n, result.status, input: trial.input, stderr: result.stderr) { saved in
                    "\(kizuki.path) " + trial.arguments.map { $0.replacingOccurrences(of: trial.input.path, with: saved.path) }
                        .map { $0.contains(" ") || $0.isEmpty ? "'\($0)'" : $0 }.joined(separator: " ")
                }
            }
        }
    }
}
