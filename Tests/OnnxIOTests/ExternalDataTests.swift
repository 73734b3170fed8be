import Foundation
import XCTest
@testable import OnnxIO

/// External data is read only from regular files whose resolved path stays inside the model's folder.
final class ExternalDataTests: XCTestCase {
    typealias F = ONNXField
    var tmp: URL!
    /// The model's folder, inside `tmp`; `tmp/secret.bin` lies outside it.
    var folder: URL!
    var secret: URL!
    let values: [Float] = [1, 2, 3, 4]

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("kizuki-ext-\(UUID().uuidString)")
        folder = tmp.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("sub"), withIntermediateDirectories: true)
        secret = tmp.appendingPathComponent("secret.bin")
        try values.withUnsafeBytes { Data($0) }.write(to: secret)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    /// A model whose output is its initializer 'w' (float32 [2,2]), stored externally with these entries.
    func modelBytes(location: String, offset: String? = nil, length: String? = nil) -> Data {
        var entries: [(String, String)] = [("location", location)]
        if let offset { entries.append(("offset", offset)) }
        if let length { entries.append(("length", length)) }
        var model = WireFormat()
        model.int(F.irVersion, 8)
        model.message(F.opsetImport) { $0.int(F.opsetVersion, 13) }
        model.message(F.graph) { graph in
            graph.message(F.initializer) { t in
                t.int(F.dims, 2)
                t.int(F.dims, 2)
                t.int(F.dataType, 1)
                t.string(F.tensorName, "w")
                for (k, v) in entries { t.message(F.externalData) { $0.string(F.key, k); $0.string(F.value, v) } }
                t.int(F.dataLocation, 1)
            }
            graph.message(F.output) { $0.string(F.valueName, "w") }
        }
        return Data(model.bytes)
    }

    func save(_ bytes: Data) throws -> URL {
        let url = folder.appendingPathComponent("m.onnx")
        try bytes.write(to: url)
        return url
    }

    func assertRefused(location: String, offset: String? = nil, length: String? = nil, mentions words: [String],
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let url = try save(modelBytes(location: location, offset: offset, length: length))
        XCTAssertThrowsError(try Model(contentsOf: url), file: file, line: line) { error in
            guard let e = error as? OnnxError else { return XCTFail("not an OnnxError: \(error)", file: file, line: line) }
            XCTAssertEqual(e.kind, .externalData, "\(e)", file: file, line: line)
            XCTAssertEqual(e.file, url.path, file: file, line: line)
            for w in ["'w'", location] + words {
                XCTAssertTrue(e.description.contains(w), "'\(w)' not in: \(e)", file: file, line: line)
            }
        }
    }

    func testPlainFileAndSymlinkInsideAreRead() throws {
        try FileManager.default.copyItem(at: secret, to: folder.appendingPathComponent("sub/real.bin"))
        try FileManager.default.createSymbolicLink(atPath: folder.appendingPathComponent("link.bin").path, withDestinationPath: "sub/real.bin")
        for location in ["sub/real.bin", "link.bin"] {
            let model = try Model(contentsOf: try save(modelBytes(location: location)))
            XCTAssertEqual(model.graph.initializers[0].floats, values, location)
        }
        // The model's folder itself reached through a symlink: its data is still inside it.
        let alias = tmp.appendingPathComponent("alias")
        try FileManager.default.createSymbolicLink(atPath: alias.path, withDestinationPath: folder.path)
        XCTAssertEqual(try Model(contentsOf: alias.appendingPathComponent("m.onnx")).graph.initializers[0].floats, values)
    }

    func testSymlinkLeavingTheFolderIsRefused() throws {
        try FileManager.default.createSymbolicLink(atPath: folder.appendingPathComponent("link.bin").path, withDestinationPath: secret.path)
        try assertRefused(location: "link.bin", mentions: ["outside"])
        // A symlinked folder on the way counts too.
        try FileManager.default.createSymbolicLink(atPath: folder.appendingPathComponent("up").path, withDestinationPath: tmp.path)
        try assertRefused(location: "up/secret.bin", mentions: ["outside"])
    }

    func testParentAndAbsolutePathsAreRefused() throws {
        try assertRefused(location: "../secret.bin", mentions: ["outside"])
        try assertRefused(location: "sub/../../secret.bin", mentions: ["outside"])
        try assertRefused(location: secret.path, mentions: ["outside"])
    }

    func testFifoIsRefusedPromptly() throws {
        let fifo = folder.appendingPathComponent("fifo")
        XCTAssertEqual(mkfifo(fifo.path, 0o600), 0)
        let url = try save(modelBytes(location: "fifo"))
        // Loading on another thread, so a regression shows as a failure rather than a hung test run.
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var outcome: Error?
        DispatchQueue.global().async {
            do { _ = try Model(contentsOf: url) } catch { outcome = error }
            done.signal()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 5), .success, "loading a model whose external data is a FIFO hangs")
        XCTAssertEqual((outcome as? OnnxError)?.kind, .externalData, "\(String(describing: outcome))")
        XCTAssertTrue("\(String(describing: outcome))".contains("FIFO"), "\(String(describing: outcome))")
    }

    func testDirectoryIsRefused() throws {
        try assertRefused(location: "sub", mentions: ["folder"])
    }

    func testOffsetAndLengthAreCheckedWithoutOverflow() throws {
        try FileManager.default.copyItem(at: secret, to: folder.appendingPathComponent("w.bin"))
        try assertRefused(location: "w.bin", offset: String(Int.max), length: "16", mentions: ["too short"])
        try assertRefused(location: "w.bin", offset: "8", length: String(Int.max - 4), mentions: ["too short"])
        try assertRefused(location: "w.bin", offset: "99999999999999999999999", mentions: ["invalid"])
        try assertRefused(location: "w.bin", length: "8", mentions: ["8 bytes", "need 16"])
        try assertRefused(location: "w.bin", offset: "4", mentions: ["12 bytes", "need 16"])
        XCTAssertEqual(try Model(contentsOf: try save(modelBytes(location: "w.bin", offset: "0", length: "16"))).graph.initializers[0].floats, values)
    }

    func testMissingFileNamesTensorAndLocation() throws {
        try assertRefused(location: "nope.bin", mentions: ["missing"])
    }

    /// The model file itself, and tensor files, are refused when they are FIFOs, instead of hanging.
    func testModelAndTensorFilesThatAreFifosAreRefused() throws {
        for name in ["m.onnx", "t.npy", "t.pb"] {
            let fifo = folder.appendingPathComponent(name)
            XCTAssertEqual(mkfifo(fifo.path, 0o600), 0)
            let done = DispatchSemaphore(value: 0)
            nonisolated(unsafe) var outcome: Error?
            DispatchQueue.global().async {
                do {
                    if name.hasSuffix(".onnx") { _ = try Model(contentsOf: fifo) } else { _ = try Tensor(file: fifo) }
                } catch { outcome = error }
                done.signal()
            }
            XCTAssertEqual(done.wait(timeout: .now() + 5), .success, "\(name): reading a FIFO hangs")
            XCTAssertTrue("\(String(describing: outcome))".contains("FIFO"), "\(String(describing: outcome))")
            XCTAssertTrue("\(String(describing: outcome))".contains(fifo.path), "\(String(describing: outcome))")
        }
    }
}
