import Foundation
import OnnxIO

/// The mutable parameters of a training graph (trainable weights and BatchNormalization moving statistics),
/// with a gradient per trainable parameter. Owned memory, never folded or cached by anyone else: an update
/// here is what the next step sees.
public final class ParameterStore {
    public let infos: [ParameterInfo]
    private var index: [String: Int] = [:]
    let values: [UnsafeMutableBufferPointer<Float>]
    let gradients: [UnsafeMutableBufferPointer<Float>]

    /// Takes each parameter's initial value from the model's initializers.
    init(infos: [ParameterInfo], model: Model) throws {
        self.infos = infos
        let initializers = Dictionary(model.graph.initializers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var values: [UnsafeMutableBufferPointer<Float>] = []
        for (i, info) in infos.enumerated() {
            index[info.name] = i
            guard let t = initializers[info.name] else { throw TrainingError("parameter '\(info.name)' has no initializer in the model") }
            guard t.dataType == .float, t.dims == info.shape else {
                throw TrainingError("parameter '\(info.name)' is \(t.dataType) \(t.dims), expected float \(info.shape)")
            }
            let floats = t.elements(as: Float.self)
            guard floats.allSatisfy(\.isFinite) else { throw TrainingError("parameter '\(info.name)' holds NaN or Inf values") }
            let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: info.count)
            _ = buffer.initialize(from: floats)
            values.append(buffer)
        }
        self.values = values
        gradients = infos.map { info in
            let g = UnsafeMutableBufferPointer<Float>.allocate(capacity: info.trainable ? info.count : 0)
            g.initialize(repeating: 0)
            return g
        }
    }

    deinit {
        values.forEach { $0.deallocate() }
        gradients.forEach { $0.deallocate() }
    }

    func slot(_ name: String) -> Int? { index[name] }

    public func value(_ name: String) -> [Float]? { index[name].map { Array(values[$0]) } }
    public func gradient(_ name: String) -> [Float]? { index[name].map { Array(gradients[$0]) } }

    /// Replaces one parameter's values (Kizuki's layout), e.g. from a Keras weight file.
    public func set(_ name: String, _ newValues: [Float]) throws {
        guard let i = index[name] else { throw TrainingError("no parameter named '\(name)'") }
        guard newValues.count == infos[i].count else {
            throw TrainingError("parameter '\(name)' has \(infos[i].count) values, got \(newValues.count)")
        }
        _ = values[i].initialize(from: newValues)
    }

    /// The model with every parameter's current value as its initializer.
    public func write(into model: Model) -> Model {
        var m = model
        for (i, t) in m.graph.initializers.enumerated() {
            guard let slot = index[t.name] else { continue }
            m.graph.initializers[i] = Tensor(name: t.name, floats: Array(values[slot]), dims: infos[slot].shape)
        }
        return m
    }
}

/// A training error: the CLI prints `description` as is.
public struct TrainingError: Error, CustomStringConvertible {
    public var description: String
    public init(_ message: String) { description = message }
}
