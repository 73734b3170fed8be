import ArgumentParser
import Engine
import Foundation

/// Options every command that runs a model shares.
struct EngineOptions: ParsableArguments {
    @Option(help: "Threads the engine may use (all cores by default).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Flag(help: "Fail at the first node that produces NaN or Inf, naming it.")
    var checkFinite = false

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1 (got \(threads))") }
    }

    var sessionOptions: SessionOptions {
        var o = SessionOptions()
        o.threads = threads
        o.checkFinite = checkFinite
        return o
    }
}
