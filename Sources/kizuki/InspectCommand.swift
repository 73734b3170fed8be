import ArgumentParser
import Foundation
import OnnxIO

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe an ONNX model: producer, opsets, inputs and outputs, operators, parameters.")

    @Argument(help: "The .onnx file.") var model: String
    @Flag(help: "Print the same fields as JSON.") var json = false

    func run() throws {
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
}
