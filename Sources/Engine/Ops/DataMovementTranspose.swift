import Foundation
import OnnxIO

// data: [d0, ..., d(r-1)] -> transposed: [d(perm[0]), ..., d(perm[r-1])]; perm defaults to reversed axes
final class TransposeKernel: Kernel {
    let perm: [Int]?

    init(_ info: NodeInfo) throws { perm = try info.ints("perm") }

    func permutation(rank: Int) throws -> [Int] {
        let p = perm ?? Array((0..<rank).reversed())
        guard p.count == rank, Set(p) == Set(0..<rank) else { throw KernelError("perm \(p) is not a permutation of \(rank) axes") }
        return p
    }

    func infer(_ inputs: PlanInputs) throws -> [ValueSpec] {
        let x = try inputs.spec(0)
        _ = try DataMovement.elementSize(x.dtype)
        return [ValueSpec(x.dtype, try permutation(rank: x.shape.count).map { x.shape[$0] })]
    }

    func run(inputs: [TensorRef?], outputs: [TensorRef], context: RunContext) throws {
        let x = inputs.at(0)
        let layout = TransposeLayout(shape: x.shape, perm: try permutation(rank: x.shape.count))
        layout.copy(from: x.data, to: outputs[0].data, elementSize: x.dtype.elementSize, context: context)
    }
}

/// A transpose reduced to its simplest equivalent: size-1 axes dropped and input axes that stay
/// neighbours in the output merged. NHWC->NCHW becomes [N, HW, C] with perm [0, 2, 1].
struct TransposeLayout {
    var dims: [Int]
    var perm: [Int]

    init(shape: [Int], perm: [Int]) {
        let kept = shape.indices.filter { shape[$0] != 1 }
        var renumber = [Int](repeating: -1, count: shape.count)
        for (n, a) in kept.enumerated() { renumber[a] = n }
        dims = kept.map { shape[$0] }
        self.perm = perm.compactMap { renumber[$0] >= 0 ? renumber[$0] : nil }
        var i = 0
        while i + 1 < self.perm.count {
            let a = self.perm[i]
            if self.perm[i + 1] == a + 1 {
                dims[a] *= dims[a + 1]
                dims.remove(at: a + 1)
                self.perm.remove(at: i + 1)
                for j in self.perm.indices where self.perm[j] > a { self.perm[j] -= 1 }
            } else {
                i += 1
            }
        }
    }

    func copy(from src: UnsafeRawPointer, to dst: UnsafeMutableRawPointer, elementSize es: Int, context: RunContext) {
        let total = dims.reduce(1, *)
        guard total > 0 else { return }
        let r = dims.count
        if r <= 1 {  // identity after simplification
            memcpy(dst, src, total * es)
            return
        }
        let inStrides = DataMovement.strides(dims)
        let outDims = perm.map { dims[$0] }
        let outStrides = DataMovement.strides(outDims)

        if perm[r - 1] == r - 1 {
            // The innermost axis stays innermost: copy contiguous rows.
            let rowBytes = dims[r - 1] * es
            let rowDims = Array(outDims[..<(r - 1)])
            let inRowStrides = (0..<(r - 1)).map { inStrides[perm[$0]] }
            context.parallelFor(rowDims.reduce(1, *), minChunk: max(1, (1 << 16) / rowBytes)) { rows in
                DualOdometer(dims: rowDims, strideA: inRowStrides, strideB: Array(outStrides[..<(r - 1)])).forEach(rows) { a, b in
                    DataMovement.copyRow(dst + b &* es, src + a &* es, rowBytes)
                }
            }
            return
        }

        // Otherwise a batch of 2-D transposes: the input's contiguous axis (output position q) against the
        // output's contiguous axis (input axis p). Each is copied in tiles that fit in L1 on both sides.
        let q = perm.firstIndex(of: r - 1)!, p = perm[r - 1]
        let rows = dims[r - 1], cols = dims[p]       // 2-D block: rows along q, cols along the output's last axis
        let srcColStride = inStrides[p], dstRowStride = outStrides[q]
        let batchAxes = (0..<(r - 1)).filter { $0 != q }
        let batchDims = batchAxes.map { outDims[$0] }
        let batchIn = batchAxes.map { inStrides[perm[$0]] }, batchOut = batchAxes.map { outStrides[$0] }
        // 32x32 tiles (4 KB of float32 each side, in L1); a thin side (e.g. 3 channels) gives the other more room.
        let tileR = rows < 32 ? rows : (cols < 32 ? min(rows, max(32, 1024 / cols)) : 32)
        let tileC = cols < 32 ? cols : min(cols, max(32, 1024 / tileR))
        let tilesR = (rows + tileR - 1) / tileR, tilesC = (cols + tileC - 1) / tileC
        let perBatch = tilesR * tilesC
        let units = batchDims.reduce(1, *) * perBatch

        context.parallelFor(units, minChunk: 16) { range in
            var odo = DualOdometer(dims: batchDims, strideA: batchIn, strideB: batchOut)
            var batch = range.lowerBound / perBatch
            odo.seek(batch)
            for u in range {
                let b = u / perBatch
                if b != batch { odo.advance(); batch = b }
                let t = u % perBatch
                let r0 = (t / tilesC) * tileR, c0 = (t % tilesC) * tileC
                let nr = min(tileR, rows - r0), nc = min(cols, c0 + tileC) - c0
                let s = src + (odo.offsetA + r0 + c0 * srcColStride) * es
                let d = dst + (odo.offsetB + r0 * dstRowStride + c0) * es
                switch es {
                case 1: TransposeLayout.tile(s, d, UInt8.self, nr, nc, srcColStride, dstRowStride)
                case 2: TransposeLayout.tile(s, d, UInt16.self, nr, nc, srcColStride, dstRowStride)
                case 4: TransposeLayout.tile4(s, d, nr, nc, srcColStride, dstRowStride)
                default: TransposeLayout.tile(s, d, UInt64.self, nr, nc, srcColStride, dstRowStride)
                }
            }
        }
    }

    /// dst[i * dstRowStride + j] = src[i + j * srcColStride] for i < rows, j < cols.
    /// Column by column: reads run contiguously down a source column. Wrapping arithmetic: indices are in range.
    @inline(__always)
    static func tile<T>(_ src: UnsafeRawPointer, _ dst: UnsafeMutableRawPointer, _: T.Type,
                        _ rows: Int, _ cols: Int, _ srcColStride: Int, _ dstRowStride: Int) {
        let s = src.assumingMemoryBound(to: T.self), d = dst.assumingMemoryBound(to: T.self)
        for j in 0..<cols {
            let scol = s + j &* srcColStride, dcol = d + j
            var i = 0
            while i < rows { dcol[i &* dstRowStride] = scol[i]; i &+= 1 }
        }
    }

    /// The 4-byte case (float32, the hot one): 4x4 blocks transposed in SIMD registers, walking down
    /// four source columns at a time; scalar edges.
    static func tile4(_ src: UnsafeRawPointer, _ dst: UnsafeMutableRawPointer,
                      _ rows: Int, _ cols: Int, _ srcColStride: Int, _ dstRowStride: Int) {
        let s = src.assumingMemoryBound(to: UInt32.self), d = dst.assumingMemoryBound(to: UInt32.self)
        let sc = srcColStride, dr = dstRowStride
        let rows4 = rows & ~3, cols4 = cols & ~3
        var j = 0
        while j < cols4 {
            var i = 0
            while i < rows4 {
                let c0 = UnsafeRawPointer(s + (i &+ j &* sc)).loadUnaligned(as: SIMD4<UInt32>.self)
                let c1 = UnsafeRawPointer(s + (i &+ (j &+ 1) &* sc)).loadUnaligned(as: SIMD4<UInt32>.self)
                let c2 = UnsafeRawPointer(s + (i &+ (j &+ 2) &* sc)).loadUnaligned(as: SIMD4<UInt32>.self)
                let c3 = UnsafeRawPointer(s + (i &+ (j &+ 3) &* sc)).loadUnaligned(as: SIMD4<UInt32>.self)
                UnsafeMutableRawPointer(d + (i &* dr &+ j)).storeBytes(of: SIMD4(c0[0], c1[0], c2[0], c3[0]), as: SIMD4<UInt32>.self)
                UnsafeMutableRawPointer(d + ((i &+ 1) &* dr &+ j)).storeBytes(of: SIMD4(c0[1], c1[1], c2[1], c3[1]), as: SIMD4<UInt32>.self)
                UnsafeMutableRawPointer(d + ((i &+ 2) &* dr &+ j)).storeBytes(of: SIMD4(c0[2], c1[2], c2[2], c3[2]), as: SIMD4<UInt32>.self)
                UnsafeMutableRawPointer(d + ((i &+ 3) &* dr &+ j)).storeBytes(of: SIMD4(c0[3], c1[3], c2[3], c3[3]), as: SIMD4<UInt32>.self)
                i &+= 4
            }
            while i < rows {
                for k in 0..<4 { d[i &* dr &+ j &+ k] = s[i &+ (j &+ k) &* sc] }
                i &+= 1
            }
            j &+= 4
        }
        if j < cols { tile(s + j &* sc, d + j, UInt32.self, rows, cols - j, sc, dr) }
    }
}
