import Foundation
import OnnxIO

/// A training-form ONNX model and its parameters: what `kizuki train --init` accepts and what checkpoints hold.
/// Parameters are found by the role of each initializer: Conv weights, BatchNormalization scale/bias (trainable)
/// and mean/variance (moving statistics), Gemm weight and bias.
public struct TrainingGraph: Sendable {
    public var model: Model
    public var parameters: [ParameterInfo]

    public init(model: Model, parameters: [ParameterInfo]) {
        self.model = model
        self.parameters = parameters
    }

    /// Reads the parameters of `model` from its nodes (for checkpoints and `--init` files).
    public init(model: Model, file: String) throws {
        let initializers = Dictionary(model.graph.initializers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var roles: [String: (ParameterLayout, Bool)] = [:]
        for node in model.graph.nodes {
            func mark(_ i: Int, _ layout: ParameterLayout, trainable: Bool) {
                guard i < node.inputs.count, initializers[node.inputs[i]] != nil else { return }
                roles[node.inputs[i]] = (layout, trainable)
            }
            switch node.opType {
            case "Conv":
                let group: Int64
                if case .int(let g)? = node.attribute("group") { group = g } else { group = 1 }
                mark(1, group > 1 ? .depthwiseKernel : .convKernel, trainable: true)
            case "BatchNormalization":
                mark(1, .plain, trainable: true); mark(2, .plain, trainable: true)
                mark(3, .plain, trainable: false); mark(4, .plain, trainable: false)
            case "Gemm":
                mark(1, .plain, trainable: true); mark(2, .plain, trainable: true)
            default: break
            }
        }
        parameters = model.graph.initializers.compactMap { t in
            roles[t.name].map { ParameterInfo(name: t.name, shape: t.dims, layout: $0.0, trainable: $0.1) }
        }
        guard !parameters.isEmpty else { throw TrainingError("\(file): no trainable parameters (Conv, BatchNormalization or Gemm initializers) found") }
        self.model = model
    }
}

extension TrainingGraph {
    /// The graph with each output row divided by its L2 norm (`kizuki train --l2-normalize`): an LpNormalization
    /// (p 2, axis 1) appended, reading the old output under the name `<output>/unnormalized`, so the output keeps its
    /// name and the model file stays self-contained for every consumer. A graph whose output already comes from an
    /// LpNormalization is returned as it is.
    public func l2NormalizingOutput() -> TrainingGraph {
        var g = self
        guard let output = g.model.graph.outputs.first?.name,
              let producer = g.model.graph.nodes.lastIndex(where: { $0.outputs.first == output }),
              g.model.graph.nodes[producer].opType != "LpNormalization" else { return self }
        let raw = output + "/unnormalized"
        g.model.graph.nodes[producer].outputs[0] = raw
        g.model.graph.nodes.append(Node(name: "l2_normalize", opType: "LpNormalization", inputs: [raw], outputs: [output],
                                        attributes: [.init(name: "axis", value: .int(1)), .init(name: "p", value: .int(2))]))
        return g
    }

    /// The graph with every BatchNormalization's momentum (Keras's form: the weight the moving statistics keep per
    /// step) set to `momentum`.
    public func settingBatchNormMomentum(_ momentum: Float) -> TrainingGraph {
        var g = self
        for i in g.model.graph.nodes.indices where g.model.graph.nodes[i].opType == "BatchNormalization" {
            g.model.graph.nodes[i].attributes.removeAll { $0.name == "momentum" }
            g.model.graph.nodes[i].attributes.append(.init(name: "momentum", value: .float(momentum)))
        }
        return g
    }
}
