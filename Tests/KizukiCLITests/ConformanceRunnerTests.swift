import Foundation
import XCTest

/// `kizuki conformance` passes a case only when every graph output was checked against its expected value.
final class ConformanceRunnerTests: CLITestCase {
    /// A suite of one-node Relu cases, y = relu(x) on x = [1, -2, 3, -4], differing in their expected outputs.
    func makeSuite() throws -> URL {
        let suite = tmp.appendingPathComponent("suite")
        let model = try Data(contentsOf: URL(fileURLWithPath: try makeModel(nodes: [("Relu", "x", "y")])))
        let input = Self.tensorProto(dims: [1, 4], values: [1, -2, 3, -4])
        let right = Self.tensorProto(dims: [1, 4], values: [1, 0, 3, 0])
        let wrong = Self.tensorProto(dims: [1, 4], values: [1, 0, 3, 1])
        let cases: [String: [String: Data]] = [
            "test_right": ["input_0.pb": input, "output_0.pb": right],
            "test_no_expected_output": ["input_0.pb": input],
            "test_wrong_value": ["input_0.pb": input, "output_0.pb": wrong],
            "test_extra_expected_output": ["input_0.pb": input, "output_0.pb": right, "output_1.pb": right],
            "test_gap_in_outputs": ["input_0.pb": input, "output_1.pb": right],
            "test_gap_after_output": ["input_0.pb": input, "output_0.pb": right, "output_2.pb": right],
        ]
        for (name, files) in cases {
            let set = suite.appendingPathComponent(name).appendingPathComponent("test_data_set_0")
            try FileManager.default.createDirectory(at: set, withIntermediateDirectories: true)
            try model.write(to: suite.appendingPathComponent(name).appendingPathComponent("model.onnx"))
            for (file, data) in files { try data.write(to: set.appendingPathComponent(file)) }
        }
        return suite
    }

    func testCasesThatCheckNothingOrTooLittleFail() throws {
        let r = try kizuki("conformance", try makeSuite().path)
        XCTAssertTrue(r.exited, r.err)
        XCTAssertEqual(r.status, 1, "failures must fail the run: \(r.out)")
        let verdicts = Dictionary(uniqueKeysWithValues: r.out.split(separator: "\n").compactMap { line -> (String, String)? in
            let words = line.split(separator: " ", omittingEmptySubsequences: true)
            guard words.count >= 2, words[1].hasPrefix("test_") else { return nil }
            return (String(words[1]), String(line))
        })
        XCTAssertTrue(verdicts["test_right"]?.hasPrefix("OK ") == true, r.out)
        XCTAssertTrue(verdicts["test_no_expected_output"]?.hasPrefix("FAIL") == true && verdicts["test_no_expected_output"]!.contains("no expected outputs"), r.out)
        XCTAssertTrue(verdicts["test_wrong_value"]?.contains("element 3 is 0.0, expected 1.0") == true, r.out)
        XCTAssertTrue(verdicts["test_extra_expected_output"]?.contains("2 expected outputs for the graph's 1 outputs") == true, r.out)
        XCTAssertTrue(verdicts["test_gap_in_outputs"]?.hasPrefix("FAIL") == true, r.out)
        XCTAssertTrue(verdicts["test_gap_after_output"]?.contains("output_2.pb follows a gap") == true, r.out)
        XCTAssertTrue(r.out.contains("1 passed, 5 failed, 0 unsupported (of 6)"), r.out)
    }
}
