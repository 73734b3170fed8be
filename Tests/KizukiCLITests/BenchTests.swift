import Engine
import Foundation
import OnnxIO
import XCTest
@testable import kizuki

/// `kizuki bench`'s input shapes (free axes, --shape), its memory figure, and `kizuki --version`.
final class BenchShapeTests: XCTestCase {
    func input(_ dims: [ShapeDim]?) -> ValueInfo { ValueInfo(name: "x", type: .tensor(.float, dims)) }

    func message(_ body: () throws -> Any) -> String {
        do { _ = try body(); return "no error" } catch { return "\(error)" }
    }

    func testFreeBatchAxisTakesTheBatchSize() throws {
        // -1 used to become a negative element count and crash.
        XCTAssertEqual(try Bench.benchShape(input([.known(-1), .known(3), .known(4)]), batch: 5, given: nil), [5, 3, 4])
        XCTAssertEqual(try Bench.benchShape(input([.symbol("N"), .known(3)]), batch: 2, given: nil), [2, 3])
        XCTAssertEqual(try Bench.benchShape(input([.unknown, .known(3)]), batch: 7, given: nil), [7, 3])
    }

    func testFreeAxesAfterTheBatchNeedShape() throws {
        // A PaddleOCR-style input: each free spelling is refused, with the option that fixes it.
        for free in [ShapeDim.known(-1), .symbol("?"), .symbol(""), .symbol("height"), .unknown] {
            let info = input([.known(-1), .known(3), free, .known(8)])
            let why = message { try Bench.benchShape(info, batch: 1, given: nil) }
            XCTAssertTrue(why.contains("free axis 2") && why.contains("--shape x=1,3,N,8"), why)
            XCTAssertEqual(try Bench.benchShape(info, batch: 4, given: [1, 3, 640, 8]), [4, 3, 640, 8])
        }
        XCTAssertEqual(try Bench.benchShape(input(nil), batch: 3, given: [1, 5]), [3, 5])
        XCTAssertTrue(message { try Bench.benchShape(self.input(nil), batch: 3, given: nil) }.contains("--shape x="))
    }

    func testShapesThatContradictTheModelAreRefused() {
        let info = input([.symbol("N"), .known(3), .symbol("H")])
        XCTAssertTrue(message { try Bench.benchShape(info, batch: 1, given: [1, 3]) }.contains("has 2 axes; the model declares 3"))
        XCTAssertTrue(message { try Bench.benchShape(info, batch: 1, given: [1, 4, 9]) }.contains("axis 1 is 3 in the model, not 4"))
        let fixedBatch = input([.known(1), .known(3)])
        XCTAssertEqual(try Bench.benchShape(fixedBatch, batch: 1, given: nil), [1, 3])
        XCTAssertTrue(message { try Bench.benchShape(fixedBatch, batch: 20, given: nil) }.contains("use --batch 1"))
    }

    func testShapeOptionParsing() throws {
        XCTAssertEqual(try Bench.parse(["m.onnx", "--shape", "images=1,3,640,640", "--shape", "a=b=2"]).givenShapes(),
                       ["images": [1, 3, 640, 640], "a=b": [2]])
        for bad in ["images", "=1,2", "x=1,,2", "x=1,-3", "x=", "x=1,a"] {
            XCTAssertThrowsError(try Bench.parse(["m.onnx", "--shape", bad]), bad)
        }
        XCTAssertThrowsError(try Bench.parse(["m.onnx", "--shape", "x=1", "--shape", "x=2"]))
    }

    func testVersionNamesTheCPUAndTheBLASCore() {
        let lines = Kizuki.platformLines()
        XCTAssertEqual(lines.first, "kizuki \(Kizuki.version)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("cpu: ") })
        XCTAssertTrue(lines.contains { $0.hasPrefix("blas: OpenBLAS") && $0.contains(", core ") }, "\(lines)")
        // The NHWC kernels' instruction set: the widest the CPU has (KIZUKI_ISA may only lower it).
        let features = CPUInfo.current.features
        let widest = features.contains("avx512f") ? "avx512"
            : features.contains("avx2") && features.contains("fma") ? "avx2" : "generic"
        let isa = ProcessInfo.processInfo.environment["KIZUKI_ISA"].flatMap { ["generic", "avx2"].contains($0) ? $0 : nil }
        let expected = isa == "generic" || (isa == "avx2" && widest != "generic") ? isa! : widest
        XCTAssertTrue(lines.contains { $0.hasPrefix("conv: NHWC kernels " + expected) }, "\(lines)")
    }
}

extension CLITests {
    /// The peak memory bench reports is its own, not that of the process that started it
    /// (getrusage's maxrss survives exec: 525 MiB from a large Python parent, 28 MiB from a shell).
    func testBenchPeakMemoryIsItsOwnNotTheParents() throws {
        let ballast = 400 << 20
        let memory = UnsafeMutableRawPointer.allocate(byteCount: ballast, alignment: 4096)
        defer { memory.deallocate() }
        memset(memory, 1, ballast)  // resident in this process when the child is forked
        let result = try kizuki("bench", Self.seed, "--batch", "1", "--threads", "1", "--seconds", "0.05", "--json")
        XCTAssertEqual(result.status, 0, result.err)
        let line = try XCTUnwrap(result.out.split(separator: "\n").last)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let peak = try XCTUnwrap(report["peak_rss_mib"] as? Double)
        XCTAssertGreaterThan(peak, 1)
        XCTAssertLessThan(peak, 300, "this test process holds 400 MiB; bench must not report it")
    }

    func testBenchRefusesFreeAxesWithoutShape() throws {
        let model = try makeModel(nodes: [("Relu", "x", "y")])
        let ok = try kizuki("bench", model, "--batch", "1", "--threads", "1", "--seconds", "0.01")
        XCTAssertEqual(ok.status, 0, ok.err)
        XCTAssertTrue(ok.out.contains("blas: OpenBLAS"), ok.out)
        let unknown = try kizuki("bench", model, "--batch", "1", "--threads", "1", "--seconds", "0.01", "--shape", "z=1,4")
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.err.contains("--shape names z, not an input"), unknown.err)
    }
}
