import ArgumentParser
import Engine
import Foundation
import OnnxIO

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a model on tensors from .npy or .pb files and write every output as .npy.")

    @Argument(help: "The .onnx file.") var model: String
    @Option(name: .customLong("input"), help: "NAME=FILE (.npy or .pb); repeat for each input. The name ends at the first '='.")
    var inputs: [String] = []
    @Option(help: "Folder for the outputs (created if missing).") var outputDir: String
    @OptionGroup var engine: EngineOptions

    func validate() throws {
        _ = try Run.feeds(inputs)
        guard !outputDir.isEmpty else { throw ValidationError("--output-dir needs a folder name") }
    }

    /// NAME=FILE pairs, split at the first '=': both parts non-empty, each name given once.
    static func feeds(_ pairs: [String]) throws -> [(name: String, file: String)] {
        var seen = Set<String>()
        return try pairs.map { pair in
            guard let eq = pair.firstIndex(of: "=") else { throw ValidationError("--input takes NAME=FILE, got '\(pair)'") }
            let name = String(pair[..<eq]), file = String(pair[pair.index(after: eq)...])
            guard !name.isEmpty else { throw ValidationError("--input '\(pair)' has no input name before '=' (NAME=FILE)") }
            guard !file.isEmpty else { throw ValidationError("--input '\(pair)' has no file after '=' (NAME=FILE)") }
            guard seen.insert(name).inserted else { throw ValidationError("--input '\(name)' is given more than once") }
            return (name, file)
        }
    }

    /// One file name per output, in the graph's order: characters outside [A-Za-z0-9._-] become '_',
    /// long names are cut, and a name already taken (ignoring case, for case-insensitive file systems)
    /// gets the first free suffix -2, -3, ..., so no output overwrites another and the names are stable.
    static func fileNames(for outputs: [String]) -> [String] {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        var taken = Set<String>()
        return outputs.map { output in
            var base = String(output.map { allowed.contains($0) ? $0 : "_" }.prefix(200))
            // Not empty, not hidden, never "." or "..".
            if base.isEmpty || base.hasPrefix(".") { base = "_" + base }
            var name = base + ".npy", n = 1
            while taken.contains(name.lowercased()) {
                n += 1
                name = "\(base)-\(n).npy"
            }
            taken.insert(name.lowercased())
            return name
        }
    }

    /// A name on one line: control characters (a newline in an output name) written as \u{..} escapes.
    static func oneLine(_ name: String) -> String {
        name.unicodeScalars.map { $0.properties.generalCategory == .control ? "\\u{\(String($0.value, radix: 16))}" : String($0) }.joined()
    }

    func run() throws {
        do {
            // Check the folder before running anything.
            if let problem = FileError.diagnose(.createFolder, path: outputDir) { throw FileError(.createFolder, path: outputDir, reason: problem) }
            let pairs = try Run.feeds(inputs)
            try FileAction.checkInput(model, option: "the model")
            let session = try Session(contentsOf: URL(fileURLWithPath: model), options: engine.sessionOptions)
            var feeds: [String: HostTensor] = [:]
            for (name, file) in pairs {
                try FileAction.checkInput(file, option: "--input \(name)")
                feeds[name] = try HostTensor(Tensor(file: URL(fileURLWithPath: file)))
            }
            let outputs = try session.run(feeds)
            let dir = URL(fileURLWithPath: outputDir)
            try FileAction.createFolder(outputDir) { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) }
            let readPaths = [("the model", model)] + pairs.map { ("input '\($0.name)'", $0.file) }
            for (info, file) in zip(session.outputs, Run.fileNames(for: session.outputs.map(\.name))) {
                guard let value = outputs[info.name] else { throw EngineError(.invalidModel, "the run produced no value for output '\(info.name)'") }
                let path = dir.appendingPathComponent(file).path
                try OutputFile(path, kind: .npy, option: "--output-dir", inputs: readPaths).write(Npy.encode(value.onnxTensor(name: info.name)))
                print("\(Run.oneLine(info.name)) -> \(path) \(value.shape)")
            }
        } catch let e as ExitCode { throw e } catch { throw fail(error) }
    }
}
