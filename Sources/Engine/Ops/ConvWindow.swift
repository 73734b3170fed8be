import Foundation
import OnnxIO

// Sliding-window geometry shared by Conv and the pooling ops: auto_pad, pads, strides,
// dilations and ceil_mode resolved to output sizes and begin pads, one entry per spatial axis.

enum AutoPad {
    case notSet, sameUpper, sameLower, valid

    init(_ info: NodeInfo) throws {
        switch try info.string("auto_pad", "NOTSET") {
        case "NOTSET", "": self = .notSet
        case "SAME_UPPER": self = .sameUpper
        case "SAME_LOWER": self = .sameLower
        case "VALID": self = .valid
        case let other: throw KernelError("auto_pad '\(other)' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID")
        }
    }
}

/// The window attributes of a node, as written (spatial rank unknown until the input is seen).
struct WindowAttributes {
    var autoPad: AutoPad
    var kernelShape: [Int]?
    var strides: [Int]?
    var dilations: [Int]?
    var pads: [Int]?
    var ceilMode: Bool

    /// Explicit kernel, strides and ONNX-ordered pads (all begins, then all ends): no auto_pad, no dilation.
    init(kernelShape: [Int], strides: [Int], pads: [Int]) {
        autoPad = .notSet
        self.kernelShape = kernelShape
        self.strides = strides
        dilations = nil
        self.pads = pads
        ceilMode = false
    }

    init(_ info: NodeInfo, ceilMode: Bool = false) throws {
        autoPad = try AutoPad(info)
        kernelShape = try info.sizes("kernel_shape")
        strides = try info.sizes("strides")
        dilations = try info.sizes("dilations")
        pads = try info.sizes("pads")
        self.ceilMode = ceilMode
        if let s = strides, s.contains(where: { $0 < 1 }) { throw KernelError("strides \(s) must be positive") }
        if let d = dilations, d.contains(where: { $0 < 1 }) { throw KernelError("dilations \(d) must be positive") }
        if let p = pads, p.contains(where: { $0 < 0 }) { throw KernelError("pads \(p) must not be negative") }
        if let k = kernelShape, k.contains(where: { $0 < 1 }) { throw KernelError("kernel_shape \(k) must be positive") }
    }

    /// Output sizes and pads for `input` spatial sizes and `kernel` sizes (both of the spatial rank).
    /// Attributes are bounded (`NodeInfo.sizes`) and dims checked by the planner, so only products can overflow.
    func resolve(input: [Int], kernel: [Int]) throws -> (output: [Int], padBegin: [Int], padEnd: [Int], strides: [Int], dilations: [Int]) {
        let r = input.count
        let strides = self.strides ?? Array(repeating: 1, count: r)
        let dilations = self.dilations ?? Array(repeating: 1, count: r)
        guard strides.count == r else { throw KernelError("strides \(strides) must have \(r) values") }
        guard dilations.count == r else { throw KernelError("dilations \(dilations) must have \(r) values") }
        var output = [Int](repeating: 0, count: r)
        var begin = [Int](repeating: 0, count: r)
        var end = [Int](repeating: 0, count: r)
        for i in 0..<r {
            let effective = try checkedMul(kernel[i] - 1, dilations[i], "the window extent on spatial axis \(i)") + 1
            switch autoPad {
            case .notSet:
                if let p = pads {
                    guard p.count == 2 * r else { throw KernelError("pads \(p) must have \(2 * r) values") }
                    begin[i] = p[i]; end[i] = p[i + r]
                }
                let span = input[i] + begin[i] + end[i] - effective
                guard span >= 0 else { throw KernelError("the window (\(effective)) is larger than the padded input (\(input[i] + begin[i] + end[i])) on spatial axis \(i)") }
                if ceilMode {
                    var o = (span + strides[i] - 1) / strides[i] + 1
                    // A last window that would start in the end padding is dropped (PyTorch, ONNX Runtime).
                    if (o - 1) * strides[i] >= input[i] + begin[i] { o -= 1 }
                    output[i] = o
                } else {
                    output[i] = span / strides[i] + 1
                }
            case .valid:
                let span = input[i] - effective
                guard span >= 0 else { throw KernelError("the window (\(effective)) is larger than the input (\(input[i])) on spatial axis \(i)") }
                output[i] = (ceilMode ? (span + strides[i] - 1) / strides[i] : span / strides[i]) + 1
            case .sameUpper, .sameLower:
                output[i] = (input[i] + strides[i] - 1) / strides[i]
                let total = max(0, try checkedAdd((output[i] - 1) * strides[i], effective, "the window on spatial axis \(i)") - input[i])
                begin[i] = autoPad == .sameUpper ? total / 2 : total - total / 2
                end[i] = total - begin[i]
            }
            guard output[i] >= 1 else { throw KernelError("spatial axis \(i) has output size \(output[i])") }
        }
        return (output, begin, end, strides, dilations)
    }
}
