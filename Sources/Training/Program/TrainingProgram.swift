import Engine
import Foundation
import OnnxIO

/// A training graph compiled for one batch size: every node becomes a step that runs a forward kernel in
/// training mode and, in reverse order, its backward kernel. Activations are kept from forward to backward;
/// gradients of activations come from a pool that hands a buffer back once its producer's backward has run.
public final class TrainingProgram {
    public let graph: TrainingGraph
    public let batch: Int
    public let threads: Int
    public let parameters: ParameterStore
    /// The output (embeddings) size per image.
    public let outputSize: Int
    /// The graph input's per-image size (height · width · channels).
    public let inputSize: Int

    var steps: [Step] = []
    var values: [ValueSlot] = []
    private var memory: [UnsafeMutablePointer<Float>?] = []
    private var saved: [UnsafeMutablePointer<Float>] = []   // per saving step: BN mean and invStd (2·C), L2 norms (N)
    private var scratch: UnsafeMutablePointer<Float>
    private let scratchCount: Int
    private var inputValue = 0
    private var outputValue = 0
    private let gradients = GradientPool()
    /// Per-op-kind time of the last `forward` and `backward` (seconds), when `profiling` is on.
    public var profiling = false
    public private(set) var profile: [String: Double] = [:]

    public init(graph: TrainingGraph, batch: Int, threads: Int) throws {
        self.graph = graph
        self.batch = batch
        self.threads = max(1, threads)
        parameters = try ParameterStore(infos: graph.parameters, model: graph.model)
        var compiler = ProgramCompiler(graph: graph, batch: batch, parameters: parameters)
        try compiler.compile()
        steps = compiler.steps
        values = compiler.values
        inputValue = compiler.inputValue
        outputValue = compiler.outputValue
        inputSize = compiler.values[inputValue].count / batch
        outputSize = compiler.values[outputValue].count / batch
        // Activations stay from forward to backward; gradients need about two of the largest at a time.
        let kept = values.filter { $0.aliasOf == nil }.reduce(0) { $0 + $1.count } + 2 * (values.map(\.count).max() ?? 0)
        let budget = SessionOptions().memoryBudget
        guard kept <= budget / 4 else {
            let gib = { (bytes: Int) in String(format: "%.1f GiB", Double(bytes) / Double(1 << 30)) }
            throw TrainingError("batch \(batch) needs about \(gib(kept * 4)) of activations, more than half of this machine's memory "
                                + "(\(gib(budget))): use a smaller --batch")
        }
        var scratchNeed = 1
        var savedBuffers: [UnsafeMutablePointer<Float>] = []
        for step in steps {
            switch step.kind {
            case .conv(let s, _): scratchNeed = max(scratchNeed, ConvTraining.scratchFloats(s, threads: self.threads))
            case .batchNorm(let s, _, _, _, _, _, _): savedBuffers.append(.allocate(capacity: 2 * s.channels))
            case .l2Normalize: savedBuffers.append(.allocate(capacity: batch))
            default: break
            }
        }
        saved = savedBuffers
        scratchCount = scratchNeed
        scratch = .allocate(capacity: scratchNeed)
        memory = values.map { $0.aliasOf == nil ? UnsafeMutablePointer<Float>.allocate(capacity: max($0.count, 1)) : nil }
        for (i, v) in values.enumerated() where v.aliasOf != nil { memory[i] = memory[root(i)] }
    }

    deinit {
        for (i, v) in values.enumerated() where v.aliasOf == nil { memory[i]?.deallocate() }
        saved.forEach { $0.deallocate() }
        scratch.deallocate()
    }

    private func root(_ i: Int) -> Int { values[i].aliasOf.map(root) ?? i }
    @inline(__always) private func buffer(_ i: Int) -> UnsafeMutablePointer<Float> { memory[i]! }
    @inline(__always) private func param(_ i: Int) -> UnsafeMutablePointer<Float> { parameters.values[i].baseAddress! }
    @inline(__always) private func grad(_ i: Int) -> UnsafeMutablePointer<Float> { parameters.gradients[i].baseAddress! }

    /// The embeddings of the last `forward`, [batch, outputSize].
    public var output: UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: buffer(outputValue), count: batch * outputSize) }

    /// Runs the graph in training mode on `images` [batch, inputSize] (the graph input's layout): batch
    /// statistics in every BatchNormalization, whose moving statistics are updated.
    public func forward(images: UnsafePointer<Float>) {
        buffer(inputValue).update(from: images, count: batch * inputSize)
        for step in steps {
            let t0 = profiling ? DispatchTime.now().uptimeNanoseconds : 0
            let y = buffer(step.output), n = values[step.output].count
            let x = step.inputs.isEmpty ? y : buffer(step.inputs[0])
            switch step.kind {
            case let .toChannelsFirst(h, w, c):
                toChannelsFirst(x, y, height: h, width: w, channels: c)
            case let .upsample(fh, fw):
                let s = values[step.inputs[0]].shape
                UpsampleNearestTraining.forward(x: x, y: y, planes: s[0] * s[1], height: s[2], width: s[3], factorH: fh, factorW: fw,
                                                threads: threads)
            case .pad(let p):
                let s = values[step.inputs[0]].shape
                Pad2DTraining.forward(x: x, y: y, planes: s[0] * s[1], height: s[2], width: s[3], top: p[0], left: p[1], bottom: p[2],
                                      right: p[3], threads: threads)
            case let .conv(s, w):
                ConvTraining.forward(s, x: x, w: param(w), y: y, scratch: scratch, threads: threads)
            case let .batchNorm(s, gamma, beta, mean, variance, b, relu6):
                BatchNormTraining.forward(s, x: x, gamma: param(gamma), beta: param(beta), y: y, mean: saved[b],
                                          invStd: saved[b] + s.channels, movingMean: param(mean), movingVariance: param(variance),
                                          besselCorrected: TrainingProgram.besselCorrectedMovingVariance, relu6: relu6, threads: threads)
            case .relu6:
                Relu6Training.forward(x: x, y: y, count: n, threads: threads)
            case .add:
                AddTraining.forward(a: x, b: buffer(step.inputs[1]), y: y, count: n, threads: threads)
            case .globalAveragePool:
                let s = values[step.inputs[0]].shape
                GlobalAveragePoolTraining.forward(x: x, y: y, planes: s[0] * s[1], spatial: s[2] * s[3], threads: threads)
            case .flatten:
                break
            case let .dense(w, b):
                let s = values[step.inputs[0]].shape
                DenseTraining.forward(x: x, w: param(w), b: param(b), y: y, rows: s[0], inFeatures: s[1],
                                      outFeatures: values[step.output].shape[1], threads: threads)
            case .l2Normalize(let b):
                let s = values[step.output].shape
                L2NormalizeTraining.forward(x: x, y: y, norm: saved[b], rows: s[0], dim: s[1])
            }
            if profiling { record(step.op + " forward", since: t0) }
        }
    }

    /// Back-propagates dL/doutput [batch, outputSize] through the last `forward`, leaving dL/dparameter
    /// for every trainable parameter in `parameters` (overwritten, not accumulated across calls).
    public func backward(outputGradient: UnsafePointer<Float>) {
        gradients.reset()
        let dOut = gradients.acquire(values[outputValue].count)
        dOut.update(from: outputGradient, count: values[outputValue].count)
        var owner: [UnsafeMutablePointer<Float>?] = Array(repeating: nil, count: values.count)
        owner[outputValue] = dOut

        /// Where the backward kernel writes the gradient of input value `v`: straight into its gradient if this is
        /// the first reader to report, else into a temporary that `finish` adds on.
        func target(_ v: Int) -> (UnsafeMutablePointer<Float>, accumulate: Bool) {
            if owner[v] != nil { return (gradients.acquire(values[v].count), true) }
            let g = gradients.acquire(values[v].count)
            owner[v] = g
            return (g, false)
        }
        func finish(_ v: Int, _ t: (UnsafeMutablePointer<Float>, accumulate: Bool)) {
            if t.accumulate {
                AddTraining.accumulate(owner[v]!, t.0, count: values[v].count, threads: threads)
                gradients.release(t.0)
            }
        }

        for step in steps.reversed() {
            guard let dy = owner[step.output] else { continue }
            let t0 = profiling ? DispatchTime.now().uptimeNanoseconds : 0
            let xIndex = step.inputs.first ?? step.output
            let needX = values[xIndex].requiresGradient
            switch step.kind {
            case .toChannelsFirst:
                break
            case let .upsample(fh, fw) where needX:
                let s = values[xIndex].shape, t = target(xIndex)
                UpsampleNearestTraining.backward(dy: dy, dx: t.0, planes: s[0] * s[1], height: s[2], width: s[3], factorH: fh,
                                                 factorW: fw, threads: threads)
                finish(xIndex, t)
            case .pad(let p) where needX:
                let s = values[xIndex].shape, t = target(xIndex)
                Pad2DTraining.backward(dy: dy, dx: t.0, planes: s[0] * s[1], height: s[2], width: s[3], top: p[0], left: p[1],
                                       bottom: p[2], right: p[3], threads: threads)
                finish(xIndex, t)
            case let .conv(s, w):
                let t = needX ? target(xIndex) : nil
                ConvTraining.backward(s, x: buffer(xIndex), w: param(w), dy: dy, dx: t?.0, dw: grad(w), scratch: scratch,
                                      threads: threads)
                if let t { finish(xIndex, t) }
            case let .batchNorm(s, gamma, beta, _, _, b, relu6):
                let t = target(xIndex)
                BatchNormTraining.backward(s, x: buffer(xIndex), dy: dy, gamma: param(gamma), mean: saved[b],
                                           invStd: saved[b] + s.channels, dx: t.0, dgamma: grad(gamma), dbeta: grad(beta),
                                           relu6Beta: relu6 ? UnsafePointer(param(beta)) : nil, threads: threads)
                finish(xIndex, t)
            case .relu6 where needX:
                let t = target(xIndex)
                Relu6Training.backward(y: buffer(step.output), dy: dy, dx: t.0, count: values[xIndex].count, threads: threads)
                finish(xIndex, t)
            case .add:
                for v in step.inputs where values[v].requiresGradient {
                    let t = target(v)
                    t.0.update(from: dy, count: values[v].count)
                    finish(v, t)
                }
            case .globalAveragePool where needX:
                let s = values[xIndex].shape, t = target(xIndex)
                GlobalAveragePoolTraining.backward(dy: dy, dx: t.0, planes: s[0] * s[1], spatial: s[2] * s[3], threads: threads)
                finish(xIndex, t)
            case .flatten where needX:
                let t = target(xIndex)
                t.0.update(from: dy, count: values[xIndex].count)
                finish(xIndex, t)
            case let .dense(w, b):
                let s = values[xIndex].shape, t = needX ? target(xIndex) : nil
                DenseTraining.backward(x: buffer(xIndex), w: param(w), dy: dy, dx: t?.0, dw: grad(w), db: grad(b), rows: s[0],
                                       inFeatures: s[1], outFeatures: values[step.output].shape[1], threads: threads)
                if let t { finish(xIndex, t) }
            case .l2Normalize(let b) where needX:
                let s = values[xIndex].shape, t = target(xIndex)
                L2NormalizeTraining.backward(y: buffer(step.output), norm: saved[b], dy: dy, dx: t.0, rows: s[0], dim: s[1])
                finish(xIndex, t)
            default:
                break
            }
            // This step produced its output, so no reader is left to add to its gradient.
            gradients.release(dy)
            owner[step.output] = nil
            if profiling { record(step.op + " backward", since: t0) }
        }
    }

    public func resetProfile() { profile = [:] }

    private func record(_ key: String, since t0: UInt64) {
        profile[key, default: 0] += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }

    /// Whether the moving variance folds in the Bessel-corrected batch variance (n / (n − 1)), as TensorFlow's
    /// fused batch normalization does; settled by the Keras parity test.
    public static let besselCorrectedMovingVariance = true

    /// [N, H, W, C] → [N, C, H, W].
    private func toChannelsFirst(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, height: Int, width: Int, channels: Int) {
        let plane = height * width
        if channels == 1 { y.update(from: x, count: batch * plane); return }
        for n in 0..<batch {
            for p in 0..<plane { for c in 0..<channels { y[(n * channels + c) * plane + p] = x[(n * plane + p) * channels + c] } }
        }
    }
}

/// Gradient buffers handed out and taken back during one backward pass; the same sizes recur every step,
/// so after the first step nothing is allocated.
final class GradientPool {
    private var free: [Int: [UnsafeMutablePointer<Float>]] = [:]
    private var inUse: [UnsafeMutablePointer<Float>: Int] = [:]

    func acquire(_ count: Int) -> UnsafeMutablePointer<Float> {
        let p = free[count]?.popLast() ?? UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        inUse[p] = count
        return p
    }

    func release(_ p: UnsafeMutablePointer<Float>) {
        guard let count = inUse.removeValue(forKey: p) else { return }
        free[count, default: []].append(p)
    }

    /// Takes back anything still out (a pass that skipped values).
    func reset() {
        for (p, count) in inUse { free[count, default: []].append(p) }
        inUse = [:]
    }

    deinit {
        reset()
        free.values.joined().forEach { $0.deallocate() }
    }
}
