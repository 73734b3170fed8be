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
    /// Training mode: normalises with the batch mean and (biased) variance, y = gamma · (x − mean) · invStd + beta
    /// (then clamped to [0, 6] when `relu6`: a ReLU6 fused in, one pass over y fewer), saves mean [C] and invStd = 1 / sqrt(var + epsilon) [C] for `backward`, and updates movingMean and
    /// movingVariance in place as Keras does (the variance folded in is var · n / (n − 1) when besselCorrected).
    ///
    /// x, y [batch, channels, spatial]; gamma, beta, mean, invStd, movingMean, movingVariance [channels].
    /// The statistics of channel c run over its n = batch · spatial values in two passes (the mean, then the
    /// squared deviations from it), summed in double in a fixed order (`BatchNormBlocks`), so the result does
    /// not depend on the thread count.
    /// The moving update is TensorFlow's FusedBatchNormV3 (what tf_keras runs for 4-D inputs):
    /// moving = (1 − f) · moving + (f · adjust) · stat, f = 1 − momentum, and adjust = n / (n − 1) for the
    /// variance when besselCorrected (tf_keras folds the Bessel-corrected variance in), else 1.
    public static func forward(_ s: BatchNormShape, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                               beta: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                               mean: UnsafeMutablePointer<Float>, invStd: UnsafeMutablePointer<Float>,
                               movingMean: UnsafeMutablePointer<Float>, movingVariance: UnsafeMutablePointer<Float>,
                               besselCorrected: Bool, relu6: Bool = false, threads: Int) {
        let n = s.batch * s.spatial
        guard n > 0 else { return }
        let factor = averagingFactor(momentum: s.momentum), keep = 1 - factor
        let adjust: Float = besselCorrected && n > 1 ? Float(n) / Float(n - 1) : 1
        let blocks = BatchNormBlocks(s)
        blocks.run(threads: threads) { channels, first, width, doubles, floats in
            let sums = doubles.0, means64 = doubles.1
            let m = floats.0, scale = floats.1, shift = floats.2
            // mean = Σ x / n
            sums.update(repeating: 0, count: width)
            for b in 0..<s.batch { addSegment(x + first + b * blocks.sampleStride, sums, width) }
            for c in channels {
                let j = c - channels.lowerBound
                means64[j] = blocks.channelSum(sums, j) / Double(n)
                (m + j * s.spatial).update(repeating: Float(means64[j]), count: s.spatial)
            }
            // var = Σ (x − mean)² / n, summed around the float mean m: Σ (x − m)² = Σ (x − mean)² + n (mean − m)².
            sums.update(repeating: 0, count: width)
            for b in 0..<s.batch { addSquaredDeviations(x + first + b * blocks.sampleStride, m, sums, width) }
            for c in channels {
                let j = c - channels.lowerBound, mf = m[j * s.spatial], gap = means64[j] - Double(mf)
                let variance = max(0, blocks.channelSum(sums, j) / Double(n) - gap * gap)
                let istd = Float(1 / (variance + Double(s.epsilon)).squareRoot())
                mean[c] = mf; invStd[c] = istd
                (scale + j * s.spatial).update(repeating: gamma[c] * istd, count: s.spatial)
                (shift + j * s.spatial).update(repeating: beta[c], count: s.spatial)
                movingMean[c] = keep * movingMean[c] + factor * mf
                movingVariance[c] = keep * movingVariance[c] + (factor * adjust) * Float(variance)
            }
            // y = (x − mean) · (gamma · invStd) + beta, or min(max(that, 0), 6)
            for b in 0..<s.batch {
                let o = first + b * blocks.sampleStride
                if relu6 {
                    normalizeSegment(x + o, m, scale, shift, y + o, width, clampTo: 0...6)
                } else {
                    normalizeSegment(x + o, m, scale, shift, y + o, width)
                }
            }
        }
    }

    /// Given dy: dx, dgamma, dbeta (all overwritten). dx may alias dy. With `relu6Beta` (the beta of a forward with
    /// `relu6`), dy is the gradient of the clamped y and is first gated as ReLU6's backward does: of
    /// `y = min(max(ŷ, 0), 6)`, dŷ = dy where 0 < ŷ < 6, else 0 (Relu6Training.backward without its pass; ŷ is
    /// recomputed from x with the forward's operations, the same bits, rather than read back from y).
    ///
    /// Shapes as in `forward`; mean and invStd are what `forward` saved. With x̂ = (x − mean) · invStd, of
    /// `y = gamma · x̂ + beta` through the batch statistics (mean and var depend on every x of the channel):
    ///   dbeta = Σ dy,  dgamma = Σ dy · x̂,
    ///   dx = gamma · invStd · (dy − Σ dy / n − x̂ · Σ dy · x̂ / n)
    ///      = a · dy + k · (x − mean) + b  with a = gamma · invStd, k = −a · invStd² · Σ dy (x − mean) / n,
    ///        b = −a · Σ dy / n (coefficients in double, rounded once). Sums in double, in a fixed order.
    public static func backward(_ s: BatchNormShape, x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                gamma: UnsafePointer<Float>, mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>,
                                dx: UnsafeMutablePointer<Float>, dgamma: UnsafeMutablePointer<Float>,
                                dbeta: UnsafeMutablePointer<Float>, relu6Beta: UnsafePointer<Float>? = nil, threads: Int) {
        let n = s.batch * s.spatial
        guard n > 0 else { return }
        let blocks = BatchNormBlocks(s)
        blocks.run(threads: threads) { channels, first, width, doubles, floats in
            let sumDy = doubles.0, sumDyCentered = doubles.1
            let m = floats.0, a = floats.1, k = floats.2, b = floats.3
            let gate = relu6Beta.map { _ in Relu6Gate(scale: floats.4, shift: floats.5) }
            for c in channels {
                let j = c - channels.lowerBound
                (m + j * s.spatial).update(repeating: mean[c], count: s.spatial)
                if let gate, let beta = relu6Beta {
                    // As the forward's scale and shift rows.
                    (gate.scale + j * s.spatial).update(repeating: gamma[c] * invStd[c], count: s.spatial)
                    (gate.shift + j * s.spatial).update(repeating: beta[c], count: s.spatial)
                }
            }
            // Σ dy and Σ dy · (x − mean)
            sumDy.update(repeating: 0, count: width)
            sumDyCentered.update(repeating: 0, count: width)
            for sample in 0..<s.batch {
                let o = first + sample * blocks.sampleStride
                addGradientSums(dy + o, gate, x + o, m, sumDy, sumDyCentered, width)
            }
            for c in channels {
                let j = c - channels.lowerBound
                let dyTotal = blocks.channelSum(sumDy, j), dyCentered = blocks.channelSum(sumDyCentered, j)
                let istd = Double(invStd[c]), scale = Double(gamma[c]) * istd
                dbeta[c] = Float(dyTotal)
                dgamma[c] = Float(dyCentered * istd)
                (a + j * s.spatial).update(repeating: Float(scale), count: s.spatial)
                (k + j * s.spatial).update(repeating: Float(-scale * istd * istd * dyCentered / Double(n)), count: s.spatial)
                (b + j * s.spatial).update(repeating: Float(-scale * dyTotal / Double(n)), count: s.spatial)
            }
            // dx = a · dy + k · (x − mean) + b
            for sample in 0..<s.batch {
                let o = first + sample * blocks.sampleStride
                gradientSegment(dy + o, gate, x + o, m, a, k, b, dx + o, width)
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

/// How BatchNormTraining walks x [batch, channels, spatial]: channels in blocks of about 2048 values per sample
/// (at least one channel), so that each sample holds one contiguous segment of a block and the block's values
/// (≤ 1 MB at batch 128) stay in cache across the passes. Each pass sums the segments down the batch column by
/// column (`sums`), then each channel adds its `spatial` columns. Blocks are split over threads; the order of
/// every sum is fixed by the block, not by the thread.
struct BatchNormBlocks {
    let spatial: Int, channels: Int, channelsPerBlock: Int, sampleStride: Int

    init(_ s: BatchNormShape) {
        spatial = s.spatial; channels = s.channels; sampleStride = s.channels * s.spatial
        channelsPerBlock = max(1, min(s.channels, 2048 / max(s.spatial, 1)))
    }

    /// Σ of channel j's columns of a block's `sums` row.
    @inline(__always) func channelSum(_ sums: UnsafeMutablePointer<Double>, _ j: Int) -> Double {
        var total = 0.0
        for i in j * spatial..<(j + 1) * spatial { total += sums[i] }
        return total
    }

    /// Runs `body(channels, first, width, doubles, floats)` for each block: its channel range, the offset of its
    /// segment in sample 0, the segment's width, and scratch rows of that width (2 of doubles, 6 of floats).
    func run(threads: Int,
             _ body: (Range<Int>, Int, Int, (UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>),
                      (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
                       UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>)) -> Void) {
        let blockCount = (channels + channelsPerBlock - 1) / channelsPerBlock, maxWidth = channelsPerBlock * spatial
        RunContext(threads: threads, scratch: nil).parallelFor(blockCount) { range in
            withUnsafeTemporaryAllocation(of: Double.self, capacity: 2 * maxWidth) { d in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 6 * maxWidth) { f in
                    let d0 = d.baseAddress!, f0 = f.baseAddress!
                    for block in range {
                        let c0 = block * channelsPerBlock, c1 = min(channels, c0 + channelsPerBlock)
                        body(c0..<c1, c0 * spatial, (c1 - c0) * spatial, (d0, d0 + maxWidth),
                             (f0, f0 + maxWidth, f0 + 2 * maxWidth, f0 + 3 * maxWidth, f0 + 4 * maxWidth, f0 + 5 * maxWidth))
                    }
                }
            }
        }
    }
}

// One sample's segment of a batch-norm block, `w` floats: the passes of BatchNormTraining, 8 lanes at a time
// (sums widened to double), then the tail one by one.

// load8(UnsafePointer) is the conv family's (ConvDepthwise.swift).
@inline(__always) private func load8(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> { load8(UnsafePointer(p)) }
@inline(__always) private func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}
/// sums[i..<i+8] += v, in double.
@inline(__always) private func accumulate8(_ v: SIMD8<Float>, _ sums: UnsafeMutablePointer<Double>) {
    let raw = UnsafeMutableRawPointer(sums)
    raw.storeBytes(of: raw.loadUnaligned(as: SIMD8<Double>.self) + SIMD8<Double>(v), as: SIMD8<Double>.self)
}

/// sums[i] += x[i]
@inline(__always)
private func addSegment(_ x: UnsafePointer<Float>, _ sums: UnsafeMutablePointer<Double>, _ w: Int) {
    var i = 0
    while i + 8 <= w { accumulate8(load8(x + i), sums + i); i += 8 }
    while i < w { sums[i] += Double(x[i]); i += 1 }
}

/// sums[i] += (x[i] − m[i])²
@inline(__always)
private func addSquaredDeviations(_ x: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>,
                                  _ sums: UnsafeMutablePointer<Double>, _ w: Int) {
    var i = 0
    while i + 8 <= w { let d = load8(x + i) - load8(m + i); accumulate8(d * d, sums + i); i += 8 }
    while i < w { let d = x[i] - m[i]; sums[i] += Double(d * d); i += 1 }
}

/// (x[i] − m[i]) · scale[i] + shift[i], 8 lanes at i and one at i: the forward's output and, for a fused ReLU6's
/// gate, the backward's recomputation of it (one definition, so the same bits).
@inline(__always) private func normalized8(_ x: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>, _ scale: UnsafeMutablePointer<Float>,
                                           _ shift: UnsafeMutablePointer<Float>, _ i: Int) -> SIMD8<Float> {
    load8(shift + i).addingProduct(load8(x + i) - load8(m + i), load8(scale + i))
}
@inline(__always) private func normalized(_ x: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>, _ scale: UnsafeMutablePointer<Float>,
                                          _ shift: UnsafeMutablePointer<Float>, _ i: Int) -> Float {
    (x[i] - m[i]) * scale[i] + shift[i]
}

/// y[i] = (x[i] − m[i]) · scale[i] + shift[i]
@inline(__always)
private func normalizeSegment(_ x: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>, _ scale: UnsafeMutablePointer<Float>,
                              _ shift: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ w: Int) {
    var i = 0
    while i + 8 <= w { store8(normalized8(x, m, scale, shift, i), y + i); i += 8 }
    while i < w { y[i] = normalized(x, m, scale, shift, i); i += 1 }
}

/// y[i] = min(max((x[i] − m[i]) · scale[i] + shift[i], lo), hi), NaN kept (as ClipMap keeps it).
@inline(__always)
private func normalizeSegment(_ x: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>, _ scale: UnsafeMutablePointer<Float>,
                              _ shift: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ w: Int,
                              clampTo range: ClosedRange<Float>) {
    let lo = SIMD8<Float>(repeating: range.lowerBound), hi = SIMD8<Float>(repeating: range.upperBound)
    var i = 0
    while i + 8 <= w { store8(clamp8(normalized8(x, m, scale, shift, i), lo, hi), y + i); i += 8 }
    while i < w {
        let v = normalized(x, m, scale, shift, i)
        y[i] = v < range.lowerBound ? range.lowerBound : v > range.upperBound ? range.upperBound : v
        i += 1
    }
}

/// A fused ReLU6's forward rows (scale = gamma · invStd, shift = beta), to recompute its input ŷ.
private struct Relu6Gate { let scale, shift: UnsafeMutablePointer<Float> }

/// dy[i], or 0 where a fused ReLU6 clamped ŷ[i] (≤ 0 or ≥ 6).
@inline(__always) private func gated8(_ dy: UnsafePointer<Float>, _ gate: Relu6Gate?, _ x: UnsafePointer<Float>,
                                      _ m: UnsafeMutablePointer<Float>, _ i: Int) -> SIMD8<Float> {
    var d = load8(dy + i)
    if let gate { let v = normalized8(x, m, gate.scale, gate.shift, i); d.replace(with: 0, where: (v .<= 0) .| (v .>= 6)) }
    return d
}
@inline(__always) private func gated(_ dy: UnsafePointer<Float>, _ gate: Relu6Gate?, _ x: UnsafePointer<Float>,
                                     _ m: UnsafeMutablePointer<Float>, _ i: Int) -> Float {
    guard let gate else { return dy[i] }
    let v = normalized(x, m, gate.scale, gate.shift, i)
    return v <= 0 || v >= 6 ? 0 : dy[i]
}

/// sumDy[i] += dy[i], sumDyCentered[i] += dy[i] · (x[i] − m[i])
@inline(__always)
private func addGradientSums(_ dy: UnsafePointer<Float>, _ gate: Relu6Gate?, _ x: UnsafePointer<Float>,
                             _ m: UnsafeMutablePointer<Float>, _ sumDy: UnsafeMutablePointer<Double>,
                             _ sumDyCentered: UnsafeMutablePointer<Double>, _ w: Int) {
    var i = 0
    while i + 8 <= w {
        let d = gated8(dy, gate, x, m, i)
        accumulate8(d, sumDy + i)
        accumulate8(d * (load8(x + i) - load8(m + i)), sumDyCentered + i)
        i += 8
    }
    while i < w { let d = gated(dy, gate, x, m, i); sumDy[i] += Double(d); sumDyCentered[i] += Double(d * (x[i] - m[i])); i += 1 }
}

/// dx[i] = a[i] · dy[i] + k[i] · (x[i] − m[i]) + b[i] (dx may alias dy: each lane is read before it is written).
@inline(__always)
private func gradientSegment(_ dy: UnsafePointer<Float>, _ gate: Relu6Gate?, _ x: UnsafePointer<Float>,
                             _ m: UnsafeMutablePointer<Float>,
                             _ a: UnsafeMutablePointer<Float>, _ k: UnsafeMutablePointer<Float>, _ b: UnsafeMutablePointer<Float>,
                             _ dx: UnsafeMutablePointer<Float>, _ w: Int) {
    var i = 0
    while i + 8 <= w {
        let centered = load8(x + i) - load8(m + i)
        store8(load8(b + i).addingProduct(load8(k + i), centered).addingProduct(load8(a + i), gated8(dy, gate, x, m, i)), dx + i)
        i += 8
    }
    while i < w { dx[i] = a[i] * gated(dy, gate, x, m, i) + k[i] * (x[i] - m[i]) + b[i]; i += 1 }
}
