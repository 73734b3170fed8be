/// How a parameter is laid out inside Kizuki's training graph, and how that maps to Keras's layout
/// (the layout weight import and export speak).
public enum ParameterLayout: String, Sendable {
    /// Conv kernel: OIHW [out, in, kh, kw] here; HWIO [kh, kw, in, out] in Keras.
    case convKernel
    /// Depthwise kernel: [C, 1, kh, kw] here; [kh, kw, C, 1] in Keras.
    case depthwiseKernel
    /// Dense kernel [in, out] and every vector (bias, gamma, beta, moving statistics): the same in both.
    case plain
}

/// One parameter or moving statistic of a training graph, under its Keras name (`Conv1/kernel`, `bn_Conv1/gamma`).
public struct ParameterInfo: Equatable, Sendable {
    public var name: String
    /// Shape in Kizuki's layout (the ONNX initializer's dims).
    public var shape: [Int]
    public var layout: ParameterLayout
    /// False for BatchNormalization's moving mean and variance: updated by the forward pass, not by SGD.
    public var trainable: Bool

    public var count: Int { shape.reduce(1, *) }

    /// The shape Keras stores this parameter with.
    public var kerasShape: [Int] {
        switch layout {
        case .convKernel: return [shape[2], shape[3], shape[1], shape[0]]
        case .depthwiseKernel: return [shape[2], shape[3], shape[0], 1]
        case .plain: return shape
        }
    }

    /// Converts values from Keras's layout to Kizuki's.
    public func fromKeras(_ values: [Float]) -> [Float] { permute(values, toKeras: false) }
    /// Converts values from Kizuki's layout to Keras's.
    public func toKeras(_ values: [Float]) -> [Float] { permute(values, toKeras: true) }

    private func permute(_ values: [Float], toKeras: Bool) -> [Float] {
        guard layout != .plain else { return values }
        // Both are the transpose [a, b, kh, kw] (here) ↔ [kh, kw, b, a] (Keras) with (a, b) = (out, in) for
        // convolutions and (C, 1) for depthwise kernels, whose Keras shape [kh, kw, C, 1] has the same memory order.
        let a = shape[0], b = shape[1], kh = shape[2], kw = shape[3]
        var out = [Float](repeating: 0, count: values.count)
        for i in 0..<a { for j in 0..<b { for y in 0..<kh { for x in 0..<kw {
            let here = ((i * b + j) * kh + y) * kw + x
            let keras = ((y * kw + x) * b + j) * a + i
            if toKeras { out[keras] = values[here] } else { out[here] = values[keras] }
        } } } }
        return out
    }
}
