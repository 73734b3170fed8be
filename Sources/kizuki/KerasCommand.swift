import ArgumentParser
import Foundation
import Keras
import OnnxIO
import Training

struct KerasCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keras",
        abstract: "Move the embedder's weights between Keras weight files and Kizuki checkpoints, with no Python in between.",
        subcommands: [KerasImport.self, KerasExport.self, KerasProbe.self])
}

struct KerasImport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Read a Keras weight file of the reference embedder into Kizuki's ONNX form.",
        discussion: """
        Reads Keras 2 / tf_keras .h5 and .hdf5 files (save_weights, ModelCheckpoint, or a full model.save file), matched \
        by position as Keras does, and Keras 3 .weights.h5 files, matched by path; every shape is checked. Writes to \
        --out: checkpoint.onnx (the training form: `kizuki train --init DIR/checkpoint.onnx` fine-tunes it; `kizuki keras \
        export` writes it back) and model.onnx (the same graph, for run, embed, score and eval). The Keras layout (nested or \
        flat MobileNetV2) and the Dense layer's name are kept in the ONNX metadata, so an export writes them back the same way.
        """)

    @Argument(help: "The Keras weight file (.h5, .hdf5 or .weights.h5).") var weights: String
    @Option(help: "Output folder (created; must not already hold a checkpoint.onnx or model.onnx).") var out: String

    func run() throws {
        do {
            try FileAction.checkInput(weights, option: "the weight file")
            try KerasFileProbe.check(weights)
            let imported = try EmbedderKerasWeights.read(weights)
            let folder = URL(fileURLWithPath: out)
            let files = ["checkpoint.onnx", "model.onnx"].map { folder.appendingPathComponent($0) }
            if let existing = files.first(where: { FileManager.default.fileExists(atPath: $0.path) }) {
                throw TrainingError("\(existing.path) already exists; choose another --out or remove it")
            }
            try FileAction.createFolder(out) { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) }
            let data = try imported.graph.model.serialized()
            for file in files { try FileAction.write(file.path) { try data.write(to: file, options: .atomic) } }
            let parameters = imported.graph.parameters
            let dense = parameters[parameters.count - 2].shape  // dense/kernel [1280, embedding size]
            print("\(weights): \(imported.format), \(imported.layout) MobileNetV2, Dense '\(imported.denseName)' \(dense[0]) → \(dense[1]); "
                + "\(parameters.count) weights, \(parameters.reduce(0) { $0 + $1.count }) values")
            print("wrote \(files[0].path) (train --init, keras export) and \(files[1].path) (run, embed, score, eval)")
        } catch { throw fail(error) }
    }
}

struct KerasExport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a Kizuki checkpoint of the embedder as Keras weights that model.load_weights(...) accepts.",
        discussion: """
        FILE.h5 / FILE.hdf5: the Keras 2 layout (root layer_names, weight_names per layer), which tf_keras and Keras 3 both \
        load by position. FILE.weights.h5: the Keras 3 layout (layers/<class-based name>/vars/<i>). The layout (nested: \
        the reference recipe's model, MobileNetV2 as one layer; flat: MobileNetV2(input_tensor=...)) and the Dense's name \
        default to what `kizuki keras import` recorded, else nested and 'dense'.
        """)

    @Argument(help: "A training-form checkpoint of the embedder (checkpoint.onnx or model.onnx from `kizuki train` or `kizuki keras import`).")
    var checkpoint: String
    @Option(help: "The Keras file to write: .h5 / .hdf5 (Keras 2 layout) or .weights.h5 (Keras 3).") var out: String
    @Option(help: "nested or flat (default: as imported, else nested).") var layout: String?
    @Option(help: "The Keras name of the Dense layer (default: as imported, else 'dense').") var denseName: String?

    func validate() throws {
        let lower = out.lowercased()
        guard [".h5", ".hdf5"].contains(where: lower.hasSuffix) else {
            throw ValidationError("--out must end in .h5 or .hdf5 (Keras 2 layout) or .weights.h5 (Keras 3), got '\(out)'")
        }
        if let layout, KerasLayout(rawValue: layout) == nil { throw ValidationError("--layout must be nested or flat (got '\(layout)')") }
        if let denseName, denseName.isEmpty || denseName.contains("/") { throw ValidationError("--dense-name must be a plain layer name (got '\(denseName)')") }
    }

    func run() throws {
        do {
            try FileAction.checkInput(checkpoint, option: "the checkpoint")
            let model = try Model(contentsOf: URL(fileURLWithPath: checkpoint))
            let written = try EmbedderKerasWeights.write(model, file: checkpoint, to: out, layout: layout.flatMap(KerasLayout.init(rawValue:)),
                                                         denseName: denseName)
            let format = out.lowercased().hasSuffix(".weights.h5") ? "Keras 3" : "Keras 2"
            print("wrote \(out) (\(format) layout, \(written.layout) MobileNetV2, Dense '\(written.denseName)')")
        } catch { throw fail(error) }
    }
}
