import Foundation
import OnnxIO

/// The reference embedder as a training graph in ONNX: Input(28,28,1) → UpSampling2D(3) →
/// keras.applications.MobileNetV2(alpha 1, no top, pooling "avg") → Dense(128), with Keras's layer and
/// weight names (`Conv1/kernel`, `bn_Conv1/moving_mean`, `block_1_pad`, …, `dense/bias`).
///
/// BatchNormalization stays a node, so the same file is the training checkpoint and a valid inference
/// model (ONNX BatchNormalization in inference mode uses the moving statistics).
/// Keras details kept: no conv biases; BatchNormalization epsilon 1e-3 and momentum 0.999; stride-2
/// depthwise convolutions preceded by `ZeroPadding2D(correct_pad)` (asymmetric for even sizes) and run
/// "valid"; Conv1 is "same" with stride 2 (the same padding for even sizes); ReLU6 after Conv1, every
/// expand and depthwise BN, and Conv_1; linear projections with a residual Add where shapes match.
public struct MobileNetV2Embedder: Sendable {
    public var height = 28
    public var width = 28
    public var upsample = 3
    public var embeddingSize = 128
    public static let epsilon: Float = 1e-3
    public static let momentum: Float = 0.999
    public static let inputName = "input"
    public static let outputName = "embedding"

    public init(embeddingSize: Int = 128) { self.embeddingSize = embeddingSize }

    /// (filters, stride, expansion) of blocks 0…16, as keras.applications lists them for alpha 1.
    static let blocks: [(filters: Int, stride: Int, expansion: Int)] = [
        (16, 1, 1),
        (24, 2, 6), (24, 1, 6),
        (32, 2, 6), (32, 1, 6), (32, 1, 6),
        (64, 2, 6), (64, 1, 6), (64, 1, 6), (64, 1, 6),
        (96, 1, 6), (96, 1, 6), (96, 1, 6),
        (160, 2, 6), (160, 1, 6), (160, 1, 6),
        (320, 1, 6),
    ]

    /// The graph with every parameter at Keras's initial value: glorot_uniform kernels (from `seed`),
    /// zero biases, beta and moving means, unit gamma and moving variances.
    public func build(seed: UInt64) -> (model: Model, parameters: [ParameterInfo]) {
        var b = Builder()
        var random = TrainingRandom(seed: seed)
        var x = b.input(Self.inputName, height: height, width: width)
        x = b.node("input_nchw", "Transpose", [x], attributes: [.init(name: "perm", value: .ints([0, 3, 1, 2]))])
        x = b.node("up_sampling2d", "Resize", [x, "", b.constant("up_sampling2d/scales", [1, 1, Float(upsample), Float(upsample)])],
                   attributes: [.init(name: "mode", value: .string(Data("nearest".utf8))),
                                .init(name: "coordinate_transformation_mode", value: .string(Data("asymmetric".utf8))),
                                .init(name: "nearest_mode", value: .string(Data("floor".utf8)))])
        var size = (h: height * upsample, w: width * upsample)
        var channels = 1

        // Conv1: 3x3 stride 2 "same" (TensorFlow puts the odd padding row and column at the end).
        let first = 32
        let pads = samePads(size, kernel: 3, stride: 2)
        x = b.conv("Conv1", x, inC: channels, outC: first, kernel: 3, stride: 2, pads: pads, group: 1, random: &random)
        size = ((size.h + pads[0] + pads[2] - 3) / 2 + 1, (size.w + pads[1] + pads[3] - 3) / 2 + 1)
        x = b.batchNorm("bn_Conv1", x, channels: first)
        x = b.relu6("Conv1_relu", x)
        channels = first

        for (id, block) in Self.blocks.enumerated() {
            let prefix = id == 0 ? "expanded_conv_" : "block_\(id)_"
            let input = x
            if block.expansion > 1 {
                let expanded = channels * block.expansion
                x = b.conv(prefix + "expand", x, inC: channels, outC: expanded, kernel: 1, stride: 1, pads: [0, 0, 0, 0], group: 1, random: &random)
                x = b.batchNorm(prefix + "expand_BN", x, channels: expanded)
                x = b.relu6(prefix + "expand_relu", x)
            }
            let width = channels * block.expansion
            var dwPads = [1, 1, 1, 1]
            if block.stride == 2 {
                let p = correctPad(size, kernel: 3)  // ZeroPadding2D, then a "valid" depthwise convolution
                x = b.pad(prefix + "pad", x, pads: p)
                size = (size.h + p[0] + p[2], size.w + p[1] + p[3])
                dwPads = [0, 0, 0, 0]
            }
            x = b.conv(prefix + "depthwise", x, inC: width, outC: width, kernel: 3, stride: block.stride, pads: dwPads, group: width,
                       random: &random)
            size = ((size.h + dwPads[0] + dwPads[2] - 3) / block.stride + 1, (size.w + dwPads[1] + dwPads[3] - 3) / block.stride + 1)
            x = b.batchNorm(prefix + "depthwise_BN", x, channels: width)
            x = b.relu6(prefix + "depthwise_relu", x)
            x = b.conv(prefix + "project", x, inC: width, outC: block.filters, kernel: 1, stride: 1, pads: [0, 0, 0, 0], group: 1,
                       random: &random)
            x = b.batchNorm(prefix + "project_BN", x, channels: block.filters)
            if block.stride == 1 && channels == block.filters {
                x = b.node(prefix + "add", "Add", [input, x])
            }
            channels = block.filters
        }
        x = b.conv("Conv_1", x, inC: channels, outC: 1280, kernel: 1, stride: 1, pads: [0, 0, 0, 0], group: 1, random: &random)
        x = b.batchNorm("Conv_1_bn", x, channels: 1280)
        x = b.relu6("out_relu", x)
        x = b.node("global_average_pooling2d", "GlobalAveragePool", [x])
        x = b.node("global_average_pooling2d/flatten", "Flatten", [x], attributes: [.init(name: "axis", value: .int(1))])
        b.dense("dense", x, inFeatures: 1280, outFeatures: embeddingSize, output: Self.outputName, random: &random)
        return (b.finish(name: "mobilenetv2_embedder", embeddingSize: embeddingSize), b.parameters)
    }

    /// TensorFlow's "same" padding [top, left, bottom, right]: the odd one at the end.
    func samePads(_ size: (h: Int, w: Int), kernel: Int, stride: Int) -> [Int] {
        func total(_ n: Int) -> Int { max(((n + stride - 1) / stride - 1) * stride + kernel - n, 0) }
        let th = total(size.h), tw = total(size.w)
        return [th / 2, tw / 2, th - th / 2, tw - tw / 2]
    }

    /// keras.applications' correct_pad: (k//2 − adjust, k//2) per axis, adjust = 1 for even sizes.
    func correctPad(_ size: (h: Int, w: Int), kernel: Int) -> [Int] {
        let half = kernel / 2
        return [half - (1 - size.h % 2), half - (1 - size.w % 2), half, half]
    }
}

/// Appends nodes and initializers with Keras names; records every parameter.
private struct Builder {
    var graph = Graph()
    var parameters: [ParameterInfo] = []

    mutating func input(_ name: String, height: Int, width: Int) -> String {
        graph.inputs.append(ValueInfo(name: name, type: .tensor(.float, [.symbol("N"), .known(height), .known(width), .known(1)])))
        return name
    }

    mutating func node(_ name: String, _ op: String, _ inputs: [String], attributes: [Attribute] = [], output: String? = nil) -> String {
        let out = output ?? name
        graph.nodes.append(Node(name: name, opType: op, inputs: inputs, outputs: [out], attributes: attributes))
        return out
    }

    mutating func constant(_ name: String, _ values: [Float]) -> String {
        graph.initializers.append(Tensor(name: name, floats: values, dims: [values.count]))
        return name
    }

    mutating func parameter(_ name: String, _ shape: [Int], _ layout: ParameterLayout, trainable: Bool = true, values: [Float]) -> String {
        parameters.append(ParameterInfo(name: name, shape: shape, layout: layout, trainable: trainable))
        graph.initializers.append(Tensor(name: name, floats: values, dims: shape))
        return name
    }

    /// glorot_uniform: U(±sqrt(6 / (fan_in + fan_out))), fans counted as Keras does on its own layout.
    func glorot(_ count: Int, fanIn: Int, fanOut: Int, _ random: inout TrainingRandom) -> [Float] {
        let limit = (6 / Float(fanIn + fanOut)).squareRoot()
        return (0..<count).map { _ in random.uniform(-limit, limit) }
    }

    mutating func conv(_ name: String, _ x: String, inC: Int, outC: Int, kernel: Int, stride: Int, pads: [Int], group: Int,
                       random: inout TrainingRandom) -> String {
        let depthwise = group > 1
        let shape = [outC, inC / group, kernel, kernel]
        // Keras kernels: HWIO [k, k, in, out] with fans k²·in and k²·out; depthwise [k, k, C, 1] with fans k²·C and k².
        let receptive = kernel * kernel
        let values = glorot(shape.reduce(1, *), fanIn: receptive * inC, fanOut: receptive * (depthwise ? 1 : outC), &random)
        let layout: ParameterLayout = depthwise ? .depthwiseKernel : .convKernel
        let info = ParameterInfo(name: name + (depthwise ? "/depthwise_kernel" : "/kernel"), shape: shape, layout: layout, trainable: true)
        // Values are drawn in Keras's layout order, then stored in Kizuki's.
        let w = parameter(info.name, shape, layout, values: info.fromKeras(values))
        return node(name, "Conv", [x, w], attributes: [
            .init(name: "kernel_shape", value: .ints([Int64(kernel), Int64(kernel)])),
            .init(name: "strides", value: .ints([Int64(stride), Int64(stride)])),
            .init(name: "pads", value: .ints(pads.map(Int64.init))),
            .init(name: "group", value: .int(Int64(group))),
        ])
    }

    mutating func batchNorm(_ name: String, _ x: String, channels: Int) -> String {
        let ones = [Float](repeating: 1, count: channels), zeros = [Float](repeating: 0, count: channels)
        let gamma = parameter(name + "/gamma", [channels], .plain, values: ones)
        let beta = parameter(name + "/beta", [channels], .plain, values: zeros)
        let mean = parameter(name + "/moving_mean", [channels], .plain, trainable: false, values: zeros)
        let variance = parameter(name + "/moving_variance", [channels], .plain, trainable: false, values: ones)
        return node(name, "BatchNormalization", [x, gamma, beta, mean, variance], attributes: [
            .init(name: "epsilon", value: .float(MobileNetV2Embedder.epsilon)),
            .init(name: "momentum", value: .float(MobileNetV2Embedder.momentum)),
        ])
    }

    mutating func relu6(_ name: String, _ x: String) -> String {
        if !graph.initializers.contains(where: { $0.name == "relu6/min" }) {
            graph.initializers.append(Tensor(name: "relu6/min", floats: [0], dims: []))
            graph.initializers.append(Tensor(name: "relu6/max", floats: [6], dims: []))
        }
        return node(name, "Clip", [x, "relu6/min", "relu6/max"])
    }

    mutating func pad(_ name: String, _ x: String, pads p: [Int]) -> String {
        let padsName = name + "/pads"
        // ONNX order: begins of N, C, H, W, then ends.
        graph.initializers.append(Tensor(name: padsName, int64s: [0, 0, Int64(p[0]), Int64(p[1]), 0, 0, Int64(p[2]), Int64(p[3])], dims: [8]))
        return node(name, "Pad", [x, padsName], attributes: [.init(name: "mode", value: .string(Data("constant".utf8)))])
    }

    mutating func dense(_ name: String, _ x: String, inFeatures: Int, outFeatures: Int, output: String, random: inout TrainingRandom) {
        let w = parameter(name + "/kernel", [inFeatures, outFeatures], .plain,
                          values: glorot(inFeatures * outFeatures, fanIn: inFeatures, fanOut: outFeatures, &random))
        let bias = parameter(name + "/bias", [outFeatures], .plain, values: [Float](repeating: 0, count: outFeatures))
        _ = node(name, "Gemm", [x, w, bias], output: output)
    }

    func finish(name: String, embeddingSize: Int) -> Model {
        var model = Model()
        model.irVersion = 8
        model.opsetImports = [OpsetID(domain: "", version: 13)]
        model.producerName = "kizuki"
        var g = graph
        g.name = name
        g.outputs = [ValueInfo(name: MobileNetV2Embedder.outputName, type: .tensor(.float, [.symbol("N"), .known(embeddingSize)]))]
        model.graph = g
        return model
    }
}
