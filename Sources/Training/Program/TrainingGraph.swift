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
