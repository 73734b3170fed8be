import Foundation
import OnnxIO

extension OpRegistry {
    static let normalizationOps: [String: KernelFactory] = [
        "BatchNormalization": { info in try BatchNormKernel(info) },
    ]
}

// X: [N, C, D1, ...] float32; scale, B, mean, var: [C] -> Y: X's shape (inference only):
// y = (x − mean[c]) · scale[c] / sqrt(var[c] + epsilon) + B[c].
final class BatchNormKernel: Kernel {
    let epsilon: Float

    init(_ info: NodeInfo) throws {
        epsilon = try info.float("epsilon", 1e-5)
        if info.opset >= 14, try info.int("training_mode", 0) != 0 { throw info.unsupported("training_mode=1") }
        // Opsets 6-8: spatial=0 means per-activation statistics of shape [C, D1, ...].
        if info.opset < 9, try info.int("spatial", 1) == 0 { throw info.unsupported("spatial=0") }
        // Extra outputs (running / saved mean and variance) exist only in training.
        if info.node.outputs.dropFirst().contains(where: { !$0.isEmpty }) {
            throw info.unsupported("training outputs (mean, var, saved_mean, saved_var)")
        }
        // Before opset 7 the mode is an attribute whose default, is_test=0, is training (batch statistics).
        if info.opset < 7, try info.int("is_test", 0) == 0 { throw info.unsupported("is_test=0 (training mode)") }
        // momentum only matters in training.
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0)
        guard x.dtype == .float else { throw unsupportedType(x.dtype, "BatchNormalization") }
        guard x.shape.count >= 2 else { throw KernelError("X must have shape [N, C, ...], got \(x.shape)") }
        let c = x.shape[1]
        for (i, name) in ["scale", "B", "mean", "var"].enumerated() {
            let p = try inputs.spec(i + 1)
            guard p.dtype == .float, p.count == c, p.shape.count <= 1 else {
                throw KernelError("\(name) must be float32 [\(c)], got \(p.dtype)\(p.shape)")
            }
        }
        return [ValueSpec(.float, x.shape)]
    }

    func scratchBytes(inputs: [ValueSpec?], outputs: [ValueSpec]) -> Int {
        (outputs.first?.shape.dropFirst().first ?? 0) * MemoryLayout<Float>.stride
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0), y = outputs[0]
        let n = x.shape[0], c = x.shape[1], spatial = x.shape.dropFirst(2).reduce(1, *)
        guard c > 0 else { return }
        guard let scratch = context.scratch else { throw KernelError("BatchNormalization was planned without scratch memory") }
        let scale = inputs.at(1).floats, bias = UnsafePointer(inputs.at(2).floats)
        let mean = UnsafePointer(inputs.at(3).floats), variance = inputs.at(4).floats
        // Per-channel multiplier scale / sqrt(var + eps), in double before rounding once.
        let factor = scratch.assumingMemoryBound(to: Float.self)
        for i in 0..<c { factor[i] = Float(Double(scale[i]) / (Double(variance[i]) + Double(epsilon)).squareRoot()) }
        let px = UnsafePointer(x.floats), py = y.floats, pf = UnsafePointer(factor)
        if spatial == 1 {
            // [N, C]: each row is a vector over channels.
            context.parallelFor(n, minChunk: max(1, 8192 / c)) { rows in
                for r in rows {
                    let xs = px + r * c, ys = py + r * c
                    var i = 0
                    while i + 16 <= c {
                        store16((load16(xs + i) - load16(mean + i)) * load16(pf + i) + load16(bias + i), ys + i)
                        i += 16
                    }
                    while i < c { ys[i] = (xs[i] - mean[i]) * pf[i] + bias[i]; i += 1 }
                }
            }
        } else {
            // One (sample, channel) plane at a time: a scalar multiply-add over contiguous memory.
            context.parallelFor(n * c, minChunk: max(1, 16384 / spatial)) { planes in
                for p in planes {
                    let ch = p % c
                    mapLoop(px + p * spatial, py + p * spatial, spatial, NormalizeMap(mean: mean[ch], factor: pf[ch], bias: bias[ch]))
                }
            }
        }
    }
}

/// (v − mean) · factor + bias.
struct NormalizeMap: VectorMap {
    let mean: Float, factor: Float, bias: Float
    @inline(__always) func callAsFunction(_ v: SIMD16<Float>) -> SIMD16<Float> { (v - mean) * factor + bias }
}

// MARK: - Training (batch statistics, moving averages, backward)

/// BatchNormalization over x [batch, channels, spatial] (NCHW with H·W = spatial), per channel.
public struct BatchNormShape: Equatable, Sendable {
    public var batch, channels, spatial: Int
    public var epsilon: Float
    /// Keras's momentum: moving = moving · momentum + batch statistic · (1 − momentum).
    public var momentum: Float
    public init(batch: Int, channels: Int, spatial: Int, epsilon: Float, momentum: Float) {
        self.batch = batch; self.channels = channels; self.spatial = spatial; self.epsilon = epsilon; self.momentum = momentum
    }
    public var count: Int { batch * channels * spatial }
}

public enum BatchNormTraining {
    /// Training mode: normalises with the batch mean and (biased) variance, y = gamma · (x − mean) · invStd + beta,
    /// saves mean [C] and invStd = 1 / sqrt(var + epsilon) [C] for `backward`, and updates movingMean and
    /// movingVariance in place as Keras does (the variance folded in is var · n / (n − 1) when besselCorrected).
    public static func forward(_ s: BatchNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                               beta: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                               mean: UnsafeMutablePointer<Float>, invStd: UnsafeMutablePointer<Float>,
                               movingMean: UnsafeMutablePointer<Float>, movingVariance: UnsafeMutablePointer<Float>,
                               besselCorrected: Bool, threads: Int) {
        fatalError("BatchNormTraining.forward: not implemented yet")
    }

    /// Given dy: dx, dgamma, dbeta (all overwritten). dx may alias dy.
    public static func backward(_ s: BatchNormShape, x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                gamma: UnsafePointer<Float>, mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>,
                                dx: UnsafeMutablePointer<Float>, dgamma: UnsafeMutablePointer<Float>,
                                dbeta: UnsafeMutablePointer<Float>, threads: Int) {
        fatalError("BatchNormTraining.backward: not implemented yet")
    }
}
