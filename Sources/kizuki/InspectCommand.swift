import ArgumentParser
import Foundation
import Keras
import OnnxIO

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe an ONNX model (producer, opsets, inputs and outputs, operators, parameters) or a Keras weight file (.h5, .hdf5, .weights.h5).")

    @Argument(help: "The .onnx file, or a Keras .h5 / .hdf5 / .weights.h5 weight file.") var model: String
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

    /// Layers with their weight names and shapes: a Keras 2 file in its order (Keras matches it by position),
    /// a Keras 3 file by path (how Keras 3 matches it).
    func inspectKeras() throws {
        let weights: KerasWeights
        do {
            try FileAction.checkInput(model, option: "the weight file")
            try KerasFileProbe.check(model)
            if try Keras3Weights.isKeras3(file: model) { return inspectKeras3(try Keras3Weights(contentsOf: model)) }
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

    func inspectKeras3(_ weights: Keras3Weights) {
        let variables = weights.layers.flatMap(\.variables)
        print("\(model): Keras 3 weight file")
        print("\(weights.layers.count) layers with variables, \(variables.count) variables, \(variables.reduce(0) { $0 + $1.values.count }) values")
        for layer in weights.layers {
            print("  \(layer.path)" + (layer.name.map { "  (\($0))" } ?? ""))
            for v in layer.variables { print("    \(v.name)  \(v.shape)") }
        }
    }
}
