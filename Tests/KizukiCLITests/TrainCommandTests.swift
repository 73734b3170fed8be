import Foundation
import XCTest

/// `kizuki train` and `kizuki bench-train` as users run them: refusals, a short run and its files, Ctrl-C.
final class TrainCommandTests: CLITestCase {
    func testRefusesBadOptions() throws {
        assertRefused(try kizuki(["train"]), "--out")
        assertRefused(try kizuki(["train", "--out", tmp.path, "--resume", tmp.path]), "exclusive")
        assertRefused(try kizuki(["train", "--out", tmp.path, "--loss", "hinge"]), "batch-all, batch-hard, soft-margin")
        assertRefused(try kizuki(["train", "--out", tmp.path, "--batch", "1000000", "--no-eval"]), "smaller --batch")
        assertRefused(try kizuki(["train", "--out", tmp.path, "--batch", "\(Int.max)", "--no-eval"]), "batch size")
        assertRefused(try kizuki(["train", "--out", tmp.path, "--lr-drops", "x"]), "--lr-drops")
        assertRefused(try kizuki(["train", "--out", tmp.path, "--normal", "9", "--exclude", "9"]), "not excluded")
        assertRefused(try kizuki(["train", "--out", tmp.path, "--bn-momentum", "1"]), "--bn-momentum must be in [0, 1)")
        assertRefused(try kizuki(["train", "--out", tmp.path, "--eval-every", "0"]), "--eval-every must be at least 1")
        assertRefused(try kizuki(["train", "--out", tmp.path, "--eval-every", "5", "--no-eval"]), "--eval-every needs the evaluation")
        assertRefused(try kizuki(["train", "--resume", tmp.path, "--l2-normalize"]), "a resumed run keeps its own recipe")
        assertRefused(try kizuki(["train", "--resume", tmp.appendingPathComponent("nothing").path]), "checkpoint.json")
        assertRefused(try kizuki(["train", "--out", tmp.path, "--init", tmp.appendingPathComponent("missing.onnx").path]), "missing.onnx")
    }

    func testShortRunWritesAModelAndResumes() throws {
        let dir = tmp.appendingPathComponent("run").path
        let args = ["--train-images", "16", "--batch", "8", "--no-eval", "--threads", "2", "--seed", "5"]
        let first = try kizuki(["train", "--out", dir, "--epochs", "1"] + args)
        XCTAssertEqual(first.status, 0, first.err)
        XCTAssertTrue(first.out.contains("epoch   1/1"), first.out)
        for name in ["model.onnx", "checkpoint.onnx", "checkpoint.json", "optimizer.bin", "train.json", "train.log"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/" + name), "missing \(name)")
        }
        let second = try kizuki(["train", "--resume", dir, "--epochs", "2", "--no-eval"])
        XCTAssertEqual(second.status, 0, second.err)
        XCTAssertTrue(second.out.contains("resuming at epoch 2"), second.out)
        let log = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/train.json"))) as? [String: Any]
        XCTAssertEqual((log?["epochs"] as? [Any])?.count, 2)
        // The written model is what `kizuki run` and `eval` take.
        let run = try kizuki("inspect", dir + "/model.onnx")
        XCTAssertEqual(run.status, 0, run.err)
        assertRefused(try kizuki(["train", "--out", dir] + args), "--resume")
    }

    /// Ctrl-C stops after the current step with a resumable checkpoint and exit status 130.
    func testInterruptLeavesAResumableCheckpoint() throws {
        let dir = tmp.appendingPathComponent("interrupted").path
        let p = Process()
        p.executableURL = Self.binary!
        p.arguments = ["train", "--out", dir, "--epochs", "50", "--train-images", "64", "--batch", "8", "--no-eval", "--threads", "1"]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        final class Seen: @unchecked Sendable {
            let lock = NSLock()
            var text = ""
            let started = DispatchSemaphore(value: 0)
        }
        let seen = Seen()
        err.fileHandleForReading.readabilityHandler = { handle in
            let text = String(decoding: handle.availableData, as: UTF8.self)
            seen.lock.lock(); seen.text += text; let ready = seen.text.contains("step "); seen.lock.unlock()
            if ready { seen.started.signal() }
        }
        try p.run()
        XCTAssertEqual(seen.started.wait(timeout: .now() + 120), .success, "no progress line from kizuki train")
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        err.fileHandleForReading.readabilityHandler = nil
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(p.terminationReason, .exit, "ended by a signal instead of stopping cleanly")
        XCTAssertEqual(p.terminationStatus, 130)
        XCTAssertTrue(stdout.contains("continue with: kizuki train --resume"), stdout)
        let resumed = try kizuki(["train", "--resume", dir, "--epochs", "3", "--no-eval"])
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertTrue(resumed.out.contains("resuming at epoch"), resumed.out)
        XCTAssertTrue(resumed.out.contains("epoch   3/3"), resumed.out)
    }
}
