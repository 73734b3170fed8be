/// SGD with momentum in Keras's form: v ← momentum · v − lr · g; w ← w + v (tf_keras `SGD(momentum=0.9)`).
/// One velocity buffer per trainable parameter; moving statistics are left alone.
public final class SGD {
    public let momentum: Float
    /// Velocities in the store's parameter order (empty for non-trainable ones).
    let velocity: [UnsafeMutableBufferPointer<Float>]

    public init(parameters: ParameterStore, momentum: Float) {
        self.momentum = momentum
        velocity = parameters.infos.map { info in
            let v = UnsafeMutableBufferPointer<Float>.allocate(capacity: info.trainable ? info.count : 0)
            v.initialize(repeating: 0)
            return v
        }
    }

    deinit { velocity.forEach { $0.deallocate() } }

    /// Applies the gradients now in `parameters` with learning rate `lr`.
    public func step(_ parameters: ParameterStore, lr: Float) {
        for (i, info) in parameters.infos.enumerated() where info.trainable {
            let w = parameters.values[i].baseAddress!, g = parameters.gradients[i].baseAddress!, v = velocity[i].baseAddress!
            for k in 0..<info.count {
                // v ← momentum·v − lr·g ; w ← w + v
                let nv = momentum * v[k] - lr * g[k]
                v[k] = nv
                w[k] += nv
            }
        }
    }

    /// All velocities, concatenated in parameter order (for checkpoints).
    public var state: [Float] { velocity.flatMap { Array($0) } }

    /// Restores velocities saved by `state`.
    public func restore(_ values: [Float]) throws {
        let expected = velocity.reduce(0) { $0 + $1.count }
        guard values.count == expected else {
            throw TrainingError("the optimiser state holds \(values.count) values; this model's parameters need \(expected)")
        }
        var offset = 0
        for v in velocity {
            _ = v.initialize(from: values[offset..<offset + v.count])
            offset += v.count
        }
    }
}

/// The learning rate by 0-based epoch: the base rate divided by 10 at each epoch in `drops` reached.
public struct LearningRateSchedule: Codable, Equatable, Sendable {
    public var base: Float
    public var drops: [Int]
    public init(base: Float, drops: [Int]) { self.base = base; self.drops = drops }
    public func rate(epoch: Int) -> Float {
        drops.filter { epoch >= $0 }.reduce(base) { rate, _ in rate / 10 }
    }
}
