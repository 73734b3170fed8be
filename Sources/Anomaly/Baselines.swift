import Foundation

/// What a learned embedding has to beat. `kizuki eval` scores the same split without any model, two ways,
/// beside the model's rows, so a user sees whether the embedding helps at all: on Fashion-MNIST sneakers
/// against ankle boots both baselines score an AUC near 0.94, well above the shipped Keras-trained model.
public enum Baselines {
    /// The AUCs of both baselines at one anchor count.
    public struct AUCs: Codable, Equatable {
        /// Raw-pixel nearest neighbour (`RawPixelNearestNeighbors`), with the model's k.
        public var rawPixels: Double
        /// PCA reconstruction error (`PCAReconstruction`).
        public var pca: Double
        /// Components the PCA used: the requested number, or N − 1 with only N ≤ that many anchors.
        public var pcaComponents: Int

        public init(rawPixels: Double, pca: Double, pcaComponents: Int) {
            self.rawPixels = rawPixels
            self.pca = pca
            self.pcaComponents = pcaComponents
        }
    }

    /// Why the baselines could not be computed (say, an OpenBLAS without LAPACK), so a caller can tell it
    /// from a failure of the model's own evaluation and offer to leave the baselines out.
    public struct Failure: Error, CustomStringConvertible {
        public var anchors: Int
        public var reason: String
        public var description: String { "the baselines at \(anchors) anchors failed: \(reason)" }
    }

    /// Both baselines fitted on `anchors` and scored on `test` (which must hold labels, 1 = anomaly).
    public static func evaluate(anchors: ImageSet, test: ImageSet, k: Int, pcaComponents: Int,
                                threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws -> AUCs {
        let pixels = try RawPixelNearestNeighbors(anchors: anchors, threads: threads)
        let pca = try PCAReconstruction(anchors: anchors, components: pcaComponents, threads: threads)
        return AUCs(rawPixels: try ROC.auc(scores: pixels.scores(test, k: k), labels: test.labels),
                    pca: try ROC.auc(scores: pca.scores(test), labels: test.labels), pcaComponents: pca.componentCount)
    }

    /// Checks that `images` have the anchors' size: both baselines compare images pixel by pixel.
    static func checkSize(_ images: ImageSet, height: Int, width: Int) throws {
        guard images.height == height, images.width == width else {
            throw DataError(file: "", "images of \(images.height)x\(images.width) pixels cannot be compared with anchors of \(height)x\(width)")
        }
    }
}

/// The raw-pixel nearest-neighbour baseline: an image's score is the mean plain Euclidean distance of its
/// pixels (as Kizuki preprocesses them: pixels / 255, 784 values for 28x28) to those of its k nearest
/// anchor images. The model's k-NN with the identity for an embedding, so it reuses `NearestNeighbors`,
/// whose scores are exact float64 distances whatever the rounding of its float32 candidate search.
public struct RawPixelNearestNeighbors {
    let index: NearestNeighbors
    let height: Int, width: Int

    public init(anchors: ImageSet, threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws {
        guard anchors.count > 0 else { throw DataError(file: "", "the raw-pixel baseline needs at least one anchor image") }
        index = try NearestNeighbors(anchors: anchors.pixels, dim: anchors.imageSize, threads: threads)
        height = anchors.height
        width = anchors.width
    }

    /// Mean distance of each image to its `k` nearest anchors (k = 1: the nearest).
    public func scores(_ images: ImageSet, k: Int = 1) throws -> [Double] {
        try Baselines.checkSize(images, height: height, width: width)
        return try index.scores(images.pixels, k: k)
    }
}
