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
    ///
    /// x, y [batch, channels, spatial]; gamma, beta, mean, invStd, movingMean, movingVariance [channels].
    /// Statistics of channel c run over its n = batch · spatial values in two passes (the mean, then the squared
    /// deviations from it): 16-lane float sums within a plane, double across planes, always in the same order,
    /// so the result does not depend on the thread count. The moving update is TensorFlow's FusedBatchNormV3
    /// (what tf_keras runs for 4-D inputs): moving = (1 − f) · moving + (f · adjust) · stat, f = 1 − momentum
    /// and adjust = n / (n − 1) for the variance when besselCorrected (tf_keras folds that one in), else 1.
    public static func forward(_ s: BatchNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                               beta: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                               mean: UnsafeMutablePointer<Float>, invStd: UnsafeMutablePointer<Float>,
                               movingMean: UnsafeMutablePointer<Float>, movingVariance: UnsafeMutablePointer<Float>,
                               besselCorrected: Bool, threads: Int) {
        let n = s.batch * s.spatial, planeStride = s.channels * s.spatial
        guard n > 0 else { return }
        let factor = averagingFactor(momentum: s.momentum), keep = 1 - factor
        let adjust: Float = besselCorrected && n > 1 ? Float(n) / Float(n - 1) : 1
        RunContext(threads: threads, scratch: nil).parallelFor(s.channels, minChunk: max(1, 16384 / n)) { channels in
            for c in channels {
                let first = c * s.spatial
                // mean = Σ x / n
                var sum = 0.0
                for b in 0..<s.batch { sum += Double(planeSum(x + first + b * planeStride, s.spatial)) }
                let mean64 = sum / Double(n), m = Float(mean64)
                // var = Σ (x − mean)² / n, taken around the float mean m: Σ (x − m)² = Σ (x − mean)² + n (mean − m)².
                var squares = 0.0
                for b in 0..<s.batch { squares += Double(planeSquaredDeviation(x + first + b * planeStride, s.spatial, m)) }
                let variance64 = max(0, squares / Double(n) - (mean64 - Double(m)) * (mean64 - Double(m)))
                let istd = Float(1 / (variance64 + Double(s.epsilon)).squareRoot())
                mean[c] = m; invStd[c] = istd
                // y = (x − mean) · (gamma · invStd) + beta
                let normalize = NormalizeMap(mean: m, factor: gamma[c] * istd, bias: beta[c])
                for b in 0..<s.batch {
                    let o = first + b * planeStride
                    mapLoop(x + o, y + o, s.spatial, normalize)
                }
                movingMean[c] = keep * movingMean[c] + factor * m
                movingVariance[c] = keep * movingVariance[c] + (factor * adjust) * Float(variance64)
            }
        }
    }

    /// Given dy: dx, dgamma, dbeta (all overwritten). dx may alias dy.
    ///
    /// Shapes as in `forward`; mean and invStd are what `forward` saved. With x̂ = (x − mean) · invStd, of
    /// `y = gamma · x̂ + beta` through the batch statistics (mean and var depend on every x of the channel):
    ///   dbeta = Σ dy,  dgamma = Σ dy · x̂,
    ///   dx = gamma · invStd · (dy − Σ dy / n − x̂ · Σ dy · x̂ / n)
    ///      = a · dy + k · (x − mean) + b  with a = gamma · invStd, k = −a · invStd² · Σ dy (x − mean) / n,
    ///        b = −a · Σ dy / n (coefficients in double, rounded once).
    public static func backward(_ s: BatchNormShape, x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                gamma: UnsafePointer<Float>, mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>,
                                dx: UnsafeMutablePointer<Float>, dgamma: UnsafeMutablePointer<Float>,
                                dbeta: UnsafeMutablePointer<Float>, threads: Int) {
        let n = s.batch * s.spatial, planeStride = s.channels * s.spatial
        guard n > 0 else { return }
        RunContext(threads: threads, scratch: nil).parallelFor(s.channels, minChunk: max(1, 8192 / n)) { channels in
            for c in channels {
                let first = c * s.spatial, m = mean[c], istd = Double(invStd[c])
                var sumDy = 0.0, sumDyCentered = 0.0
                for b in 0..<s.batch {
                    let o = first + b * planeStride
                    let (d, dc) = planeGradientSums(dy + o, x + o, s.spatial, m)
                    sumDy += Double(d); sumDyCentered += Double(dc)
                }
                dbeta[c] = Float(sumDy)
                dgamma[c] = Float(sumDyCentered * istd)
                let a = Double(gamma[c]) * istd
                let map = BatchNormGradientMap(a: Float(a), k: Float(-a * istd * istd * sumDyCentered / Double(n)),
                                               b: Float(-a * sumDy / Double(n)), mean: m)
                for b in 0..<s.batch {
                    let o = first + b * planeStride
                    map.apply(dy + o, x + o, dx + o, s.spatial)
                }
            }
        }
    }

    /// The f of `moving = (1 − f) · moving + f · stat`, as Keras computes it: 1 − momentum in double from the
    /// Python literal (0.999), rounded to float once. `momentum` arrives as a float (0.99900001…), so the literal
    /// is recovered as its shortest decimal; 1 − Double(momentum) would differ from Keras's factor by 1.3e-5 relative.
    static func averagingFactor(momentum: Float) -> Float {
        Float(1 - (Double(momentum.description) ?? Double(momentum)))
    }
}

/// Σ p[i] over `count` floats (16 float lanes; the lanes added at the end).
@inline(__always)
private func planeSum(_ p: UnsafePointer<Float>, _ count: Int) -> Float {
    var acc = SIMD16<Float>(), i = 0
    while i + 16 <= count { acc += load16(p + i); i += 16 }
    if i < count { acc += loadPartial(p + i, count - i, fill: 0) }
    return acc.sum()
}

/// Σ (p[i] − m)² over `count` floats.
@inline(__always)
private func planeSquaredDeviation(_ p: UnsafePointer<Float>, _ count: Int, _ m: Float) -> Float {
    var acc = SIMD16<Float>(), i = 0
    while i + 16 <= count { let d = load16(p + i) - m; acc.addProduct(d, d); i += 16 }
    if i < count { let d = loadPartial(p + i, count - i, fill: m) - m; acc.addProduct(d, d) }
    return acc.sum()
}

/// (Σ dy, Σ dy · (x − m)) over `count` floats.
@inline(__always)
private func planeGradientSums(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ count: Int,
                               _ m: Float) -> (Float, Float) {
    var sumDy = SIMD16<Float>(), sumDyCentered = SIMD16<Float>(), i = 0
    while i + 16 <= count {
        let d = load16(dy + i)
        sumDy += d; sumDyCentered.addProduct(d, load16(x + i) - m)
        i += 16
    }
    if i < count {
        let d = loadPartial(dy + i, count - i, fill: 0)
        sumDy += d; sumDyCentered.addProduct(d, loadPartial(x + i, count - i, fill: m) - m)
    }
    return (sumDy.sum(), sumDyCentered.sum())
}

/// dx = a · dy + k · (x − mean) + b, the batch-norm input gradient of one plane (dx may alias dy).
private struct BatchNormGradientMap {
    let a: Float, k: Float, b: Float, mean: Float

    @inline(__always) func callAsFunction(_ dy: SIMD16<Float>, _ x: SIMD16<Float>) -> SIMD16<Float> {
        ((x - mean) * k + b).addingProduct(dy, a)
    }

    @inline(__always)
    func apply(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ count: Int) {
        var i = 0
        while i + 16 <= count { store16(self(load16(dy + i), load16(x + i)), dx + i); i += 16 }
        if i < count {
            let r = count - i
            storePartial(self(loadPartial(dy + i, r, fill: 0), loadPartial(x + i, r, fill: mean)), dx + i, r)
        }
    }
}
