import Foundation
import XCTest
@testable import Anomaly

final class SHA256Tests: XCTestCase {
    /// FIPS 180-4 example vectors.
    func testKnownVectors() {
        XCTAssertEqual(SHA256.hex(Data()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Data("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hex(Data(repeating: UInt8(ascii: "a"), count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testIncrementalEqualsOneShot() {
        let data = Data((0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) })
        var s = SHA256()
        for chunk in stride(from: 0, to: data.count, by: 37) { s.update(data[chunk..<min(chunk + 37, data.count)]) }
        XCTAssertEqual(s.finalize().map { String(format: "%02x", $0) }.joined(), SHA256.hex(data))
    }
}

final class DatasetTests: XCTestCase {
    var dataDir: URL { FashionMNIST.directory(nil) }

    func requireData() throws {
        guard FileManager.default.fileExists(atPath: dataDir.appendingPathComponent("t10k-labels-idx1-ubyte.gz").path)
            || FileManager.default.fileExists(atPath: dataDir.appendingPathComponent("t10k-labels-idx1-ubyte").path) else {
            throw XCTSkip("Fashion-MNIST not installed (make deps installs dataset-fashion-mnist)")
        }
    }

    func testExperimentSplitSizes() throws {
        try requireData()
        let e = try FashionMNIST.experiment(normal: 7, anomaly: 9, from: dataDir)
        XCTAssertEqual(e.training.count, 54_000)
        XCTAssertEqual(e.training.labels.filter { $0 == 1 }.count, 6_000)
        XCTAssertEqual(e.anchors.count, 6_000)
        XCTAssertEqual(e.test.count, 2_000)
        XCTAssertEqual(e.test.labels.filter { $0 == 1 }.count, 1_000)
        XCTAssertEqual(e.anchors.height, 28)
        XCTAssertEqual(e.anchors.width, 28)
    }

    func testWrongChecksumNamesTheFile() throws {
        try requireData()
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("kizuki-fm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        for name in ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
            let idx = try IDXFile(contentsOf: dataDir.appendingPathComponent(name + ".gz"))
            var raw = idx.headerBytes + idx.bytes
            if name.contains("labels") { raw[raw.count - 1] ^= 1 }  // one label changed
            try raw.write(to: tmp.appendingPathComponent(name))
        }
        XCTAssertThrowsError(try FashionMNIST.load(.test, from: tmp)) { error in
            XCTAssertTrue("\(error)".contains("t10k-labels-idx1-ubyte"), "\(error)")
            XCTAssertTrue("\(error)".contains("sha256"), "\(error)")
        }
    }

    func testCorruptAndTruncatedIDX() throws {
        XCTAssertThrowsError(try IDXFile(data: Data([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3]), file: "x")) {
            XCTAssertTrue("\($0)".contains("need 8 bytes"), "\($0)")
        }
        XCTAssertThrowsError(try IDXFile(data: Data([1, 2, 3, 4, 5]), file: "x"))
        let ok = try IDXFile(data: Data([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]), file: "x")
        XCTAssertEqual(ok.dims, [3])
        XCTAssertEqual([UInt8](ok.bytes), [7, 8, 9])
        // A truncated gzip stream is an error, not a short read.
        let gz = dataDir.appendingPathComponent("t10k-labels-idx1-ubyte.gz")
        if FileManager.default.fileExists(atPath: gz.path) {
            let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("trunc-\(UUID().uuidString).gz")
            defer { try? FileManager.default.removeItem(at: tmp) }
            try Data(contentsOf: gz).prefix(2000).write(to: tmp)
            XCTAssertThrowsError(try IDXFile(contentsOf: tmp)) { XCTAssertTrue("\($0)".contains("gzip"), "\($0)") }
        }
    }
}
