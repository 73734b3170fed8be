import Foundation
import OnnxIO

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

    /// Reads a threshold file written by `kizuki calibrate --out` and checks it belongs to `index`.
    /// Every failure names the file and what is wrong with it (not a raw DecodingError).
    public static func load(from url: URL, for index: AnchorIndex) throws -> Threshold {
        let file = try RegularFile(path: url.path, what: "threshold")
        // calibrate writes a few hundred bytes; anything far larger is not one of its files.
        guard file.size <= 1 << 20 else { throw DataError(file: url.path, "is \(file.size) bytes, not a threshold file from `kizuki calibrate --out`") }
        let data = try file.readAll()
        let threshold: Threshold
        do { threshold = try JSONDecoder().decode(Threshold.self, from: data) } catch let error as DecodingError {
            throw DataError(file: url.path, "not a threshold file from `kizuki calibrate --out`: \(describe(error))")
        }
        guard threshold.value.isFinite else {
            throw DataError(file: url.path, "the threshold value is \(threshold.value); it must be a finite number")
        }
        guard threshold.indexID == index.id else {
            throw DataError(file: url.path, "this threshold was calibrated for another index (id \(threshold.indexID)); the index has id \(index.id)")
        }
        return threshold
    }
}

/// A DecodingError in words: which field, and what was wrong with it.
func describe(_ error: DecodingError) -> String {
    func field(_ path: [CodingKey]) -> String { path.isEmpty ? "the top level" : "'" + path.map(\.stringValue).joined(separator: ".") + "'" }
    switch error {
    case .keyNotFound(let key, let context): return "field '\((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))' is missing"
    case .typeMismatch(let type, let context): return "\(field(context.codingPath)) is not of type \(type)"
    case .valueNotFound(let type, let context): return "\(field(context.codingPath)) is null, expected \(type)"
    case .dataCorrupted(let context):
        return context.codingPath.isEmpty ? "not valid JSON" : "\(field(context.codingPath)) is invalid: \(context.debugDescription)"
    @unknown default: return "\(error)"
    }
}

/// Anchor embeddings of normal images, with what is needed to use them safely: the sha256 of the
/// model that made them, the preprocessing, and a calibrated threshold when there is one.
///
/// File layout (`.kzi`, format 2): the line "KZI2", one line of JSON (the header), count·dim float32
/// (little endian), then the SHA-256 of everything before it (32 bytes), verified on load.
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

    /// The format this Kizuki writes and reads; format 1 had no checksum.
    public static let formatVersion = 2
    static let magic = Data("KZI\(formatVersion)\n".utf8)
    static let checksumSize = 32

    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var data = Self.magic
        data.append(try encoder.encode(header))
        data.append(Data("\n".utf8))
        embeddings.withUnsafeBytes { data.append(contentsOf: $0) }
        data.append(Data(Self.checksum(data)))
        do { try data.write(to: url, options: .atomic) } catch {
            throw DataError(file: url.path, "cannot write the index: \(error.localizedDescription)")
        }
    }

    static func checksum(_ data: Data) -> [UInt8] {
        var hash = SHA256()
        hash.update(data)
        return hash.finalize()
    }

    /// Reads an index, checking its format version, sizes and checksum. Use `load(from:for:)` to also
    /// check it against the model that will use it.
    public init(contentsOf url: URL) throws {
        let path = url.path
        let data = try RegularFile(path: path, what: "anchor index").readAll()
        guard data.starts(with: Data("KZI".utf8)), let newline = data.firstIndex(of: UInt8(ascii: "\n")),
              let version = Int(String(decoding: data[data.startIndex + 3..<newline], as: UTF8.self)) else {
            throw DataError(file: path, "not a Kizuki anchor index (no KZI\(Self.formatVersion) header line)")
        }
        guard version == Self.formatVersion else {
            let why = version < Self.formatVersion ? "an older format (without a checksum)" : "a newer format than this Kizuki knows"
            throw DataError(file: path, "index format \(version) is \(why); this Kizuki reads format \(Self.formatVersion): rebuild the index with `kizuki index`")
        }
        let rest = data[(newline + 1)...]
        guard let headerEnd = rest.firstIndex(of: UInt8(ascii: "\n")) else { throw DataError(file: path, "truncated index header") }
        do { header = try JSONDecoder().decode(Header.self, from: rest[rest.startIndex..<headerEnd]) } catch let error as DecodingError {
            throw DataError(file: path, "corrupt index header: \(describe(error))")
        }
        // The payload is what lies between the header line and the checksum; its size must be count x dim
        // float32, computed without overflow.
        let payloadBytes = data.endIndex - (headerEnd + 1) - Self.checksumSize
        let (values, overflow) = header.count.multipliedReportingOverflow(by: header.dim)
        guard header.count > 0, header.dim > 0, !overflow, values <= Int.max / 4, payloadBytes == values * 4 else {
            throw DataError(file: path, "the index holds \(max(payloadBytes, 0)) bytes of embeddings; its header says \(header.count) x \(header.dim) float32")
        }
        let stored = [UInt8](data.suffix(Self.checksumSize))
        guard Self.checksum(data.dropLast(Self.checksumSize)) == stored else {
            throw DataError(file: path, "checksum mismatch: the index is corrupt or was edited; rebuild it with `kizuki index`")
        }
        // Copied bytewise: the payload starts after a header of any length, so it need not be aligned for Float.
        embeddings = [Float](unsafeUninitializedCapacity: values) { buffer, initialized in
            data[(headerEnd + 1)..<(data.endIndex - Self.checksumSize)].withUnsafeBytes {
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: $0)
            }
            initialized = values
        }
        if let bad = embeddings.firstIndex(where: { !$0.isFinite }) {
            throw DataError(file: path, "anchor \(bad / header.dim) has a non-finite value \(embeddings[bad])")
        }
    }

    /// Reads an index and checks that it belongs to `embedder`: made by the same model file (sha256),
    /// holding embeddings of the dimension that model produces. Scoring and calibrating load through this.
    public static func load(from url: URL, for embedder: Embedder) throws -> AnchorIndex {
        let index = try AnchorIndex(contentsOf: url)
        try index.check(modelSHA256: embedder.modelSHA256, file: url.path)
        let dim = try embeddingDimension(of: embedder)
        guard dim == index.header.dim else {
            throw DataError(file: url.path, "the index holds \(index.header.dim)-d embeddings but the model produces \(dim)-d ones: rebuild the index with `kizuki index`")
        }
        return index
    }

    /// The model's embedding size: its declared output shape [N, D] when D is fixed, else measured on one blank image.
    static func embeddingDimension(of embedder: Embedder) throws -> Int {
        let declared = embedder.session.outputs.first { $0.name == embedder.outputName }?.type?.shape
        if let declared, declared.count == 2, let dim = declared[1].fixedSize { return dim }
        let blank = ImageSet(height: embedder.height, width: embedder.width, pixels: [Float](repeating: 0, count: embedder.height * embedder.width))
        return try embedder.embedBatch(blank, range: 0..<1).count
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
