import Foundation

/// Runs one child process under watch: killed when it makes no progress on stdout for `timeout`
/// seconds (a hang) or when its resident memory passes `memoryCap` bytes (a blow-up).
/// The address-space limit that turns allocations too large to make into failures is set on the
/// supervisor itself (`setrlimit(RLIMIT_AS)`), which every child inherits.
enum Spawn {
    enum Status: Equatable {
        case exited(Int32)
        case signaled(Int32)
        /// No progress for the timeout; the resident memory when it was stopped tells a slow blow-up.
        case hung(residentBytes: Int)
        case memoryBlowUp(peakBytes: Int)
    }

    struct Limits {
        var memoryCap: Int
        var startupTimeout: Double
    }

    struct Result {
        let status: Status
        let stdout: URL
        let stderr: URL
    }

    static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// `log` receives stdout; stderr goes to the same path with `.err` appended.
    static func run(_ executable: URL, _ arguments: [String], limits: Limits?, timeout: Double, log: URL,
                    environment: [String: String] = [:]) throws -> Result {
        let errLog = log.appendingPathExtension("err")
        try Data().write(to: log)
        try Data().write(to: errLog)
        let out = try FileHandle(forWritingTo: log), err = try FileHandle(forWritingTo: errLog)
        defer { try? out.close(); try? err.close() }
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        try process.run()
        let pid = process.processIdentifier

        var lastSize = 0
        var lastProgress = Date()
        var allowance = limits?.startupTimeout ?? timeout
        var verdict: Status?
        while process.isRunning {
            usleep(10_000)
            let size = (try? FileManager.default.attributesOfItem(atPath: log.path)[.size] as? Int) ?? 0
            if size != lastSize { lastSize = size; lastProgress = Date(); allowance = timeout }
            if let limits, let rss = residentBytes(pid), rss > limits.memoryCap {
                verdict = .memoryBlowUp(peakBytes: rss)
            } else if Date().timeIntervalSince(lastProgress) > allowance {
                // Swift's backtracer may be symbolicating a crash: give it time to finish its report.
                if allowance < backtraceAllowance, crashReportInProgress(errLog) { allowance = backtraceAllowance } else {
                    verdict = .hung(residentBytes: residentBytes(pid) ?? 0)
                }
            }
            if verdict != nil { stopWithBacktrace(process); break }
        }
        process.waitUntilExit()
        if let verdict { return Result(status: verdict, stdout: log, stderr: errLog) }
        let status: Status = process.terminationReason == .uncaughtSignal
            ? .signaled(process.terminationStatus) : .exited(process.terminationStatus)
        return Result(status: status, stdout: log, stderr: errLog)
    }

    /// SIGQUIT first: Swift's backtracer then prints where the child was stuck or allocating
    /// (the signature of the finding); SIGKILL if it has not ended after `backtraceAllowance`.
    static func stopWithBacktrace(_ process: Process) {
        kill(process.processIdentifier, SIGQUIT)
        let giveUp = Date().addingTimeInterval(backtraceAllowance)
        while process.isRunning && Date() < giveUp { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    /// Resident set size from /proc (nil once the process is gone).
    static func residentBytes(_ pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * pageSize
    }

    static let backtraceAllowance = 15.0

    static func crashReportInProgress(_ errLog: URL) -> Bool {
        (try? String(contentsOf: errLog, encoding: .utf8))?.contains("Backtracing from") ?? false
    }
}
