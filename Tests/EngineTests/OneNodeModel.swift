import Foundation
@testable import Engine
import OnnxIO

// The harness the op tests share: a model of one node, run through a real Session (planning,
// constant folding, arena), with each input fed, constant, or omitted.

/// One input of a one-node model: a constant (initializer), a fed graph input, or omitted (nil).
enum NodeInput {
    case constant(HostTensor)
    case fed(HostTensor)
    case omitted
}

/// A session over a model of one node, with the feeds for its fed inputs.
func makeSession(_ op: String, _ attributes: [Attribute] = [], inputs: [NodeInput], outputs: Int = 1, opset: Int = 19,
                 threads: Int = 2, memoryBudget: Int? = nil) throws -> (Session, [String: HostTensor], [String]) {
    var model = Model()
    model.opsetImports = [OpsetID(domain: "", version: Int64(opset))]
    var names: [String] = []
    var feeds: [String: HostTensor] = [:]
    for (i, input) in inputs.enumerated() {
        let name = "in\(i)"
        switch input {
        case .constant(let t):
            model.graph.initializers.append(t.onnxTensor(name: name))
            names.append(name)
        case .fed(let t):
            model.graph.inputs.append(ValueInfo(name: name, type: nil))
            feeds[name] = t
            names.append(name)
        case .omitted:
            names.append("")
        }
    }
    let outNames = (0..<outputs).map { "out\($0)" }
    model.graph.nodes = [Node(opType: op, inputs: names, outputs: outNames, attributes: attributes)]
    model.graph.outputs = outNames.map { ValueInfo(name: $0, type: nil) }
    var options = SessionOptions()
    options.threads = threads
    if let memoryBudget { options.memoryBudget = memoryBudget }
    return (try Session(model: model, options: options), feeds, outNames)
}

/// Builds a model of one node, runs it through a Session (planning, constant handling, arena) and
/// returns its outputs.
func runNode(_ op: String, _ attributes: [Attribute] = [], inputs: [NodeInput], outputs: Int = 1, opset: Int = 19,
             threads: Int = 2, memoryBudget: Int? = nil) throws -> [HostTensor] {
    let (session, feeds, outNames) = try makeSession(op, attributes, inputs: inputs, outputs: outputs, opset: opset, threads: threads,
                                                     memoryBudget: memoryBudget)
    let result = try session.run(feeds)
    return outNames.map { result[$0]! }
}
