import ArgumentParser
import Engine
import Foundation

/// Options every command that runs a model shares.
struct EngineOptions: ParsableArguments {
    @Option(help: "Threads the engine may use (all cores by default).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Flag(help: "Fail at the first node that produces NaN or Inf, naming it.")
    var checkFinite = false

    @Option(help: ArgumentHelp("Most memory the engine may allocate for one input shape, e.g. 512M or 8G (default: half of physical memory).",
                               valueName: "bytes"),
            transform: { try EngineOptions.byteCount($0) })
    var memoryLimit: Int?

    /// "4096", "512K", "512M", "8G", "1.5T" (binary units; an optional trailing "B" or "iB").
    static func byteCount(_ text: String) throws -> Int {
        var number = text.trimmingCharacters(in: .whitespaces).uppercased()
        for suffix in ["IB", "B"] where number.hasSuffix(suffix) && number.count > suffix.count { number.removeLast(suffix.count) }
        var unit = 1.0
        if let last = number.last, let power = ["K": 1, "M": 2, "G": 3, "T": 4][String(last)] {
            unit = pow(1024, Double(power))
            number.removeLast()
        }
        guard let value = Double(number), value.isFinite, value > 0, value * unit < 0x1p62 else {
            throw ValidationError("--memory-limit must be a positive size such as 512M or 8G (got '\(text)')")
        }
        return Int(value * unit)
    }

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1 (got \(threads))") }
    }

    var sessionOptions: SessionOptions {
        var o = SessionOptions()
        o.threads = threads
        o.checkFinite = checkFinite
        if let memoryLimit { o.memoryBudget = memoryLimit }
        return o
    }
}
