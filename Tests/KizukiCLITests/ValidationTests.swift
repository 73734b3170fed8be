import Foundation
import XCTest

/// Options out of range are refused with a message naming the option, before any work and without a trap.
final class ValidationTests: CLITestCase {
    func testThresholdMustBeFinite() throws {
        for value in ["nan", "inf", "-inf", "+infinity"] {
            assertRefused(try kizuki("score", Self.seed, "--index", path("a.kzi"), "--images", "fmnist:test:9", "--threshold=\(value)"),
                          "--threshold must be a finite number")
        }
    }

    func testHugeAndNegativeNumbers() throws {
        let images = try writeNpy("images.npy", shape: [3, 28, 28], values: (0..<3 * 28 * 28).map { Float($0 % 256) / 255 })
        let index = path("a.kzi")
        XCTAssertEqual(try kizuki("index", Self.seed, "--images", images, "--out", index, "--quiet").status, 0)
        for k in ["\(Int.max)", "\(Int.max - 1)", "4"] {
            assertRefused(try kizuki("score", Self.seed, "--index", index, "--images", images, "--k", k, "--quiet"), "k = \(k)")
            assertRefused(try kizuki("calibrate", Self.seed, "--index", index, "--k", k), "k = \(k)")
        }
        assertRefused(try kizuki("score", Self.seed, "--index", index, "--images", images, "--k=-3"), "--k must be at least 1")
        assertRefused(try kizuki("score", Self.seed, "--index", index, "--images", images, "--k", "99999999999999999999"), "--k")
        assertRefused(try kizuki("index", Self.seed, "--images", images, "--out", path("b.kzi"), "--anchors=-1"), "--anchors must be at least 1")
        assertRefused(try kizuki("calibrate", Self.seed, "--index", index, "--fpr", "nan"), "--fpr must be in [0, 1)")
        assertRefused(try kizuki("eval", Self.seed, "--normal", "12"), "--normal and --anomaly are Fashion-MNIST labels 0...9")
        assertRefused(try kizuki("eval", Self.seed, "--anomaly=-1"), "--normal and --anomaly are Fashion-MNIST labels 0...9")
        assertRefused(try kizuki("eval", Self.seed, "--fpr", "1.5"), "--fpr must be in [0, 1)")
        assertRefused(try kizuki("eval", Self.seed, "--anchors", "50,10", "--k", "11"), "--k 11 needs at least 11 anchors")
        assertRefused(try kizuki("eval", Self.seed, "--anchors", "5", "--k", "5"), "--k 5 needs")
        assertRefused(try kizuki("conformance", tmp.path, "--rtol", "nan"), "--rtol and --atol must be finite")
        assertRefused(try kizuki("conformance", tmp.path, "--filter", "(unclosed"), "--filter '(unclosed' is not a valid regular expression")
    }

    func testRunInputPairs() throws {
        let model = try makeModel(nodes: [("Relu", "x", "y")])
        let x = try writeNpy("x.npy", shape: [1, 4], values: [1, -2, 3, -4])
        assertRefused(try kizuki("run", model, "--input", "=\(x)", "--output-dir", path("o")), "has no input name before '='")
        assertRefused(try kizuki("run", model, "--input", "x=", "--output-dir", path("o")), "has no file after '='")
        assertRefused(try kizuki("run", model, "--input", "=", "--output-dir", path("o")), "has no input name")
        assertRefused(try kizuki("run", model, "--input", x, "--output-dir", path("o")), "--input takes NAME=FILE")
        assertRefused(try kizuki("run", model, "--input", "x=\(x)", "--input", "x=\(x)", "--output-dir", path("o")), "'x' is given more than once")
        assertRefused(try kizuki("run", model, "--input", "x=\(x)", "--output-dir", ""), "--output-dir needs a folder name")
        // A file name may contain '=' and spaces: the name ends at the first '='.
        let odd = try writeNpy("a=b c.npy", shape: [1, 4], values: [1, -2, 3, -4])
        let ok = try kizuki("run", model, "--input", "x=\(odd)", "--output-dir", path("out dir"))
        XCTAssertEqual(ok.status, 0, ok.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path("out dir/y.npy")))
    }
}
