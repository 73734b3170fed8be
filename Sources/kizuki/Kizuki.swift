import ArgumentParser
import Foundation

@main
struct Kizuki: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kizuki",
        abstract: "Image anomaly detection with learned embeddings, on ONNX models.",
        subcommands: [Inspect.self, Run.self, Embed.self, Index.self, Score.self, Calibrate.self, Eval.self, Bench.self, Conformance.self]
    )
}

/// Prints an error the way every subcommand does: one line naming what failed, exit 1.
func fail(_ error: Error) -> ExitCode {
    FileHandle.standardError.write(Data("error: \(userMessage(for: error))\n".utf8))
    return ExitCode.failure
}
