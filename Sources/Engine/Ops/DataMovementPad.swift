import Foundation
import OnnxIO

// data: [d0, ..., d(r-1)], pads: int64 [2k] (all begins, then all ends, for `axes` or every axis),
// constant_value: scalar, axes: int [k] -> output: [d_i + begin_i + end_i]; negative pads crop (before padding).
final class PadKernel: Kernel {
    enum Mode: String { case constant, reflect, edge }
    let mode: Mode
    /// Opset < 11 takes pads and the fill value as attributes; from 11 they are inputs (axes from 18).
    let attributePads: [Int]?
    let attributeValue: Float

    init(_ info: NodeInfo) throws {
        let name = try info.string("mode", "constant")
        guard let mode = Mode(rawValue: name) else { throw info.unsupported("mode '\(name)'") }
        self.mode = mode
        if info.opset < 11 {
            guard let pads = try info.sizes(info.opset < 2 ? "paddings" : "pads") else {
                throw KernelError("Pad-\(info.opset < 2 ? 1 : 2) needs a '\(info.opset < 2 ? "paddings" : "pads")' attribute")
            }
            attributePads = pads
            attributeValue = try info.float("value", 0)
        } else {
            attributePads = nil
            attributeValue = 0
        }
    }

    /// Begin and end pads for every axis of a rank-`rank` tensor.
    static func fullPads(_ pads: [Int], axes: [Int]?, rank: Int) throws -> (begin: [Int], end: [Int]) {
        let axes = try DataMovement.axes(axes ?? Array(0..<rank), rank: rank)
        guard pads.count == 2 * axes.count else { throw KernelError("pads has \(pads.count) values; expected \(2 * axes.count)") }
        // Bounded pads keep every sum below (dim + begin + end, crops) in range.
        try checkSizeValues(pads, "pads")
        var begin = [Int](repeating: 0, count: rank), end = begin
        for (i, a) in axes.enumerated() {
            begin[a] = pads[i]
            end[a] = pads[i + axes.count]
        }
        return (begin, end)
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0)
        _ = try DataMovement.elementSize(x.dtype)
        let (begin, end): ([Int], [Int])
        if let attributePads {
            (begin, end) = try PadKernel.fullPads(attributePads, axes: nil, rank: x.shape.count)
        } else {
            (begin, end) = try PadKernel.fullPads(DataMovement.integers(inputs, 1, "pads"),
                                                  axes: inputs.has(3) ? DataMovement.integers(inputs, 3, "axes") : nil,
                                                  rank: x.shape.count)
            if let v = inputs.optional(2) {
                guard v.dtype == x.dtype else { throw KernelError("constant_value is \(v.dtype) but data is \(x.dtype)") }
            }
        }
        let shape = try x.shape.indices.map { a -> Int in
            let n = x.shape[a] + begin[a] + end[a]
            guard n >= 0 else { throw KernelError("pads \(begin[a]), \(end[a]) crop more than axis \(a) of size \(x.shape[a]) holds") }
            // Edge and reflect copy from the (cropped) data, so they need some along a padded axis.
            let kept = AxisPlan(begin: begin[a], end: end[a], dim: x.shape[a]).count
            if mode != .constant && kept == 0 && n > 0 { throw KernelError("\(mode.rawValue) padding of axis \(a), which has no data left") }
            return n
        }
        return [ValueSpec(x.dtype, shape)]
    }

    /// One axis as the spec defines it: negative pads first crop the data to [first, first + count),
    /// then non-negative pads (`before` in front) are added around what is left.
    struct AxisPlan {
        let first: Int, count: Int, before: Int
        init(begin: Int, end: Int, dim: Int) {
            first = max(0, -begin)
            count = max(0, dim - first - max(0, -end))
            before = max(0, begin)
        }
    }

    /// Output coordinate -> input coordinate along one axis, -1 for "the constant".
    func sourceIndex(_ o: Int, _ axis: AxisPlan) -> Int {
        let i = o - axis.before, n = axis.count
        if i >= 0 && i < n { return axis.first + i }
        switch mode {
        case .constant: return -1
        case .edge: return axis.first + min(max(i, 0), n - 1)
        case .reflect:
            // Mirror without repeating the edge; pads wider than the axis keep bouncing (period 2(n-1)).
            guard n > 1 else { return axis.first }
            let period = 2 * (n - 1)
            let m = ((i % period) + period) % period
            return axis.first + (m < n ? m : period - m)
        }
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0), out = outputs[0]
        guard out.count > 0 else { return }
        let rank = x.shape.count
        let es = x.dtype.elementSize
        guard rank > 0 else { memcpy(out.data, x.data, es); return }
        let (begin, end) = try attributePads.map { try PadKernel.fullPads($0, axes: nil, rank: rank) }
            ?? PadKernel.fullPads(DataMovement.integers(inputs.at(1)),
                                  axes: try inputs.count > 3 ? inputs[3].map(DataMovement.integers) : nil, rank: rank)
        let plans = (0..<rank).map { AxisPlan(begin: begin[$0], end: end[$0], dim: x.shape[$0]) }

        // The fill value as one element of the data's type.
        var value = [UInt8](repeating: 0, count: 8)
        if let v = inputs.count > 2 ? inputs[2] : nil, v.count > 0 {
            memcpy(&value, v.data, es)
        } else if attributePads != nil {
            var f = attributeValue
            CastConvert.convert(&f, .float, &value, x.dtype, count: 1)
        }

        // Per axis, where each output coordinate reads from (small tables: one entry per output coordinate).
        let maps = (0..<rank).map { a in (0..<out.shape[a]).map { sourceIndex($0, plans[a]) } }
        let inStrides = DataMovement.strides(x.shape)
        let last = rank - 1
        let width = out.shape[last], lastPlan = plans[last]
        // The stretch of the last axis read straight from the data: output [lo, hi) <- input [first, first + hi - lo).
        let lo = min(lastPlan.before, width), hi = max(lo, min(width, lastPlan.before + lastPlan.count))
        let rowDims = Array(out.shape[..<last])
        let rowBytes = width * es

        value.withUnsafeBytes { valueBytes in
            let fillValue = valueBytes.baseAddress!
            context.parallelFor(rowDims.reduce(1, *), minChunk: max(1, (1 << 16) / rowBytes)) { rows in
                for row in rows {
                    let d = out.data + row * rowBytes
                    // Decode the row's outer coordinates and find its source row (or none: a constant row).
                    var rest = row, srcRow = 0, constantRow = false
                    for a in stride(from: last - 1, through: 0, by: -1) {
                        let i = maps[a][rest % rowDims[a]]
                        rest /= rowDims[a]
                        if i < 0 { constantRow = true } else { srcRow += i * inStrides[a] }
                    }
                    if constantRow {
                        DataMovement.fill(d, count: width, pattern: fillValue, elementSize: es)
                        continue
                    }
                    let s = UnsafeRawPointer(x.data) + srcRow * es
                    if hi > lo { memcpy(d + lo * es, s + lastPlan.first * es, (hi - lo) * es) }
                    if mode == .constant {
                        DataMovement.fill(d, count: lo, pattern: fillValue, elementSize: es)
                        DataMovement.fill(d + hi * es, count: width - hi, pattern: fillValue, elementSize: es)
                    } else {
                        // Edge/reflect pads on the last axis: single elements picked by the map.
                        for j in 0..<lo { memcpy(d + j * es, s + maps[last][j] * es, es) }
                        for j in hi..<width { memcpy(d + j * es, s + maps[last][j] * es, es) }
                    }
                }
            }
        }
    }
}

// MARK: - Training

/// Zero padding of the two spatial axes (Keras ZeroPadding2D): x [planes, height, width] →
/// y [planes, height + top + bottom, width + left + right].
public enum Pad2DTraining {
    /// y = x inside, 0 on the border: each output row is written once (zeros, the input row, zeros).
    public static func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, planes: Int, height: Int, width: Int,
                               top: Int, left: Int, bottom: Int, right: Int, threads: Int) {
        let outHeight = height + top + bottom, outWidth = width + left + right
        RunContext(threads: threads, scratch: nil).parallelFor(planes, minChunk: max(1, 16384 / max(outHeight * outWidth, 1))) { range in
            for p in range {
                let src = x + p * height * width, dst = y + p * outHeight * outWidth
                zeroRow(dst, top * outWidth)
                for i in 0..<height {
                    let row = dst + (top + i) * outWidth
                    zeroRow(row, left)
                    copyRow(src + i * width, row + left, width)
                    zeroRow(row + left + width, right)
                }
                zeroRow(dst + (top + height) * outWidth, bottom * outWidth)
            }
        }
    }

    /// dx (overwritten) = dy without its border. Of `y = x inside, 0 on the border`: the border takes no input.
    public static func backward(dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, planes: Int, height: Int,
                                width: Int, top: Int, left: Int, bottom: Int, right: Int, threads: Int) {
        let outHeight = height + top + bottom, outWidth = width + left + right
        RunContext(threads: threads, scratch: nil).parallelFor(planes, minChunk: max(1, 16384 / max(height * width, 1))) { range in
            for p in range {
                let src = dy + p * outHeight * outWidth + top * outWidth + left, dst = dx + p * height * width
                for i in 0..<height { copyRow(src + i * outWidth, dst + i * width, width) }
            }
        }
    }
}

// Rows and borders of the network are short (a few to 84 floats): vectors in line beat a memmove or memset call
// per row (Pad 128x96x42x42: backward 15 → 8 ms).

/// dst[0..<n] = src[0..<n]
@inline(__always)
private func copyRow(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    while i + 16 <= n { store16(load16(src + i), dst + i); i += 16 }
    while i < n { dst[i] = src[i]; i += 1 }
}

/// dst[0..<n] = 0
@inline(__always)
private func zeroRow(_ dst: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    while i + 16 <= n { store16(SIMD16<Float>(), dst + i); i += 16 }
    while i < n { dst[i] = 0; i += 1 }
}
