import Anomaly
import Foundation
import XCTest

/// Runs the `kizuki` binary as users do, in a fresh temporary folder per test, and writes the small
/// models and tensor files the tests feed it. The binary is built next to the test bundle
/// (`make test` builds every product first).
class CLITestCase: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let seed = root.appendingPathComponent("models/keras-seed/model.onnx").path
    var tmp: URL!

    static var binary: URL? {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<3 {
            let candidate = dir.appendingPathComponent("kizuki")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    override func setUpWithError() throws {
        guard Self.binary != nil else { throw XCTSkip("kizuki binary not built next to the tests (run `make test`)") }
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("kizuki-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { if let tmp { try? FileManager.default.removeItem(at: tmp) } }

    struct Result {
        let status: Int32
        /// False when a signal ended the process (a Swift trap): never acceptable, whatever the input.
        let exited: Bool
        let out: String
        let err: String
    }

    @discardableResult
    func kizuki(_ args: String...) throws -> Result { try kizuki(args) }

    /// Runs kizuki; after `timeout` seconds it is killed (a hang shows as a run ended by a signal).
    @discardableResult
    func kizuki(_ args: [String], timeout: Double = 900, in directory: URL? = nil, environment: [String: String] = [:]) throws -> Result {
        try run(Self.binary!, args, timeout: timeout, in: directory, environment: environment)
    }

    /// Runs any program (in the checkout unless `directory` is given, with `environment` added to this
    /// process's), capturing its output.
    func run(_ program: URL, _ args: [String], timeout: Double = 900, in directory: URL? = nil,
             environment: [String: String] = [:]) throws -> Result {
        let p = Process()
        p.executableURL = program
        p.arguments = args
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        p.currentDirectoryURL = directory ?? Self.root
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { if p.isRunning { p.terminate() } }
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, exited: p.terminationReason == .exit,
                      out: String(decoding: o, as: UTF8.self), err: String(decoding: e, as: UTF8.self))
    }

    /// Asserts a clean refusal: exit status 1 or 64 (not a trap), and `expected` in the message on stderr.
    func assertRefused(_ r: Result, _ expected: String..., file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(r.exited, "ended by a signal: \(r.err)", file: file, line: line)
        XCTAssertNotEqual(r.status, 0, "accepted: \(r.out)", file: file, line: line)
        for text in expected { XCTAssertTrue(r.err.contains(text), "'\(text)' not in: \(r.err)", file: file, line: line) }
        XCTAssertFalse(r.err.contains("Error Domain") || r.err.contains("NSCocoaErrorDomain") || r.err.contains("DecodingError"),
                       "raw error dump: \(r.err)", file: file, line: line)
    }

    func path(_ name: String) -> String { tmp.appendingPathComponent(name).path }

    /// A float32 .npy, written by hand (NumPy's format 1.0), so the tests do not use the code under test.
    @discardableResult
    func writeNpy(_ name: String, shape: [Int], values: [Float]) throws -> String {
        let dims = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(dims), }"
        header += String(repeating: " ", count: (64 - (10 + header.utf8.count + 1) % 64) % 64) + "\n"
        var npy = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count), 0]) + Data(header.utf8)
        values.withUnsafeBytes { npy.append(contentsOf: $0) }
        try npy.write(to: tmp.appendingPathComponent(name))
        return path(name)
    }

    /// Grey 28x28 images, distinct and deterministic, as a folder of PNG files with the given names.
    func writePNGFolder(_ folder: String, names: [String]) throws -> String {
        let dir = tmp.appendingPathComponent(folder)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for (i, name) in names.enumerated() {
            let pixels = (0..<28 * 28).map { UInt8(truncatingIfNeeded: $0 * (i + 3) + 17 * i) }
            try PNG.encodeGray(height: 28, width: 28, pixels: pixels).write(to: dir.appendingPathComponent(name))
        }
        return dir.path
    }

    static func varint(_ v: Int) -> [UInt8] {
        var v = UInt64(v), out: [UInt8] = []
        repeat { var b = UInt8(v & 0x7f); v >>= 7; if v != 0 { b |= 0x80 }; out.append(b) } while v != 0
        return out
    }

    static func field(_ n: Int, _ payload: [UInt8]) -> [UInt8] { varint(n << 3 | 2) + varint(payload.count) + payload }

    /// A float TensorProto (.pb, the ONNX backend test format) written by hand: dims, data_type 1, raw_data.
    static func tensorProto(dims: [Int], values: [Float]) -> Data {
        var bytes: [UInt8] = dims.flatMap { d -> [UInt8] in [0x08] + varint(d) } + [0x10, 0x01]
        bytes += field(9, values.flatMap { v -> [UInt8] in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } })
        return Data(bytes)
    }

    /// A float model x:[1,4] → ... → outputs, nodes named n0, n1, ... written by hand as ONNX protobuf.
    /// The first node reads x; the graph's outputs are `outputs` (each declared [1,4]).
    func makeModel(nodes: [(op: String, input: String, output: String)], outputs: [String] = ["y"], file: String = "m.onnx") throws -> String {
        func string(_ n: Int, _ s: String) -> [UInt8] { Self.field(n, Array(s.utf8)) }
        func valueInfo(_ name: String) -> [UInt8] {
            let dims = Self.field(1, [0x08, 0x01]) + Self.field(1, [0x08, 0x04])  // dim_value 1, 4
            let tensorType = [0x08, 0x01] + Self.field(2, dims)  // elem_type FLOAT, shape
            return string(1, name) + Self.field(2, Self.field(1, tensorType))
        }
        var graph: [UInt8] = []
        for (i, n) in nodes.enumerated() {
            let input = i == 0 ? "x" : n.input
            graph += Self.field(1, string(1, input) + string(2, n.output) + string(3, "n\(i)") + string(4, n.op))
        }
        graph += string(2, "g") + Self.field(11, valueInfo("x"))
        for output in outputs { graph += Self.field(12, valueInfo(output)) }
        let model = [0x08, 0x08] + Self.field(7, graph) + Self.field(8, [0x10, 0x0d])  // ir_version 8, graph, opset 13
        let url = tmp.appendingPathComponent(file)
        try Data(model).write(to: url)
        return url.path
    }
}
