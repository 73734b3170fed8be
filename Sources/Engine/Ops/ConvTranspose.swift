import Foundation
import OnnxIO

/// Sizes of one transposed convolution as 3-D spatial (D, H, W), like ConvGeometry.
struct ConvTransposeGeometry {
    var batch = 0, inC = 0, outC = 0, group = 1
    var inD = 1, inH = 1, inW = 1
    var kD = 1, kH = 1, kW = 1
    var oD = 1, oH = 1, oW = 1
    var sD = 1, sH = 1, sW = 1
    var dD = 1, dH = 1, dW = 1
    var pD = 0, pH = 0, pW = 0  // begin pads (negative when output_shape asks for more than the pads remove)
    var outputShape: [Int] = []

    var inSpatial: Int { inD * inH * inW }
    var outSpatial: Int { oD * oH * oW }
    var kernelVolume: Int { kD * kH * kW }
    var inCg: Int { inC / group }
    var outCg: Int { outC / group }
    /// Rows of the GEMM result: one per (output channel of the group, kernel offset).
    var columnRows: Int { outCg * kernelVolume }
}

// X: [N,C,D1..Dr], W: [C,M/group,k1..kr], B: [M] (optional) -> Y: [N,M,o1..or]
// Per image and group: columns[Mg·kvol, inS] = W_gᵀ · X_g (one GEMM), then col2im adds every column
// into the output window it covers (the transpose of Conv's im2col).
final class ConvTransposeKernel: Kernel {
    let autoPad: AutoPad
    let group: Int
    let kernelShape: [Int]?
    let strides: [Int]?
    let dilations: [Int]?
    let pads: [Int]?
    let outputPadding: [Int]?
    let outputShapeAttribute: [Int]?

    init(_ info: NodeInfo) throws {
        autoPad = try AutoPad(info)
        group = try info.int("group", 1)
        guard group >= 1 else { throw KernelError("group must be at least 1, got \(group)") }
        kernelShape = try info.sizes("kernel_shape")
        strides = try info.sizes("strides")
        dilations = try info.sizes("dilations")
        pads = try info.sizes("pads")
        outputPadding = try info.sizes("output_padding")
        outputShapeAttribute = try info.sizes("output_shape")
        if let s = strides, s.contains(where: { $0 < 1 }) { throw KernelError("strides \(s) must be positive") }
        if let d = dilations, d.contains(where: { $0 < 1 }) { throw KernelError("dilations \(d) must be positive") }
    }

    func geometry(x: [Int], w: [Int]) throws -> ConvTransposeGeometry {
        let r = x.count - 2
        guard (1...3).contains(r) else { throw KernelError("ConvTranspose input must be 3-D, 4-D or 5-D, got rank \(x.count)") }
        guard w.count == x.count else { throw KernelError("weights of rank \(w.count) do not match an input of rank \(x.count)") }
        let kernel = Array(w[2...])
        guard kernel.allSatisfy({ $0 >= 1 }) else { throw KernelError("the weights' spatial shape \(kernel) has an empty axis") }
        if let k = kernelShape, k != kernel { throw KernelError("kernel_shape \(k) does not match the weights' spatial shape \(kernel)") }
        guard x[1] % group == 0, w[0] == x[1] else {
            throw KernelError("weights have \(w[0]) input channels, the input has \(x[1]) (group \(group) must divide them)")
        }
        let input = Array(x[2...])
        let s = strides ?? Array(repeating: 1, count: r), d = dilations ?? Array(repeating: 1, count: r)
        let op = outputPadding ?? Array(repeating: 0, count: r)
        guard s.count == r, d.count == r, op.count == r else {
            throw KernelError("strides \(s), dilations \(d) and output_padding \(op) must have \(r) values")
        }
        var requested = outputShapeAttribute
        if let o = requested, o.count == r + 2 { requested = Array(o[2...]) }
        if let o = requested, o.count != r { throw KernelError("output_shape \(o) must have \(r) values") }

        var begin = [Int](repeating: 0, count: r), output = [Int](repeating: 0, count: r)
        for i in 0..<r {
            // Attributes are bounded (`NodeInfo.sizes`), dims checked by the planner: only the products can overflow.
            let what = "ConvTranspose output size on spatial axis \(i)"
            let full = try [checkedMul(s[i], input[i] - 1, what), checkedMul(kernel[i] - 1, d[i], what), op[i], 1]
                .reduce(0) { try checkedAdd($0, $1, what) }
            if pads == nil && (autoPad == .sameUpper || autoPad == .sameLower) {
                output[i] = try requested?[i] ?? checkedMul(input[i], s[i], what)
                let total = full - output[i]
                // Floor division, as the reference does for a negative total too.
                let half = Int((Double(total) / 2).rounded(.down))
                begin[i] = autoPad == .sameUpper ? half : total - half
            } else {
                if let p = pads {
                    guard p.count == 2 * r else { throw KernelError("pads \(p) must have \(2 * r) values") }
                    begin[i] = p[i]
                    output[i] = requested?[i] ?? full - p[i] - p[i + r]
                } else {
                    output[i] = requested?[i] ?? full
                }
            }
            guard output[i] >= 1 else { throw KernelError("spatial axis \(i) has output size \(output[i])") }
        }
        var g = ConvTransposeGeometry()
        func pad3(_ v: [Int], _ fill: Int) -> [Int] { Array(repeating: fill, count: 3 - r) + v }
        let i3 = pad3(input, 1), k3 = pad3(kernel, 1), o3 = pad3(output, 1), s3 = pad3(s, 1), d3 = pad3(d, 1), p3 = pad3(begin, 0)
        g.batch = x[0]; g.inC = x[1]; g.outC = try checkedMul(w[1], group, "output channels"); g.group = group
        (g.inD, g.inH, g.inW) = (i3[0], i3[1], i3[2])
        (g.kD, g.kH, g.kW) = (k3[0], k3[1], k3[2])
        (g.oD, g.oH, g.oW) = (o3[0], o3[1], o3[2])
        (g.sD, g.sH, g.sW) = (s3[0], s3[1], s3[2])
        (g.dD, g.dH, g.dW) = (d3[0], d3[1], d3[2])
        (g.pD, g.pH, g.pW) = (p3[0], p3[1], p3[2])
        g.outputShape = [x[0], g.outC] + output
        return g
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0), w = try inputs.spec(1)
        guard x.dtype == .float, w.dtype == .float else {
            throw KernelError("ConvTranspose supports float32 only, got \(x.dtype) and \(w.dtype)", unsupported: true)
        }
        let g = try geometry(x: x.shape, w: w.shape)
        if let b = inputs.optional(2) {
            guard b.dtype == .float, b.shape == [g.outC] else { throw KernelError("bias must be float32 [\(g.outC)], got \(b.dtype)\(b.shape)") }
        }
        return [ValueSpec(.float, g.outputShape)]
    }

    func scratchBytes(inputs: [ValueSpec?], outputs: [ValueSpec]) throws -> Int {
        guard let x = inputs[0], let w = inputs[1] else { return 0 }
        let g = try geometry(x: x.shape, w: w.shape)
        return try checkedMul(checkedMul(g.columnRows, g.inSpatial, "ConvTranspose columns") + 16, 4, "ConvTranspose columns")
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0), w = inputs.at(1), y = outputs[0]
        let bias = inputs.count > 2 ? inputs[2]?.floats : nil
        let g = try geometry(x: x.shape, w: w.shape)
        guard let scratch = context.scratch?.assumingMemoryBound(to: Float.self) else {
            throw KernelError("ConvTranspose was planned without scratch memory")
        }
        let rows = g.columnRows, inS = g.inSpatial, outS = g.outSpatial
        for n in 0..<g.batch {
            for gr in 0..<g.group {
                // W_g is [Cg, Mg·kvol]; its transpose times X_g [Cg, inS].
                sgemm(transA: true, m: rows, n: inS, k: g.inCg, a: w.floats + gr * g.inCg * rows, lda: rows,
                      b: x.floats + (n * g.inC + gr * g.inCg) * inS, ldb: inS, c: scratch, ldc: inS)
                let out = y.floats + (n * g.outC + gr * g.outCg) * outS
                context.parallelFor(g.outCg) { range in
                    for m in range {
                        let plane = out + m * outS
                        plane.update(repeating: bias?[gr * g.outCg + m] ?? 0, count: outS)
                        for k in 0..<g.kernelVolume { col2imRow(g, column: scratch + (m * g.kernelVolume + k) * inS, kernelOffset: k, plane: plane) }
                    }
                }
            }
        }
    }

    /// Adds one column row (kernel offset k of one output channel, over every input position) into the output plane.
    private func col2imRow(_ g: ConvTransposeGeometry, column: UnsafePointer<Float>, kernelOffset k: Int, plane: UnsafeMutablePointer<Float>) {
        let kd = k / (g.kH * g.kW), kh = (k / g.kW) % g.kH, kw = k % g.kW
        var i = 0
        for id in 0..<g.inD {
            let od = id * g.sD - g.pD + kd * g.dD
            for ih in 0..<g.inH {
                let oh = ih * g.sH - g.pH + kh * g.dH
                if od < 0 || od >= g.oD || oh < 0 || oh >= g.oH { i += g.inW; continue }
                let line = plane + (od * g.oH + oh) * g.oW
                for iw in 0..<g.inW {
                    let ow = iw * g.sW - g.pW + kw * g.dW
                    if ow >= 0 && ow < g.oW { line[ow] += column[i] }
                    i += 1
                }
            }
        }
    }
}
