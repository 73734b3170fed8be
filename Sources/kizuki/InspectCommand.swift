import ArgumentParser
import Foundation
import Keras
import OnnxIO

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe an ONNX model (producer, opsets, inputs and outputs, operators, parameters) or a Keras weight file (.h5).")

    @Argument(help: "The .onnx file, or a Keras .h5 / .hdf5 weight file.") var model: String
    @Flag(help: "Print the same fields as JSON.") var json = false

    func run() throws {
        if [".h5", ".hdf5"].contains(where: model.lowercased().hasSuffix) { return try inspectKeras() }
        let url = URL(fileURLWithPath: model)
        let summary: ModelSummary
        do {
            try FileAction.checkInput(model, option: "the model")
            summary = ModelSummary(model: try Model(contentsOf: url), file: model)
        } catch { throw fail(error) }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(summary), as: UTF8.self))
        } else {
            print(summary.text)
        }
    }

    /// Layers with their weight names and shapes, in the file's order (Keras matches them by position).
    func inspectKeras() throws {
        let weights: KerasWeights
        do {
            try FileAction.checkInput(model, option: "the weight file")
            weights = try KerasWeights(contentsOf: model)
        } catch { throw fail(error) }
        let withWeights = weights.layers.filter { !$0.weights.isEmpty }
        let total = weights.weights.reduce(0) { $0 + $1.values.count }
        print("\(model): Keras weight file (keras \(weights.kerasVersion ?? "?"), backend \(weights.backend ?? "?"))")
        print("\(weights.layers.count) layers, \(withWeights.count) with weights, \(weights.weights.count) weights, \(total) values")
        for layer in withWeights {
            print("  \(layer.name)")
            for w in layer.weights { print("    \(w.name)  \(w.shape)") }
        }
    }
}
