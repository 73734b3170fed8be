import Foundation

/// A decision threshold chosen by `calibrate`: score > value ⇒ anomaly.
public struct Threshold: Codable, Equatable {
    public var value: Double
    public var targetFPR: Double
    /// The rule in words, printed with every verdict.
    public var rule: String
    /// What the normal scores came from, and how many.
    public var calibratedOn: String
    public var normalCount: Int
    /// The index this threshold belongs to (its `id`); refused with any other index.
    public var indexID: String

    public init(value: Double, targetFPR: Double, rule: String, calibratedOn: String, normalCount: Int, indexID: String) {
        self.value = value
        self.targetFPR = targetFPR
        self.rule = rule
        self.calibratedOn = calibratedOn
        self.normalCount = normalCount
        self.indexID = indexID
    }
}

/// Anchor embeddings of normal images, with what is needed to use them safely: the sha256 of the
/// model that made them, the preprocessing, and a calibrated threshold when there is one.
///
/// File layout (`.kzi`): the line "KZI1", one line of JSON (the header), then count·dim float32 (little endian).
public struct AnchorIndex: Equatable {
    public struct Header: Codable, Equatable {
        public var modelSHA256: String
        public var modelFile: String
        public var count: Int
        public var dim: Int
        public var preprocessing: String
        public var source: String
        public var selection: String
        public var threshold: Threshold?

        public init(modelSHA256: String, modelFile: String, count: Int, dim: Int, preprocessing: String, source: String,
                    selection: String, threshold: Threshold?) {
            self.modelSHA256 = modelSHA256
            self.modelFile = modelFile
            self.count = count
            self.dim = dim
            self.preprocessing = preprocessing
            self.source = source
            self.selection = selection
            self.threshold = threshold
        }
    }

    public var header: Header
    public var embeddings: [Float]

    public static let preprocessing = "grey 28x28, float32 = pixel/255, NHWC (N,28,28,1)"

    public init(header: Header, embeddings: [Float]) {
        self.header = header
        self.embeddings = embeddings
    }

    /// Identifies the index contents: sha256 of the model hash and the embeddings' bytes.
    public var id: String {
        var h = SHA256()
        h.update(Data(header.modelSHA256.utf8))
        embeddings.withUnsafeBytes { h.update(Data($0)) }
        return h.finalize().prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var data = Data("KZI1\n".utf8)
        data.append(try encoder.encode(header))
        data.append(Data("\n".utf8))
        embeddings.withUnsafeBytes { data.append(contentsOf: $0) }
        do { try data.write(to: url, options: .atomic) } catch {
            throw DataError(file: url.path, "cannot write the index: \(error.localizedDescription)")
        }
    }

    public init(contentsOf url: URL) throws {
        guard let data = try? Data(contentsOf: url) else { throw DataError(file: url.path, "cannot read the index (missing?)") }
        guard data.starts(with: Data("KZI1\n".utf8)) else { throw DataError(file: url.path, "not a Kizuki anchor index (no KZI1 header)") }
        let rest = data.dropFirst(5)
        guard let newline = rest.firstIndex(of: UInt8(ascii: "\n")) else { throw DataError(file: url.path, "truncated index header") }
        do { header = try JSONDecoder().decode(Header.self, from: rest[rest.startIndex..<newline]) } catch {
            throw DataError(file: url.path, "corrupt index header: \(error)")
        }
        let payload = data[(newline + 1)...]
        guard header.count > 0, header.dim > 0, payload.count == header.count * header.dim * 4 else {
            throw DataError(file: url.path, "the index holds \(payload.count) bytes of embeddings; its header says \(header.count) x \(header.dim) float32")
        }
        embeddings = payload.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        if let bad = embeddings.firstIndex(where: { !$0.isFinite }) {
            throw DataError(file: url.path, "anchor \(bad / header.dim) has a non-finite value \(embeddings[bad])")
        }
    }

    /// Refuses to score with a model other than the one that made the anchors.
    public func check(modelSHA256: String, file: String) throws {
        guard modelSHA256 == header.modelSHA256 else {
            throw DataError(file: file, "this index was made with another model (sha256 \(header.modelSHA256.prefix(12))…, from \(header.modelFile)); this model's sha256 is \(modelSHA256.prefix(12))…: rebuild the index with `kizuki index`")
        }
    }

    /// Selects anchors: the first `n` (the reference) or, with a seed, a seeded random subset.
    public static func select(count available: Int, n: Int?, seed: UInt64?) throws -> [Int] {
        let n = n ?? available
        guard n >= 1 else { throw DataError(file: "", "--anchors must be at least 1") }
        guard n <= available else { throw DataError(file: "", "--anchors \(n) is more than the \(available) images given") }
        guard let seed else { return Array(0..<n) }
        var rng = SeededGenerator(seed: seed)
        var all = Array(0..<available)
        all.shuffle(using: &rng)
        return Array(all.prefix(n)).sorted()
    }
}

/// SplitMix64: a small, fixed generator so a seed means the same subset everywhere.
public struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
