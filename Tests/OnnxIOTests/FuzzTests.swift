import Foundation
import XCTest
@testable import OnnxIO

/// Mutated real models (bit flips, truncations, splices, length-field edits): every load must
/// return or throw, none may trap, none may take over a second.
final class FuzzTests: XCTestCase {
    static let iterations = 2_000

    func seeds() throws -> [Data] {
        var urls = [TestPaths.seedModel]
        for c in ["node/test_conv_with_strides_padding", "node/test_resize_upsample_scales_nearest", "node/test_if",
                  "node/test_gather_0", "pytorch-converted/test_Conv2d_depthwise", "simple/test_expand_shape_model1"] {
            let url = TestPaths.conformance.appendingPathComponent(c).appendingPathComponent("model.onnx")
            if FileManager.default.fileExists(atPath: url.path) { urls.append(url) }
        }
        return try urls.map { try Data(contentsOf: $0) }
    }

    func mutate(_ data: Data, _ rng: inout SplitMix, donor: Data) -> Data {
        var bytes = [UInt8](data)
        guard !bytes.isEmpty else { return data }
        switch rng.next() % 5 {
        case 0:  // flip a few bits
            for _ in 0..<(1 + Int(rng.next() % 8)) {
                let i = Int(rng.next() % UInt64(bytes.count))
                bytes[i] ^= UInt8(1) << (rng.next() % 8)
            }
        case 1:  // truncate
            bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count))))
        case 2:  // splice in a slice of another model
            let donorBytes = [UInt8](donor)
            let at = Int(rng.next() % UInt64(bytes.count))
            let from = Int(rng.next() % UInt64(max(donorBytes.count, 1)))
            let length = Int(rng.next() % 256)
            bytes.replaceSubrange(at..<min(bytes.count, at + length), with: donorBytes[from..<min(donorBytes.count, from + length)])
        case 3:  // edit a length-delimited field's length (tag byte with wire type 2, then a varint)
            let probes = (0..<256).map { _ in Int(rng.next() % UInt64(max(bytes.count - 1, 1))) }
            if let i = probes.first(where: { bytes[$0] & 7 == 2 && bytes[$0] >> 3 > 0 && $0 + 1 < bytes.count }) {
                let delta: [UInt8] = [0, 1, 0x7f, 0xff]
                bytes[i + 1] = bytes[i + 1] &+ delta[Int(rng.next() % 4)] &+ UInt8(rng.next() % 3)
            }
        default:  // overwrite a run with random bytes
            let at = Int(rng.next() % UInt64(bytes.count))
            for i in at..<min(bytes.count, at + 1 + Int(rng.next() % 16)) { bytes[i] = UInt8(truncatingIfNeeded: rng.next()) }
        }
        return Data(bytes)
    }

    func testMutatedModelsNeverTrapOrHang() throws {
        let seeds = try seeds()
        var rng = SplitMix(seed: 0x4b697a756b69)
        var thrown = 0, loaded = 0
        var slowest = 0.0
        let start = Date()
        for i in 0..<Self.iterations {
            // The 9 MB seed model is costly to decode; use it for one mutation in ten.
            let index = i % 10 == 0 ? 0 : 1 + i % max(seeds.count - 1, 1)
            let input = mutate(seeds[min(index, seeds.count - 1)], &rng, donor: seeds[i % seeds.count])
            let t0 = Date()
            do { _ = try Model(serialized: input, file: "fuzz-\(i)"); loaded += 1 } catch { thrown += 1 }
            let elapsed = Date().timeIntervalSince(t0)
            slowest = max(slowest, elapsed)
            XCTAssertLessThan(elapsed, 1.0, "mutation \(i) took \(elapsed) s")
        }
        print("fuzz: \(Self.iterations) mutations in \(String(format: "%.2f", Date().timeIntervalSince(start))) s, \(loaded) loaded, \(thrown) refused, slowest \(String(format: "%.3f", slowest)) s")
        XCTAssertEqual(loaded + thrown, Self.iterations)
        XCTAssertGreaterThan(thrown, Self.iterations / 10, "most mutations should be refused")
    }
}
