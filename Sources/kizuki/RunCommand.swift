import ArgumentParser
import Engine
import Foundation
import OnnxIO

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a model on tensors from .npy or .pb files and write every output as .npy.")

    @Argument(help: "The .onnx file.") var model: String
    @Option(name: .customLong("input"), help: "NAME=FILE (.npy or .pb); repeat for each input.")
    var inputs: [String] = []
    @Option(help: "Folder for the outputs (created if missing).") var outputDir: String
    @OptionGroup var engine: EngineOptions

    func validate() throws {
        for i in inputs where !i.contains("=") {
            throw ValidationError("--input takes NAME=FILE, got '\(i)'")
        }
    }

    /// Output names become file names: characters outside [A-Za-z0-9._-] turn into '_'.
    static func fileName(for output: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        let safe = String(output.map { allowed.contains($0) ? $0 : "_" })
        return (safe.isEmpty ? "_" : safe) + ".npy"
    }

    func run() throws {
        do {
            let session = try Session(contentsOf: URL(fileURLWithPath: model), options: engine.sessionOptions)
            var feeds: [String: HostTensor] = [:]
            for pair in inputs {
                let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                feeds[parts[0]] = try HostTensor(Tensor(file: URL(fileURLWithPath: parts[1])))
            }
            let outputs = try session.run(feeds)
            let dir = URL(fileURLWithPath: outputDir)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            for info in session.outputs {
                let file = Run.fileName(for: info.name)
                try Npy.write(outputs[info.name]!.onnxTensor(name: info.name), to: dir.appendingPathComponent(file))
                print("\(info.name) -> \(dir.appendingPathComponent(file).path) \(outputs[info.name]!.shape)")
            }
        } catch let e as ExitCode { throw e } catch { throw fail(error) }
    }
}
