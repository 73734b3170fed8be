import Anomaly
import Foundation

/// The recipe's training set: Fashion-MNIST training images without the excluded classes, label 1 for the
/// normal class and 0 for every other class kept; with `classLabels`, each image's own class (0...9) instead, so the
/// triplet loss also pulls the other classes apart from each other.
public enum TrainingData {
    public static func fashionMNIST(normal: Int, exclude: [Int], directory: URL, limit: Int? = nil,
                                    classLabels: Bool = false) throws -> (images: ImageSet, labels: [Int]) {
        guard (0..<10).contains(normal), exclude.allSatisfy({ (0..<10).contains($0) }), !exclude.contains(normal) else {
            throw TrainingError("--normal and --exclude must be classes in 0...9, the normal class not excluded (got \(normal), \(exclude))")
        }
        let train = try FashionMNIST.load(.train, from: directory)
        var kept = train.labels.indices.filter { !exclude.contains(train.labels[$0]) }
        if let limit { kept = Array(kept.prefix(limit)) }
        let images = train.subset(kept)
        return (images, classLabels ? images.labels : images.labels.map { $0 == normal ? 1 : 0 })
    }
}
