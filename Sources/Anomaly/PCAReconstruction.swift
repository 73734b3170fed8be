import Engine
import Foundation

/// The PCA reconstruction baseline: principal components of the anchor images (pixels / 255, centred on
/// their mean), and an image's score is the Euclidean norm of what they cannot reconstruct of it,
/// ‖(x − μ) − Vᵀ V (x − μ)‖ for the components V. Images like the anchors lie near their principal subspace.
///
/// Everything is float64: the components come from the eigendecomposition of the covariance matrix
/// (LAPACK dsyevd), which squares the data's condition number, and the residual is formed explicitly
/// rather than as ‖x − μ‖² − ‖V (x − μ)‖², which cancels for the images that reconstruct well.
public struct PCAReconstruction {
    /// Pixels per image (784 for 28x28).
    public let dim: Int
    /// The components asked for.
    public let requestedComponents: Int
    /// The components used: `requestedComponents`, or N − 1 when there are only N ≤ that many anchors,
    /// since N centred images span at most N − 1 dimensions (the rest would be arbitrary directions of
    /// eigenvalue zero, whatever the eigensolver's rounding made of them).
    public let componentCount: Int
    /// Variances along the components (the covariance's eigenvalues), largest first.
    public let explainedVariance: [Double]
    /// The anchors' mean image.
    let mean: [Double]
    /// componentCount x dim, row-major: orthonormal rows, largest variance first.
    let components: [Double]
    let height: Int, width: Int
    let threads: Int

    public var isReduced: Bool { componentCount < requestedComponents }

    public init(anchors: ImageSet, components requested: Int, threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws {
        let n = anchors.count, d = anchors.imageSize
        guard n > 0 else { throw DataError(file: "", "the PCA baseline needs at least one anchor image") }
        guard requested >= 1, requested <= d else {
            throw DataError(file: "", "the PCA baseline takes 1 to \(d) components (the pixels of a \(anchors.height)x\(anchors.width) image), got \(requested)")
        }
        dim = d
        requestedComponents = requested
        componentCount = min(requested, n - 1)
        height = anchors.height
        width = anchors.width
        self.threads = max(1, threads)
        mean = NearestNeighbors.columnMeans(anchors.pixels, dim: d)
        let centred = Self.centred(anchors.pixels, mean: mean)
        guard componentCount > 0 else {
            // One anchor: no direction of variation, so the score is the distance to that image.
            explainedVariance = []
            components = []
            return
        }
        // Covariance Xcᵀ Xc / (N − 1), d x d; the scale only makes the eigenvalues variances.
        var covariance = [Double](repeating: 0, count: d * d)
        try BLAS.dgemm(threads: self.threads, transA: true, m: d, n: d, k: n, a: centred, lda: d, b: centred, ldb: d,
                       c: &covariance, ldc: d)
        let scale = 1 / Double(n - 1)
        for i in covariance.indices { covariance[i] *= scale }
        // dgemm rounds the two triangles alike but not necessarily identically; dsyevd reads one of them.
        let eigen = try LAPACK.symmetricEigen(covariance, n: d)
        // Eigenvalues ascend: the components are the last rows, taken largest first.
        let top = (d - componentCount..<d).reversed()
        explainedVariance = top.map { eigen.values[$0] }
        components = top.flatMap { eigen.vectors[$0 * d..<($0 + 1) * d] }
    }

    /// Rows of `pixels` (row-major, as wide as `mean`) minus `mean`, in float64.
    static func centred(_ pixels: [Float], mean: [Double]) -> [Double] {
        let d = mean.count
        var out = [Double](repeating: 0, count: pixels.count)
        for r in 0..<pixels.count / d { for j in 0..<d { out[r * d + j] = Double(pixels[r * d + j]) - mean[j] } }
        return out
    }

    /// The reconstruction error of each image: the norm of its centred pixels minus their projection.
    public func scores(_ images: ImageSet) throws -> [Double] {
        try Baselines.checkSize(images, height: height, width: width)
        let m = images.count, d = dim, c = componentCount
        var residual = Self.centred(images.pixels, mean: mean)
        if c > 0 {
            // Coordinates P = Xc Vᵀ (m x c), then the reconstruction P V (m x d), subtracted.
            var coordinates = [Double](repeating: 0, count: m * c)
            try BLAS.dgemm(threads: threads, transB: true, m: m, n: c, k: d, a: residual, lda: d, b: components, ldb: d,
                           c: &coordinates, ldc: c)
            var reconstruction = [Double](repeating: 0, count: m * d)
            try BLAS.dgemm(threads: threads, m: m, n: d, k: c, a: coordinates, lda: c, b: components, ldb: d,
                           c: &reconstruction, ldc: d)
            for i in residual.indices { residual[i] -= reconstruction[i] }
        }
        return (0..<m).map { r in
            var s = 0.0
            for j in 0..<d { s += residual[r * d + j] * residual[r * d + j] }
            return s.squareRoot()
        }
    }
}
