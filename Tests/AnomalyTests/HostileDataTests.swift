import CZlib
import Foundation
import XCTest
@testable import Anomaly
import OnnxIO

/// Hostile dataset, image and index files: sizes are checked before anything is inflated, decoded or
/// allocated, and every refusal names the file.
final class HostileDataTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("kizuki-hostile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    func assertRefused(_ body: @autoclosure () throws -> Any, file path: URL, mentions words: [String],
                       file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            for w in [path.path] + words { XCTAssertTrue("\(error)".contains(w), "'\(w)' not in: \(error)", file: file, line: line) }
        }
    }

    /// An IDX header: unsigned bytes, big-endian dims.
    func idxHeader(_ dims: [UInt32]) -> Data {
        Data([0, 0, 8, UInt8(dims.count)] + dims.flatMap { d in (0..<4).map { UInt8(truncatingIfNeeded: d >> (24 - 8 * $0)) } })
    }

    /// Appends `data` to `url` as one more gzip member (zlib reads concatenated members as one stream).
    func appendGzipMember(_ data: Data, to url: URL) throws {
        let gz = try XCTUnwrap(gzopen(url.path, "ab9"))
        data.withUnsafeBytes { XCTAssertEqual(gzwrite(gz, $0.baseAddress, UInt32($0.count)), Int32($0.count)) }
        XCTAssertEqual(gzclose(gz), Z_OK)
    }

    // MARK: IDX

    func testIDXDimsWhoseProductOverflowsAreRefused() throws {
        let url = tmp.appendingPathComponent("huge-idx3-ubyte")
        try (idxHeader([0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF]) + Data([1, 2, 3])).write(to: url)
        assertRefused(try IDXFile(contentsOf: url), file: url, mentions: ["IDX dims"])
        XCTAssertThrowsError(try IDXFile(data: idxHeader([0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF]), file: "mem")) {
            XCTAssertTrue("\($0)".contains("more than"), "\($0)")
        }
    }

    func testGzipBombBehindAHeaderIsNotInflated() throws {
        // 2 images of 28x28, then 1.6 GB of zeros in 160 gzip members of 10 MB (a ~1.6 MB file).
        let url = tmp.appendingPathComponent("bomb-idx3-ubyte.gz")
        try appendGzipMember(idxHeader([2, 28, 28]) + Data(repeating: 7, count: 2 * 28 * 28), to: url)
        let zeros = tmp.appendingPathComponent("zeros.gz")
        try appendGzipMember(Data(count: 10 << 20), to: zeros)
        let member = try Data(contentsOf: zeros)
        let handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
        for _ in 0..<160 { try handle.write(contentsOf: member) }
        try handle.close()
        XCTAssertLessThan(try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int ?? 0, 4 << 20)

        let start = Date()
        assertRefused(try IDXFile(contentsOf: url, rank: 3), file: url, mentions: ["goes on after the 1568 bytes"])
        XCTAssertLessThan(Date().timeIntervalSince(start), 1.0, "the data after the promised size must not be inflated")
        // Without the bomb the same file reads.
        let ok = tmp.appendingPathComponent("ok-idx3-ubyte.gz")
        try appendGzipMember(idxHeader([2, 28, 28]) + Data(repeating: 7, count: 2 * 28 * 28), to: ok)
        let idx = try IDXFile(contentsOf: ok, rank: 3)
        XCTAssertEqual(idx.dims, [2, 28, 28])
        XCTAssertEqual(idx.bytes, Data(repeating: 7, count: 2 * 28 * 28))
    }

    func testIDXRankSizeAndShortDataAreCheckedBeforeReading() throws {
        // Labels given where images are expected: refused from the header.
        let labels = tmp.appendingPathComponent("labels-idx1-ubyte.gz")
        try appendGzipMember(idxHeader([3]) + Data([1, 2, 3]), to: labels)
        assertRefused(try ImageSource.idx(labels.path).load(), file: labels, mentions: ["rank 1", "expected rank 3"])
        // A header promising more than an image source may hold.
        let big = tmp.appendingPathComponent("big-idx3-ubyte")
        try (idxHeader([1 << 20, 1 << 10, 1 << 10]) + Data(count: 16)).write(to: big)
        assertRefused(try ImageSource.idx(big.path).load(), file: big, mentions: ["more than \(ImageSource.maxTotalPixels) bytes"])
        // A gzip stream shorter than its header promises; a plain file longer than it.
        let short = tmp.appendingPathComponent("short-idx3-ubyte.gz")
        try appendGzipMember(idxHeader([100_000, 28, 28]) + Data(count: 784), to: short)
        assertRefused(try IDXFile(contentsOf: short), file: short, mentions: ["need 78400000 bytes", "has 784"])
        let long = tmp.appendingPathComponent("long-idx1-ubyte")
        try (idxHeader([3]) + Data([1, 2, 3, 4])).write(to: long)
        assertRefused(try IDXFile(contentsOf: long), file: long, mentions: ["need 3 bytes", "has 4"])
    }

    func testIDXThatIsAFifoIsRefusedPromptly() throws {
        let fifo = tmp.appendingPathComponent("fifo-idx3-ubyte")
        XCTAssertEqual(mkfifo(fifo.path, 0o600), 0)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var outcome: Error?
        DispatchQueue.global().async {
            do { _ = try IDXFile(contentsOf: fifo) } catch { outcome = error }
            done.signal()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 5), .success, "reading a FIFO hangs")
        XCTAssertTrue("\(String(describing: outcome))".contains("FIFO"), "\(String(describing: outcome))")
    }

    // MARK: PNG

    func testPNGSizesAreCheckedFromHeadersBeforeDecoding() throws {
        // Valid headers of 64x64 but broken pixel data: the size is refused, never reaching the decoder.
        var png = try PNG.encodeGray(height: 64, width: 64, pixels: [UInt8](repeating: 9, count: 64 * 64))
        let idat = try XCTUnwrap(png.range(of: Data("IDAT".utf8)))
        for i in idat.upperBound..<min(idat.upperBound + 12, png.count) { png[i] ^= 0x5a }
        for name in ["a.png", "b.png"] { try png.write(to: tmp.appendingPathComponent(name)) }
        XCTAssertEqual(try PNG.size(tmp.appendingPathComponent("a.png")).width, 64)
        assertRefused(try ImageSource.pngFolder(tmp.path).load(), file: tmp.appendingPathComponent("a.png"),
                      mentions: ["64x64", "expects 28x28", "--resize"])
        // With resizing the decoder is reached, and reports the corruption.
        assertRefused(try ImageSource.pngFolder(tmp.path).load(resize: .nearest), file: tmp.appendingPathComponent("a.png"), mentions: ["corrupt PNG"])
    }

    /// Decoded pixels count against the engine's memory limit (`--memory-limit`): a folder of large PNGs
    /// under `maxTotalPixels` but over the limit is refused from the headers (the fuzzer's 2 x 8192² case).
    func testPNGFolderIsCheckedAgainstTheMemoryLimit() throws {
        let png = try PNG.encodeGray(height: 64, width: 64, pixels: [UInt8](repeating: 9, count: 64 * 64))
        for name in ["a.png", "b.png"] { try png.write(to: tmp.appendingPathComponent(name)) }
        let needed = 2 * 64 * 64 * MemoryLayout<Float>.size
        XCTAssertEqual(try ImageSource.pngFolder(tmp.path).load(resize: .nearest, memoryLimit: needed).count, 2)
        assertRefused(try ImageSource.pngFolder(tmp.path).load(resize: .nearest, memoryLimit: needed - 1), file: tmp,
                      mentions: ["2 images of 64x64", "memory limit"])
    }

    func testAbsurdPNGHeaderIsRefusedBeforeDecoding() throws {
        var png = try PNG.encodeGray(height: 28, width: 28, pixels: [UInt8](repeating: 9, count: 28 * 28))
        // IHDR data follows the 8-byte signature and the chunk's length and type: width, height (big-endian).
        let ihdr = try XCTUnwrap(png.range(of: Data("IHDR".utf8)))
        png.replaceSubrange(ihdr.upperBound..<ihdr.upperBound + 8, with: [0, 0, 0x75, 0x30, 0, 0, 0x75, 0x30])  // 30000 x 30000
        // Fix the chunk's CRC (over type and data) so libpng accepts the header itself.
        let crc = png[ihdr.lowerBound..<ihdr.upperBound + 13].withUnsafeBytes { UInt32(crc32(0, $0.baseAddress, UInt32($0.count))) }
        png.replaceSubrange(ihdr.upperBound + 13..<ihdr.upperBound + 17, with: (0..<4).map { UInt8(truncatingIfNeeded: crc >> (24 - 8 * $0)) })
        let url = tmp.appendingPathComponent("huge.png")
        try png.write(to: url)
        assertRefused(try PNG.readGray(url), file: url, mentions: ["30000x30000", "not supported"])
    }

    // MARK: .kzi

    func sampleIndex(count: Int = 2, dim: Int = 3, sha: String = "abc") -> AnchorIndex {
        AnchorIndex(header: .init(modelSHA256: sha, modelFile: "m.onnx", count: count, dim: dim, preprocessing: AnchorIndex.preprocessing,
                                  source: "test", selection: "first \(count)", threshold: nil),
                    embeddings: (0..<(count * dim)).map { Float($0) })
    }

    func testIndexSizeProductOverflowIsRefused() throws {
        let url = tmp.appendingPathComponent("overflow.kzi")
        var index = sampleIndex()
        index.header.count = Int.max / 2
        try index.write(to: url)
        assertRefused(try AnchorIndex(contentsOf: url), file: url, mentions: ["\(Int.max / 2) x 3"])
    }

    func testBitFlippedIndexIsRefusedByItsChecksum() throws {
        let url = tmp.appendingPathComponent("a.kzi")
        try sampleIndex().write(to: url)
        XCTAssertEqual(try AnchorIndex(contentsOf: url), sampleIndex())
        let good = try Data(contentsOf: url)
        // One bit of an embedding, then one bit of the header's model hash: both still parse, both refused.
        for offset in [good.count - 40, try XCTUnwrap(good.range(of: Data("\"abc\"".utf8))).lowerBound + 1] {
            var bad = good
            bad[offset] ^= 0x01
            try bad.write(to: url)
            assertRefused(try AnchorIndex(contentsOf: url), file: url, mentions: ["checksum"])
        }
    }

    func testOtherFormatVersionsAreRefusedClearly() throws {
        let url = tmp.appendingPathComponent("v.kzi")
        try sampleIndex().write(to: url)
        let current = try Data(contentsOf: url)
        for (version, words) in [(1, ["format 1", "older"]), (9, ["format 9", "newer"])] {
            try (Data("KZI\(version)".utf8) + current.dropFirst(4)).write(to: url)
            assertRefused(try AnchorIndex(contentsOf: url), file: url, mentions: words + ["format \(AnchorIndex.formatVersion)"])
        }
    }

    // MARK: index and threshold against the model

    static let seedModel = AgreementTests.root.appendingPathComponent("models/keras-seed/model.onnx")

    func testIndexIsCheckedAgainstTheModel() throws {
        let embedder = try Embedder(modelFile: Self.seedModel)
        let url = tmp.appendingPathComponent("m.kzi")
        try sampleIndex(count: 2, dim: 128, sha: embedder.modelSHA256).write(to: url)
        XCTAssertEqual(try AnchorIndex.load(from: url, for: embedder).header.dim, 128)
        // Same model, same number of values, another dimension.
        try sampleIndex(count: 4, dim: 64, sha: embedder.modelSHA256).write(to: url)
        assertRefused(try AnchorIndex.load(from: url, for: embedder), file: url, mentions: ["64-d", "128-d"])
        try sampleIndex(count: 2, dim: 128, sha: "0123").write(to: url)
        assertRefused(try AnchorIndex.load(from: url, for: embedder), file: url, mentions: ["another model"])
    }

    func testBadThresholdFilesAreNamedAndExplained() throws {
        let index = sampleIndex()
        let url = tmp.appendingPathComponent("t.json")
        let valid = #"{"value": 1.5, "targetFPR": 0.01, "rule": "r", "calibratedOn": "c", "normalCount": 3, "indexID": "\#(index.id)"}"#
        try Data(valid.utf8).write(to: url)
        XCTAssertEqual(try Threshold.load(from: url, for: index).value, 1.5)
        let cases: [(String, [String])] = [
            ("not json", ["not valid JSON"]),
            (valid.replacingOccurrences(of: #""value": 1.5, "#, with: ""), ["'value' is missing"]),
            (valid.replacingOccurrences(of: "1.5", with: #""high""#), ["'value'", "Double"]),
            (valid.replacingOccurrences(of: index.id, with: "feed"), ["another index"]),
        ]
        for (text, words) in cases {
            try Data(text.utf8).write(to: url)
            assertRefused(try Threshold.load(from: url, for: index), file: url, mentions: words)
        }
    }
}
