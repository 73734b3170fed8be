import ArgumentParser
import Engine
import Foundation

@main
struct Kizuki: ParsableCommand {
    /// The release of the tool and its modules.
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "kizuki",
        abstract: "Image anomaly detection with learned embeddings, on ONNX models.",
        subcommands: [Inspect.self, Run.self, Embed.self, Index.self, Score.self, Calibrate.self, Eval.self, Train.self, KerasCommand.self, Bench.self, BenchTrain.self, Conformance.self]
    )

    @Flag(help: "Print Kizuki's version, the CPU's vector features and the BLAS kernels in use.") var version = false

    func run() throws {
        guard version else { throw CleanExit.helpRequest(self) }
        for line in Kizuki.platformLines() { print(line) }
    }

    /// "kizuki 0.1.0", the CPU and the BLAS core: what decides the speed on this machine (also bench's header).
    static func platformLines() -> [String] {
        // Loading reports its own failure in `BLAS.summary`; the version must print either way.
        try? BLAS.load()
        return ["kizuki \(version)", "cpu:  \(CPUInfo.current.summary)", "blas: \(BLAS.summary)",
                "conv: NHWC kernels \(NHWCKernels.instructionSet) (KIZUKI_ISA=generic|avx2|avx512 chooses)"]
    }
}

/// Prints an error the way every subcommand does: one line naming what failed, exit 1.
func fail(_ error: Error) -> ExitCode {
    FileHandle.standardError.write(Data("error: \(userMessage(for: error))\n".utf8))
    return ExitCode.failure
}
