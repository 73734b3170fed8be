import Foundation
import OnnxIO

/// Helpers shared by the data-movement and shape kernels. They move raw bytes, so one code
/// path serves every element type; only the element size (1, 2, 4 or 8 bytes) matters.
enum DataMovement {
    /// Row-major strides, in elements.
    static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            s[i] = acc
            acc *= shape[i]
        }
        return s
    }

    /// The element type must have a whole-byte size for byte moves (strings and sub-byte types never reach here,
    /// but a clear error beats a silent zero-size copy).
    static func elementSize(_ dtype: DataType) throws -> Int {
        let size = dtype.elementSize
        guard size > 0 && dtype.isEngineType else {
            throw KernelError("element type \(dtype) is not supported", unsupported: true)
        }
        return size
    }

    /// Copies a whole tensor (Reshape, Squeeze, Flatten...: same bytes, new shape).
    static func copyAll(from input: TensorRef, to output: TensorRef, context: RunContext) {
        let bytes = output.byteCount
        guard bytes > 0, input.data != output.data else { return }
        // Big copies are split so both cores stream memory; small ones are a single memcpy.
        context.parallelFor(bytes, minChunk: 1 << 20) { r in
            memcpy(output.data + r.lowerBound, input.data + r.lowerBound, r.count)
        }
    }

    /// Writes `count` copies of the `elementSize`-byte value at `pattern` to `dst`.
    static func fill(_ dst: UnsafeMutableRawPointer, count: Int, pattern: UnsafeRawPointer, elementSize: Int) {
        guard count > 0 else { return }
        let p = pattern.assumingMemoryBound(to: UInt8.self)
        var uniform = true
        for i in 1..<elementSize where p[i] != p[0] { uniform = false }
        if uniform { memset(dst, Int32(p[0]), count * elementSize); return }
        // Doubling copies: 1, 2, 4, ... elements, each memcpy from the part already written.
        memcpy(dst, pattern, elementSize)
        var done = 1
        while done < count {
            let n = min(done, count - done)
            memcpy(dst + done * elementSize, dst, n * elementSize)
            done += n
        }
    }

    /// memcpy for the short rows of data-movement loops: below 128 bytes a word loop beats the call.
    @inline(__always)
    static func copyRow(_ dst: UnsafeMutableRawPointer, _ src: UnsafeRawPointer, _ bytes: Int) {
        if bytes <= 128 && bytes & 7 == 0 {
            var o = 0
            while o < bytes {
                (dst + o).storeBytes(of: (src + o).loadUnaligned(as: UInt64.self), as: UInt64.self)
                o &+= 8
            }
        } else {
            memcpy(dst, src, bytes)
        }
    }

    /// Reads an int64/int32 input known at plan time (starts, axes, pads, repeats, shape...).
    static func integers(_ inputs: PlanInputs, _ i: Int, _ what: String) throws -> [Int] {
        let t = try inputs.value(i)
        guard t.dtype == .int64 || t.dtype == .int32 else { throw KernelError("\(what) must be int64 or int32, got \(t.dtype)") }
        return try t.integers()
    }

    /// Normalises a list of axes against `rank`; duplicates are errors.
    static func axes(_ axes: [Int], rank: Int) throws -> [Int] {
        let normalized = try axes.map { a -> Int in
            let n = a < 0 ? a + rank : a
            guard n >= 0 && n < rank else { throw KernelError("axis \(a) is out of range for rank \(rank)") }
            return n
        }
        guard Set(normalized).count == normalized.count else { throw KernelError("axes \(axes) repeat an axis") }
        return normalized
    }
}

/// Maps a linear index over `dims` to offsets in two tensors with their own strides
/// (an odometer: `advance` is O(1) amortised, `seek` costs one division per axis).
struct DualOdometer {
    let dims: [Int]
    let strideA: [Int]
    let strideB: [Int]
    var index: [Int]
    var offsetA = 0
    var offsetB = 0

    init(dims: [Int], strideA: [Int], strideB: [Int]) {
        self.dims = dims
        self.strideA = strideA
        self.strideB = strideB
        index = [Int](repeating: 0, count: dims.count)
    }

    mutating func seek(_ linear: Int) {
        var rest = linear
        offsetA = 0
        offsetB = 0
        for axis in stride(from: dims.count - 1, through: 0, by: -1) {
            let d = dims[axis]
            let i = rest % d
            rest /= d
            index[axis] = i
            offsetA += i * strideA[axis]
            offsetB += i * strideB[axis]
        }
    }

    /// Calls `body(offsetA, offsetB)` for each linear index in `range`, in order. Runs along the last
    /// axis are plain loops; the odometer is only re-seeked between runs.
    @inline(__always)
    func forEach(_ range: Range<Int>, _ body: (Int, Int) -> Void) {
        guard let last = dims.indices.last else {
            for _ in range { body(0, 0) }
            return
        }
        var odo = self
        let n = dims[last], sa = strideA[last], sb = strideB[last]
        var linear = range.lowerBound
        while linear < range.upperBound {
            odo.seek(linear)
            let run = min(n - odo.index[last], range.upperBound - linear)
            var a = odo.offsetA, b = odo.offsetB
            for _ in 0..<run {
                body(a, b)
                a &+= sa
                b &+= sb
            }
            linear += run
        }
    }

    @inline(__always) mutating func advance() {
        var axis = dims.count - 1
        while axis >= 0 {
            index[axis] += 1
            offsetA += strideA[axis]
            offsetB += strideB[axis]
            if index[axis] < dims[axis] { return }
            offsetA -= strideA[axis] * dims[axis]
            offsetB -= strideB[axis] * dims[axis]
            index[axis] = 0
            axis -= 1
        }
    }
}
