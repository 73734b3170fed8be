import Foundation

/// Fashion-MNIST from IDX files, checked against the official sha256 of each decompressed file.
public enum FashionMNIST {
    public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"
    public static let classNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

    static let checksums: [String: String] = [
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ]

    /// `--data DIR`, else `$KIZUKI_DATA`, else the Debian package's folder.
    public static func directory(_ explicit: String?) -> URL {
        URL(fileURLWithPath: explicit ?? ProcessInfo.processInfo.environment["KIZUKI_DATA"] ?? defaultDirectory)
    }

    public enum Split: String, Sendable { case train, test }

    /// Loads one split, verifying both files' checksums.
    public static func load(_ split: Split, from dir: URL, verify: Bool = true) throws -> ImageSet {
        let prefix = split == .train ? "train" : "t10k"
        let images = try read("\(prefix)-images-idx3-ubyte", in: dir, verify: verify)
        let labels = try read("\(prefix)-labels-idx1-ubyte", in: dir, verify: verify)
        guard images.dims.count == 3, labels.dims.count == 1, images.dims[0] == labels.dims[0] else {
            throw DataError(file: dir.path, "\(prefix) images \(images.dims) and labels \(labels.dims) do not match")
        }
        return ImageSet(height: images.dims[1], width: images.dims[2], bytes: [UInt8](images.bytes), labels: labels.bytes.map { Int($0) })
    }

    static func read(_ name: String, in dir: URL, verify: Bool) throws -> IDXFile {
        let plain = dir.appendingPathComponent(name), gz = dir.appendingPathComponent(name + ".gz")
        let url = FileManager.default.fileExists(atPath: plain.path) ? plain : gz
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw DataError(file: dir.path, "Fashion-MNIST file \(name)[.gz] not found (install the Debian package dataset-fashion-mnist, or pass --data DIR / set KIZUKI_DATA)")
        }
        // Images are (N, 28, 28), labels (N): the rank is checked before any data is inflated.
        let idx = try IDXFile(contentsOf: url, rank: name.contains("images") ? 3 : 1)
        if verify, let expected = checksums[name] {
            var hash = SHA256()
            hash.update(idx.headerBytes)
            hash.update(idx.bytes)
            let actual = hash.finalizeHex()
            guard actual == expected else {
                throw DataError(file: url.path, "sha256 of the decompressed content is \(actual), expected \(expected): the file is not the official \(name)")
            }
        }
        return idx
    }

    /// The reference experiment's split.
    public struct Experiment {
        /// Every train image except the anomaly class; label 1 for the normal class, 0 for the rest.
        public var training: ImageSet
        /// Train images of the normal class (in file order).
        public var anchors: ImageSet
        /// Test images of the normal and anomaly classes (in file order); label 1 = anomaly.
        public var test: ImageSet
    }

    public static func experiment(normal: Int, anomaly: Int, from dir: URL) throws -> Experiment {
        guard normal != anomaly, (0..<10).contains(normal), (0..<10).contains(anomaly) else {
            throw DataError(file: "", "normal and anomaly classes must be different classes in 0...9 (got \(normal), \(anomaly))")
        }
        let train = try load(.train, from: dir)
        let test = try load(.test, from: dir)
        var training = train.subset(train.labels.indices.filter { train.labels[$0] != anomaly })
        training.labels = training.labels.map { $0 == normal ? 1 : 0 }
        let anchors = train.subset(train.labels.indices.filter { train.labels[$0] == normal })
        var testSet = test.subset(test.labels.indices.filter { test.labels[$0] == normal || test.labels[$0] == anomaly })
        testSet.labels = testSet.labels.map { $0 == anomaly ? 1 : 0 }
        return Experiment(training: training, anchors: anchors, test: testSet)
    }
}
