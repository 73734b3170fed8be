import Foundation
import XCTest

/// `kizuki keras import/export` and `kizuki inspect` on Keras weight files, as users run them; the README's
/// "From Keras and back" commands run exactly as written, and Keras loads what they write.
final class KerasCommandTests: CLITestCase {
    static let seedWeights = root.appendingPathComponent("models/keras-seed/weights.h5").path

    /// The fenced blocks of `language` in the README section titled `title`, as written.
    func readmeBlocks(_ title: String, _ language: String) throws -> [String] {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        guard let start = readme.range(of: "\n## \(title)\n") else { XCTFail("no section '\(title)' in README.md"); return [] }
        let section = readme[start.upperBound...].components(separatedBy: "\n## ").first!
        return section.components(separatedBy: "```\(language)\n").dropFirst().map { $0.components(separatedBy: "\n```").first! }
    }

    func testReadmeCommandsRunAsWritten() throws {
        guard let python = ProcessInfo.processInfo.environment["KIZUKI_KERAS_PYTHON"] else {
            throw XCTSkip("KIZUKI_KERAS_PYTHON not set (make test sets it to the venv with tf_keras and Keras 3)")
        }
        // The commands' relative paths: models/ from the checkout, runs/ written in the test's own folder.
        try FileManager.default.createSymbolicLink(at: tmp.appendingPathComponent("models"), withDestinationURL: Self.root.appendingPathComponent("models"))
        let commands = try readmeBlocks("From Keras and back", "sh").first!.split(separator: "\n")
            .map { $0.components(separatedBy: "  #").first!.trimmingCharacters(in: .whitespaces) }
        XCTAssertEqual(commands.count, 6, "\(commands)")
        var outputs: [String] = []
        for line in commands {
            let words = line.split(separator: " ").map(String.init)
            XCTAssertEqual(words.first, "kizuki", line)
            let r = try kizuki(Array(words.dropFirst()), in: tmp)
            XCTAssertTrue(r.exited && r.status == 0, "\(line):\n\(r.out)\n\(r.err)")
            outputs.append(r.out)
        }
        XCTAssertTrue(outputs[2].contains("   6000   0.8613"), "the imported weights' AUC differs from the tf2onnx export's:\n\(outputs[2])")
        XCTAssertTrue(outputs[4].contains("nested MobileNetV2, Dense 'dense'"), outputs[4])

        // The Python block as written (tf_keras), then with Keras 3 loading the .h5 and the .weights.h5 file.
        let snippet = try readmeBlocks("From Keras and back", "python").first!
        let keras3 = snippet.replacingOccurrences(of: "import tf_keras as keras", with: "import keras")
        let keras3Weights = keras3.replacingOccurrences(of: "/weights.h5", with: "/embedder.weights.h5")
        XCTAssertNotEqual(keras3, snippet, "the README's snippet no longer has the import this test swaps")
        XCTAssertNotEqual(keras3Weights, keras3, "the README's snippet no longer loads weights.h5")
        for (name, code) in [("tf_keras", snippet), ("Keras 3, .h5", keras3), ("Keras 3, .weights.h5", keras3Weights)] {
            let r = try run(URL(fileURLWithPath: python), ["-c", code], in: tmp)
            XCTAssertTrue(r.exited && r.status == 0, "\(name): load_weights failed:\n\(r.err.suffix(3000))")
        }
    }

    func testImportRefusesWrongFiles() throws {
        assertRefused(try kizuki("keras", "import", path("missing.h5"), "--out", path("out")), "missing.h5")
        let fake = try writeNpy("fake.h5", shape: [2], values: [1, 2])
        assertRefused(try kizuki("keras", "import", fake, "--out", path("out")), "fake.h5", "not an HDF5 file")
        // Wrong architectures are refused by name in Tests/KerasTests; here a second import into the same folder.
        XCTAssertEqual(try kizuki("keras", "import", Self.seedWeights, "--out", path("out")).status, 0)
        assertRefused(try kizuki("keras", "import", Self.seedWeights, "--out", path("out")), "checkpoint.onnx already exists")
    }

    /// Corrupt Keras files are refused, never crash: one wrong byte in a global heap makes libhdf5 1.10 copy out of
    /// bounds (found by flipping bytes), which the CLI meets in a child process first; a truncated file is refused too.
    func testCorruptFilesAreRefusedWithoutACrash() throws {
        var bytes = try Data(contentsOf: URL(fileURLWithPath: Self.seedWeights))
        let original = bytes
        bytes[1845] = 0xC7
        try bytes.write(to: tmp.appendingPathComponent("corrupt.h5"))
        try original.prefix(50_000).write(to: tmp.appendingPathComponent("truncated.h5"))
        for file in ["corrupt.h5", "truncated.h5"] {
            assertRefused(try kizuki("inspect", path(file)), path(file))
            assertRefused(try kizuki("keras", "import", path(file), "--out", path("out")), path(file))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("out/checkpoint.onnx")))
    }

    func testExportRefusesWhatItCannotWrite() throws {
        assertRefused(try kizuki("keras", "export", Self.seed, "--out", path("x.h5")), "model.onnx", "import the Keras weights instead")
        assertRefused(try kizuki("keras", "export", Self.seed, "--out", path("x.onnx")), "--out must end in .h5")
        assertRefused(try kizuki("keras", "export", Self.seed, "--out", path("x.h5"), "--layout", "sideways"), "--layout must be nested or flat")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("x.h5")))
    }

    func testInspectListsKeras2AndKeras3Files() throws {
        let r = try kizuki("inspect", Self.seedWeights)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("157 layers, 105 with weights, 262 weights"), r.out)
        XCTAssertTrue(r.out.contains("Conv1/kernel:0  [3, 3, 1, 32]"), r.out)

        XCTAssertEqual(try kizuki("keras", "import", Self.seedWeights, "--out", path("seed")).status, 0)
        let export = try kizuki("keras", "export", path("seed/checkpoint.onnx"), "--out", path("seed.weights.h5"), "--layout", "nested")
        XCTAssertEqual(export.status, 0, export.err)
        let k3 = try kizuki("inspect", path("seed.weights.h5"))
        XCTAssertEqual(k3.status, 0, k3.err)
        XCTAssertTrue(k3.out.contains("Keras 3 weight file"), k3.out)
        XCTAssertTrue(k3.out.contains("105 layers with variables, 262 variables"), k3.out)
        XCTAssertTrue(k3.out.contains("layers/functional/layers/conv2d_34  (Conv_1)\n    vars/0  [1, 1, 320, 1280]"), k3.out)

        let fake = try writeNpy("fake.h5", shape: [2], values: [1, 2])
        assertRefused(try kizuki("inspect", fake), "not an HDF5 file")
    }
}
