import ArgumentParser
import Foundation
import OnnxIO

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Describe an ONNX model: inputs, outputs, operators, parameters.")
    @Argument(help: "The .onnx file.") var model: String
    @Flag(help: "Print the same fields as JSON.") var json = false

    func run() throws {
        let m: Model
        do { m = try Model(contentsOf: URL(fileURLWithPath: model)) } catch { throw fail(error) }
        print("producer: \(m.producerName) \(m.producerVersion), ir_version \(m.irVersion), nodes \(m.graph.nodes.count)")
    }
}
