import Engine
import Foundation

extension OpTable {
    /// Convolutions: regular, pointwise, depthwise; stride 1 and 2; symmetric and asymmetric padding.
    static func convCases(_ size: GradCaseSize, threads: Int) -> [GradCase] {
        let specs = size == .check ? convCheckCases : convTimingCases
        return specs.map { convCase($0.name, $0.shape, inputGradient: $0.inputGradient, reuseBuffers: size == .timing, threads: threads) }
    }

    private typealias ConvCaseSpec = (name: String, shape: Conv2DShape, inputGradient: Bool)

    /// Small shapes covering every backward path (and the forward paths behind them): batch ≥ 2, non-square
    /// maps; run on 2 threads so that the per-thread sums and their reduction are exercised.
    private static var convCheckCases: [ConvCaseSpec] {
        typealias S = Conv2DShape
        return [
            ("pointwise 1x1, per image", S(batch: 3, inChannels: 5, height: 5, width: 13, outChannels: 4, kernelH: 1, kernelW: 1), true),
            ("pointwise 1x1, gathered over the batch", S(batch: 2, inChannels: 4, height: 5, width: 6, outChannels: 3, kernelH: 1, kernelW: 1), true),
            ("pointwise 1x1, small maps", S(batch: 2, inChannels: 6, height: 3, width: 4, outChannels: 7, kernelH: 1, kernelW: 1), true),
            ("pointwise 1x1, few pixels", S(batch: 2, inChannels: 3, height: 2, width: 3, outChannels: 5, kernelH: 1, kernelW: 1), true),
            ("regular 3x3 s1 pad(1,1,1,1)", S(batch: 2, inChannels: 3, height: 6, width: 5, outChannels: 4, kernelH: 3, kernelW: 3,
                                             padTop: 1, padLeft: 1, padBottom: 1, padRight: 1), true),
            ("regular 3x3 s2 pad(1,1,1,1)", S(batch: 2, inChannels: 2, height: 7, width: 6, outChannels: 3, kernelH: 3, kernelW: 3,
                                             strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1), true),
            ("regular 3x3 s2 pad(0,0,1,1)", S(batch: 2, inChannels: 2, height: 8, width: 6, outChannels: 3, kernelH: 3, kernelW: 3,
                                             strideH: 2, strideW: 2, padBottom: 1, padRight: 1), true),
            ("first layer 1 channel 3x3 s2 pad(0,0,1,1), no dx", S(batch: 2, inChannels: 1, height: 10, width: 8, outChannels: 4,
                                                                  kernelH: 3, kernelW: 3, strideH: 2, strideW: 2, padBottom: 1, padRight: 1), false),
            ("depthwise 3x3 s1 pad(1,1,1,1)", S(batch: 2, inChannels: 3, height: 7, width: 5, outChannels: 3, kernelH: 3, kernelW: 3,
                                               group: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1), true),
            ("depthwise 3x3 s1 pad(1,1,1,1), wide plane", S(batch: 2, inChannels: 2, height: 8, width: 19, outChannels: 2, kernelH: 3,
                                                           kernelW: 3, group: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1), true),
            ("depthwise 3x3 s1 pad(0,2,2,0)", S(batch: 2, inChannels: 2, height: 5, width: 6, outChannels: 2, kernelH: 3, kernelW: 3,
                                               group: 2, padLeft: 2, padBottom: 2), true),
            ("depthwise 3x3 s2 pad(0,0,1,1)", S(batch: 2, inChannels: 3, height: 8, width: 6, outChannels: 3, kernelH: 3, kernelW: 3,
                                               strideH: 2, strideW: 2, group: 3, padBottom: 1, padRight: 1), true),
            ("depthwise 3x3 s2 pad(1,1,1,1)", S(batch: 2, inChannels: 3, height: 9, width: 7, outChannels: 3, kernelH: 3, kernelW: 3,
                                               strideH: 2, strideW: 2, group: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1), true),
            ("depthwise 3x3 s2 pad(0,0,1,1), wide plane", S(batch: 2, inChannels: 2, height: 6, width: 22, outChannels: 2, kernelH: 3,
                                                           kernelW: 3, strideH: 2, strideW: 2, group: 2, padBottom: 1, padRight: 1), true),
            ("depthwise 5x5 s1 pad(2,2,2,2), fallback", S(batch: 2, inChannels: 2, height: 6, width: 5, outChannels: 2, kernelH: 5,
                                                         kernelW: 5, group: 2, padTop: 2, padLeft: 2, padBottom: 2, padRight: 2), true),
            ("grouped 2x3 s(2,1) pad(1,0,0,2) group 2, fallback", S(batch: 2, inChannels: 4, height: 7, width: 5, outChannels: 6,
                                                                   kernelH: 2, kernelW: 3, strideH: 2, strideW: 1, group: 2,
                                                                   padTop: 1, padRight: 2), true),
            ("grouped pointwise 1x1 group 2, fallback", S(batch: 2, inChannels: 4, height: 3, width: 5, outChannels: 6, kernelH: 1,
                                                          kernelW: 1, group: 2), true),
            ("depthwise multiplier 2 3x3 s1 pad(1,1,1,1), fallback", S(batch: 2, inChannels: 2, height: 5, width: 4, outChannels: 4,
                                                                      kernelH: 3, kernelW: 3, group: 2,
                                                                      padTop: 1, padLeft: 1, padBottom: 1, padRight: 1), true),
            ("1x1 s2, fallback", S(batch: 2, inChannels: 3, height: 7, width: 6, outChannels: 4, kernelH: 1, kernelW: 1,
                                   strideH: 2, strideW: 2), true),
        ]
    }

    /// Every distinct convolution of the MobileNetV2 training graph at batch 128 (names say how many times
    /// the network has each).
    private static var convTimingCases: [ConvCaseSpec] {
        func pointwise(_ c: Int, _ m: Int, _ hw: Int, times: Int) -> ConvCaseSpec {
            ("pointwise \(c)→\(m) \(hw)x\(hw) (×\(times))",
             Conv2DShape(batch: 128, inChannels: c, height: hw, width: hw, outChannels: m, kernelH: 1, kernelW: 1), true)
        }
        func depthwise(_ c: Int, _ hw: Int, stride: Int, pads: (Int, Int, Int, Int), times: Int) -> ConvCaseSpec {
            ("depthwise \(c) 3x3 s\(stride) pad\(pads) \(hw)x\(hw) (×\(times))",
             Conv2DShape(batch: 128, inChannels: c, height: hw, width: hw, outChannels: c, kernelH: 3, kernelW: 3,
                         strideH: stride, strideW: stride, group: c, padTop: pads.0, padLeft: pads.1, padBottom: pads.2, padRight: pads.3), true)
        }
        let same = (1, 1, 1, 1), evenS2 = (0, 0, 1, 1)
        return [
            ("Conv1 1→32 3x3 s2 pad(0, 0, 1, 1) 84x84, no dx (×1)",
             Conv2DShape(batch: 128, inChannels: 1, height: 84, width: 84, outChannels: 32, kernelH: 3, kernelW: 3,
                         strideH: 2, strideW: 2, padBottom: 1, padRight: 1), false),
            depthwise(32, 42, stride: 1, pads: same, times: 1), pointwise(32, 16, 42, times: 1),
            pointwise(16, 96, 42, times: 1), depthwise(96, 42, stride: 2, pads: evenS2, times: 1), pointwise(96, 24, 21, times: 1),
            pointwise(24, 144, 21, times: 2), depthwise(144, 21, stride: 1, pads: same, times: 1), pointwise(144, 24, 21, times: 1),
            depthwise(144, 21, stride: 2, pads: same, times: 1), pointwise(144, 32, 11, times: 1),
            pointwise(32, 192, 11, times: 3), depthwise(192, 11, stride: 1, pads: same, times: 2), pointwise(192, 32, 11, times: 2),
            depthwise(192, 11, stride: 2, pads: same, times: 1), pointwise(192, 64, 6, times: 1),
            pointwise(64, 384, 6, times: 4), depthwise(384, 6, stride: 1, pads: same, times: 4), pointwise(384, 64, 6, times: 3),
            pointwise(384, 96, 6, times: 1),
            pointwise(96, 576, 6, times: 3), depthwise(576, 6, stride: 1, pads: same, times: 2), pointwise(576, 96, 6, times: 2),
            depthwise(576, 6, stride: 2, pads: evenS2, times: 1), pointwise(576, 160, 3, times: 1),
            pointwise(160, 960, 3, times: 3), depthwise(960, 3, stride: 1, pads: same, times: 3), pointwise(960, 160, 3, times: 2),
            pointwise(960, 320, 3, times: 1), pointwise(320, 1280, 3, times: 1),
        ]
    }

    /// One table case: ConvTraining's forward and backward against `naiveConv`. Checking, each call gets fresh outputs and
    /// scratch (dx, dw and scratch NaN-filled, so a kernel that leaves an element unwritten fails); timing, the same
    /// buffers every call, as the trainer keeps them (new 100 MB arrays would time their page faults, not the kernel).
    private static func convCase(_ name: String, _ s: Conv2DShape, inputGradient: Bool, reuseBuffers: Bool, threads: Int) -> GradCase {
        let xShape = [s.batch, s.inChannels, s.height, s.width]
        let wShape = [s.outChannels, s.inChannels / s.group, s.kernelH, s.kernelW]
        let scratchCount = ConvTraining.scratchFloats(s, threads: threads)
        let kept = reuseBuffers ? (y: ReusedArray(), dx: ReusedArray(), dw: ReusedArray(), scratch: ReusedArray()) : nil
        /// A kept buffer, or a new one filled with `fill`.
        func buffer(_ kept: ReusedArray?, _ count: Int, fill: Float, _ body: (UnsafeMutablePointer<Float>) -> Void) -> [Float] {
            if let kept { return kept.write(count: count, body) }
            var a = [Float](repeating: fill, count: count)
            a.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
            return a
        }
        return GradCase(
            op: "Conv", name: name, inputShapes: [xShape, wShape], differentiable: [inputGradient, true],
            outputShape: [s.batch, s.outChannels, s.outHeight, s.outWidth],
            reference: { naiveConv(s, x: $0[0], w: $0[1]) },
            forward: { inputs in
                precondition(blasLoaded, "OpenBLAS could not be loaded")
                return buffer(kept?.y, s.outputCount, fill: 0) { y in
                    _ = buffer(kept?.scratch, scratchCount, fill: 0) { scratch in
                        ConvTraining.forward(s, x: inputs[0], w: inputs[1], y: y, scratch: scratch, threads: threads)
                    }
                }
            },
            backward: { inputs, dy in
                precondition(blasLoaded, "OpenBLAS could not be loaded")
                var dx: [Float] = []
                let dw = buffer(kept?.dw, s.weightCount, fill: .nan) { dw in
                    dx = buffer(kept?.dx, inputGradient ? s.inputCount : 1, fill: .nan) { dx in
                        _ = buffer(kept?.scratch, scratchCount, fill: .nan) { scratch in
                            ConvTraining.backward(s, x: inputs[0], w: inputs[1], dy: dy, dx: inputGradient ? dx : nil, dw: dw,
                                                  scratch: scratch, threads: threads)
                        }
                    }
                }
                return [inputGradient ? dx : nil, dw]
            })
    }

    /// The kernels' GEMMs run in OpenBLAS, on one thread of its own (the kernels split work over the pool).
    private static let blasLoaded: Bool = (try? BLAS.loadSingleThreaded()) != nil

    /// The definition, in float64, sharing nothing with the kernels:
    /// y[n][m][oh][ow] = Σ over input channels c of m's group, kh, kw of
    ///                   w[m][c − first channel of the group][kh][kw] · x[n][c][oh·sH − pT + kh][ow·sW − pL + kw],
    /// where x is 0 outside the image.
    static func naiveConv(_ s: Conv2DShape, x: [Double], w: [Double]) -> [Double] {
        let oH = s.outHeight, oW = s.outWidth
        let cg = s.inChannels / s.group, mg = s.outChannels / s.group
        var y = [Double](repeating: 0, count: s.outputCount)
        for n in 0..<s.batch {
            for m in 0..<s.outChannels {
                let firstChannel = (m / mg) * cg
                for oh in 0..<oH {
                    for ow in 0..<oW {
                        var sum = 0.0
                        for ci in 0..<cg {
                            for kh in 0..<s.kernelH {
                                let ih = oh * s.strideH - s.padTop + kh
                                if ih < 0 || ih >= s.height { continue }
                                for kw in 0..<s.kernelW {
                                    let iw = ow * s.strideW - s.padLeft + kw
                                    if iw < 0 || iw >= s.width { continue }
                                    let xv = x[((n * s.inChannels + firstChannel + ci) * s.height + ih) * s.width + iw]
                                    sum += w[((m * cg + ci) * s.kernelH + kh) * s.kernelW + kw] * xv
                                }
                            }
                        }
                        y[((n * s.outChannels + m) * oH + oh) * oW + ow] = sum
                    }
                }
            }
        }
        return y
    }
}
