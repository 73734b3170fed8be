import Foundation
import XCTest

/// Every read or write the CLI does fails with "cannot ACTION PATH: REASON", exit 1, never an NSError
/// dump; outputs are checked before any work and never replace an input or a file of another kind.
final class FileErrorTests: CLITestCase {
    /// Five 28x28 images, enough for a small index; used as an input and to build one.
    func images() throws -> String {
        try writeNpy("images.npy", shape: [5, 28, 28], values: (0..<5 * 28 * 28).map { Float(($0 * 7) % 256) / 255 })
    }

    /// A folder this process cannot write into, even as root (sysfs refuses new files).
    func unwritableFolder() throws -> String {
        if geteuid() != 0 {
            let dir = tmp.appendingPathComponent("locked")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try FileManager.default.setAttributes([.posixPermissions: 0o500], ofItemAtPath: dir.path)
            return dir.path
        }
        guard FileManager.default.fileExists(atPath: "/sys/kernel") else { throw XCTSkip("no unwritable folder for root here") }
        return "/sys/kernel"
    }

    func testWriteFailuresNameThePathAndTheReason() throws {
        let images = try images()
        let missing = path("no/such/folder/e.npy")
        assertRefused(try kizuki("embed", Self.seed, "--images", images, "--out", missing, "--quiet"),
                      "cannot write \(missing): folder \(path("no")) does not exist")
        assertRefused(try kizuki("embed", Self.seed, "--images", images, "--out", tmp.path, "--quiet"),
                      "cannot write \(tmp.path): it is a folder")
        assertRefused(try kizuki("embed", Self.seed, "--images", images, "--out", tmp.path + "/new/", "--quiet"),
                      "cannot write \(tmp.path)/new/: --out names a folder")
        try Data("x".utf8).write(to: tmp.appendingPathComponent("plain"))
        assertRefused(try kizuki("embed", Self.seed, "--images", images, "--out", path("plain/e.npy"), "--quiet"),
                      "cannot write \(path("plain/e.npy")): \(path("plain")) is a file, not a folder")
        assertRefused(try kizuki("index", Self.seed, "--images", images, "--out", path("no/a.kzi"), "--quiet"),
                      "cannot write \(path("no/a.kzi")): folder \(path("no")) does not exist")
        assertRefused(try kizuki("eval", Self.seed, "--report", path("no/r.html"), "--quiet"),
                      "cannot write \(path("no/r.html")): folder \(path("no")) does not exist")
        assertRefused(try kizuki("eval", Self.seed, "--scores-out", path("no/s.npy"), "--quiet"),
                      "cannot write \(path("no/s.npy")): folder \(path("no")) does not exist")
        try writeNpy("x.npy", shape: [1, 4], values: [1, -2, 3, -4])
        let model = try makeModel(nodes: [("Relu", "x", "y")])
        assertRefused(try kizuki("run", model, "--input", "x=\(path("x.npy"))", "--output-dir", path("plain")),
                      "cannot create folder \(path("plain")): a file is in the way")
        assertRefused(try kizuki("run", model, "--input", "x=\(path("x.npy"))", "--output-dir", path("plain/out")),
                      "cannot create folder \(path("plain/out")): \(path("plain")) is a file, not a folder")

        let locked = try unwritableFolder()
        let denied = try kizuki("embed", Self.seed, "--images", images, "--out", "\(locked)/e.npy", "--quiet")
        assertRefused(denied, "cannot write \(locked)/e.npy: ")
        XCTAssertTrue(denied.err.contains("permission denied") || denied.err.contains("read-only"), denied.err)
    }

    func testReadFailuresNameThePathAndTheReason() throws {
        let images = try images()
        assertRefused(try kizuki("embed", path("nope.onnx"), "--images", images, "--out", path("e.npy"), "--quiet"),
                      path("nope.onnx"))
        let index = path("a.kzi")
        XCTAssertEqual(try kizuki("index", Self.seed, "--images", images, "--out", index, "--quiet").status, 0)
        assertRefused(try kizuki("score", Self.seed, "--index", index, "--images", images, "--threshold-file", path("t.json"), "--quiet"),
                      "cannot read \(path("t.json")) (--threshold-file): no such file")
        assertRefused(try kizuki("score", Self.seed, "--index", index, "--images", images, "--threshold-file", tmp.path, "--quiet"),
                      "cannot read \(tmp.path) (--threshold-file): it is a folder")
        try Data(#"{"value": "high"}"#.utf8).write(to: tmp.appendingPathComponent("bad.json"))
        assertRefused(try kizuki("score", Self.seed, "--index", index, "--images", images, "--threshold-file", path("bad.json"), "--quiet"),
                      "\(path("bad.json")): not a threshold file")
        assertRefused(try kizuki("calibrate", path("nope.onnx"), "--index", index), "cannot read \(path("nope.onnx")) (the model): no such file")
        assertRefused(try kizuki("conformance", path("none")), "cannot list the folder \(path("none")): no such folder")

        // A FIFO would block a reader for ever; a folder or an empty path is no file.
        XCTAssertEqual(mkfifo(path("fifo.npy"), 0o600), 0)
        let fifo = path("fifo.npy")
        assertRefused(try kizuki(["inspect", fifo], timeout: 60), "cannot read \(fifo) (the model): not a regular file")
        assertRefused(try kizuki(["embed", Self.seed, "--images", fifo, "--out", path("e.npy")], timeout: 60),
                      "cannot read \(fifo) (--images): not a regular file")
        assertRefused(try kizuki(["run", Self.seed, "--input", "input=\(fifo)", "--output-dir", path("o")], timeout: 60),
                      "cannot read \(fifo) (--input input): not a regular file")
        assertRefused(try kizuki(["score", Self.seed, "--index", fifo, "--images", images], timeout: 60), "cannot read \(fifo) (--index): not a regular file")
        assertRefused(try kizuki(["score", Self.seed, "--index", index, "--images", images, "--threshold-file", fifo], timeout: 60),
                      "cannot read \(fifo) (--threshold-file): not a regular file")
        assertRefused(try kizuki("inspect", ""), "cannot read '' (the model): an empty path")
        assertRefused(try kizuki("embed", Self.seed, "--images", "", "--out", path("e.npy")), "cannot read '' (--images): an empty path")
        assertRefused(try kizuki("run", tmp.path, "--output-dir", path("o")), "cannot read \(tmp.path) (the model): it is a folder, not a file")
    }

    func testOutputsNeverReplaceInputsOrOtherKindsOfFiles() throws {
        let images = try images()
        let model = path("model.onnx")
        try FileManager.default.copyItem(atPath: Self.seed, toPath: model)
        let modelBytes = try Data(contentsOf: URL(fileURLWithPath: model))
        let imageBytes = try Data(contentsOf: URL(fileURLWithPath: images))

        assertRefused(try kizuki("index", model, "--images", images, "--out", model, "--quiet"), "same file as the model")
        assertRefused(try kizuki("embed", model, "--images", images, "--out", images, "--quiet"), "same file as --images")
        // Another model (or any file that is not an index) is not replaced by an index.
        let other = path("other.onnx")
        try modelBytes.write(to: URL(fileURLWithPath: other))
        assertRefused(try kizuki("index", model, "--images", images, "--out", other, "--quiet"), "not a Kizuki anchor index")
        assertRefused(try kizuki("embed", model, "--images", images, "--out", other, "--quiet"), "not a .npy array")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: model)), modelBytes)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: other)), modelBytes)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: images)), imageBytes)

        // An index replaces an index; the threshold file may not be the index itself.
        let index = path("a.kzi")
        XCTAssertEqual(try kizuki("index", model, "--images", images, "--out", index, "--quiet").status, 0)
        let rebuilt = try kizuki("index", model, "--images", images, "--anchors", "4", "--out", index, "--quiet")
        XCTAssertEqual(rebuilt.status, 0, rebuilt.err)
        XCTAssertTrue(rebuilt.out.contains("4 anchors"), rebuilt.out)
        let indexBytes = try Data(contentsOf: URL(fileURLWithPath: index))
        assertRefused(try kizuki("calibrate", model, "--index", index, "--out", index), "same file as --index")
        try Data(#"{"name": "settings"}"#.utf8).write(to: URL(fileURLWithPath: path("settings.json")))
        assertRefused(try kizuki("calibrate", model, "--index", index, "--out", path("settings.json")), "not a threshold JSON file")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: index)), indexBytes)
        XCTAssertEqual(try kizuki("calibrate", model, "--index", index, "--out", path("t.json")).status, 0)
        let replaced = try kizuki("calibrate", model, "--index", index, "--out", path("t.json"), "--fpr", "0.2")
        XCTAssertEqual(replaced.status, 0, "a threshold file is replaced by one: \(replaced.err)")
        assertRefused(try kizuki("eval", model, "--report", path("r"), "--scores-out", path("r"), "--quiet"), "same file as --report")
        assertRefused(try kizuki("embed", model, "--images", images, "--out", "/dev/null", "--quiet"), "not a regular file")
    }

    /// calibrate checks both outputs first and replaces each atomically: a failure leaves the index as it
    /// was, and no temporary file stays behind.
    func testCalibrateChangesNothingWhenItFails() throws {
        let images = try images()
        let index = path("a.kzi")
        XCTAssertEqual(try kizuki("index", Self.seed, "--images", images, "--out", index, "--quiet").status, 0)
        let before = try Data(contentsOf: URL(fileURLWithPath: index))

        assertRefused(try kizuki("calibrate", Self.seed, "--index", index, "--out", path("no/t.json")),
                      "cannot write \(path("no/t.json")): folder \(path("no")) does not exist")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: index)), before, "a failed calibrate changed the index")
        // Leave-one-out over 5 anchors has 4 neighbours at most.
        assertRefused(try kizuki("calibrate", Self.seed, "--index", index, "--k", "5"), "k = 5")
        assertRefused(try kizuki("calibrate", Self.seed, "--index", index, "--k", "\(Int.max)"), "k = \(Int.max)")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: index)), before)

        let ok = try kizuki("calibrate", Self.seed, "--index", index, "--k", "4", "--out", path("t.json"))
        XCTAssertEqual(ok.status, 0, ok.err)
        XCTAssertNotEqual(try Data(contentsOf: URL(fileURLWithPath: index)), before, "the threshold is stored in the index")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path).sorted(), ["a.kzi", "images.npy", "t.json"])
        let attributes = try FileManager.default.attributesOfItem(atPath: index)
        XCTAssertEqual((attributes[.posixPermissions] as? Int).map { $0 & 0o044 }, 0o044, "the index stays readable by others")
    }
}
