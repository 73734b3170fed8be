import Foundation

/// What the supervisor counts and saves: outcomes per kind, and each crash, hang or memory
/// blow-up with its input, a one-line description and a signature for grouping by cause.
final class Findings {
    enum Failure: String { case crash, hang, memory = "memory blow-up" }

    struct Counts {
        var tried = 0, success = 0, refused = 0, notRun = 0, crash = 0, hang = 0, memory = 0
    }

    struct Finding {
        let kind: TrialKind
        let failure: Failure
        let folder: URL
        let description: String
        let signature: String
    }

    let folder: URL
    private(set) var counts: [TrialKind: Counts] = [:]
    private(set) var list: [Finding] = []
    private let lock = NSLock()

    init(folder: URL) throws {
        self.folder = folder
        try? FileManager.default.removeItem(at: folder)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    func count(_ kind: TrialKind, _ outcome: Outcome) {
        lock.lock(); defer { lock.unlock() }
        counts[kind, default: Counts()].tried += 1
        switch outcome {
        case .success: counts[kind]!.success += 1
        case .refused: counts[kind]!.refused += 1
        case .notRun: counts[kind]!.notRun += 1
        }
    }

    /// Saves the input (file or folder) and `description.txt`; returns the finding's folder.
    /// `reproduce` gets the saved input's path and returns the command that replays the trial.
    func record(_ kind: TrialKind, trial: Int, _ status: Spawn.Status, input: URL, stderr: URL, reproduce: (URL) -> String) {
        let failure: Failure
        let what: String
        switch status {
        case .hung(let rss): (failure, what) = (.hang, "no progress for the timeout, killed at \(rss >> 20) MiB resident")
        case .memoryBlowUp(let peak): (failure, what) = (.memory, "resident memory \(peak >> 20) MiB passed the cap, killed")
        case .signaled(let signal): (failure, what) = (.crash, "killed by signal \(signal) (\(String(cString: strsignal(signal))))")
        case .exited(let code): (failure, what) = (.crash, "exit code \(code)")
        }
        let log = (try? String(contentsOf: stderr, encoding: .utf8)) ?? ""
        let signature = Self.signature(log, status: status)
        let message = Self.message(log)
        lock.lock(); defer { lock.unlock() }
        counts[kind, default: Counts()].tried += 1
        switch failure {
        case .crash: counts[kind]!.crash += 1
        case .hang: counts[kind]!.hang += 1
        case .memory: counts[kind]!.memory += 1
        }
        let dir = folder.appendingPathComponent("\(kind.rawValue)-\(trial)-\(failure == .memory ? "memory" : failure.rawValue)")
        let fm = FileManager.default
        try? fm.createDirectory(at: dir, withIntermediateDirectories: true)
        let saved = dir.appendingPathComponent(input.lastPathComponent)
        try? fm.copyItem(at: input, to: saved)
        try? fm.copyItem(at: stderr, to: dir.appendingPathComponent("stderr.txt"))
        let description = "\(kind.rawValue) trial \(trial): \(failure.rawValue), \(what); at: \(signature); stderr: \(message)"
        try? (description + "\nreproduce: " + reproduce(saved) + "\n").write(to: dir.appendingPathComponent("description.txt"), atomically: true, encoding: .utf8)
        list.append(Finding(kind: kind, failure: failure, folder: dir, description: description, signature: signature))
    }

    /// The child's own last words: the Swift runtime's fatal error or failure ("arithmetic
    /// overflow"), the crash's signal, else the last line.
    static func message(_ log: String) -> String {
        let lines = log.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if let fatal = lines.first(where: { $0.contains("Fatal error") }) {
            return String(fatal[fatal.range(of: "Fatal error")!.lowerBound...])
        }
        if let failure = lines.first(where: { $0.hasPrefix("*** Swift runtime failure") || $0.hasPrefix("*** Program crashed") }) {
            // Without the address, so the same fault at another address groups with it.
            return failure.trimmingCharacters(in: CharacterSet(charactersIn: "* "))
                .replacingOccurrences(of: #" at 0x[0-9a-f]+"#, with: "", options: .regularExpression)
        }
        return lines.last ?? ""
    }

    /// The cause, for grouping: the innermost frame of Kizuki's own code in Swift's backtrace
    /// (for a hang or blow-up, the child was sent SIGQUIT first so there is one), else the innermost
    /// frame, with the runtime's message for a crash.
    static func signature(_ log: String, status: Spawn.Status) -> String {
        let lines = log.split(separator: "\n").map(String.init)
        let frames = lines.filter { $0.range(of: #"^\s*\d+ .*0x[0-9a-f]+ "#, options: .regularExpression) != nil }
        let own = frames.first { line in ["OnnxIO/", "Engine/", "Anomaly/", "kizuki/", "kizuki-fuzz/"].contains { line.contains("/Sources/" + $0) } }
        var place = ""
        if let frame = own ?? frames.first {
            // "3 [ra] 0x… Engine.TensorStorage.init(byteCount:) + 60 in kizuki at /…/Sources/Engine/HostTensor.swift:11:19"
            let symbol = frame.split(separator: " ").drop { !$0.hasPrefix("0x") }.dropFirst().prefix { $0 != "+" }.joined(separator: " ")
            let file = frame.range(of: "/Sources/").map { " (\(frame[$0.upperBound...]))" }
                ?? frame.range(of: " in ").map { " (\(frame[$0.upperBound...].split(separator: " ").first ?? ""))" } ?? ""
            place = symbol + file
        }
        switch status {
        case .hung: return "hang" + (place.isEmpty ? "" : " in \(place)")
        case .memoryBlowUp: return "memory blow-up" + (place.isEmpty ? "" : " in \(place)")
        case .signaled(let s): return (place.isEmpty ? "signal \(s)" : place) + ": " + message(log)
        case .exited(let c): return (place.isEmpty ? "exit \(c)" : place) + ": " + message(log)
        }
    }

    /// The counts table and the findings grouped by signature.
    func report(seconds: Double, seed: UInt64) -> String {
        lock.lock(); defer { lock.unlock() }
        var lines = ["kizuki-fuzz: seed \(seed), \(String(format: "%.0f", seconds)) s",
                     "kind      tried  success  refused  not-run  crashes  hangs  memory"]
        var total = Counts()
        for kind in TrialKind.allCases {
            let c = counts[kind] ?? Counts()
            lines.append(row(kind.rawValue, c))
            total.tried += c.tried; total.success += c.success; total.refused += c.refused; total.notRun += c.notRun
            total.crash += c.crash; total.hang += c.hang; total.memory += c.memory
        }
        lines.append(row("total", total))
        let groups = Dictionary(grouping: list) { "\($0.failure.rawValue): \($0.signature)" }
        if !groups.isEmpty { lines.append("\n\(list.count) failing inputs, \(groups.count) distinct causes:") }
        for (cause, findings) in groups.sorted(by: { $0.key < $1.key }) {
            lines.append("- \(cause) (\(findings.count)x; \(Set(findings.map(\.kind.rawValue)).sorted().joined(separator: ", ")))")
            for f in findings.prefix(3) { lines.append("    \(f.folder.path)") }
        }
        return lines.joined(separator: "\n")
    }

    var failed: Bool { !list.isEmpty }

    private func row(_ name: String, _ c: Counts) -> String {
        name.padding(toLength: 8, withPad: " ", startingAt: 0)
            + [c.tried, c.success, c.refused, c.notRun, c.crash, c.hang, c.memory].enumerated()
            .map { String($0.element).leftPadded([7, 9, 9, 9, 9, 7, 8][$0.offset]) }.joined()
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
