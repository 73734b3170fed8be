import ArgumentParser
import Engine
import Foundation

struct Conformance: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run ONNX backend test cases and print OK / FAIL / UNSUPPORTED per case.")

    @Argument(help: "A case folder, a suite folder (e.g. .cache/onnx-conformance/node) or a folder of suites.")
    var directory: String

    @Option(help: "Only cases whose name matches this regular expression.")
    var filter: String?

    @Option(help: "Relative tolerance.") var rtol = 1e-4
    @Option(help: "Absolute tolerance.") var atol = 1e-5
    @Option(help: "Threads per case.") var threads = 1

    func run() throws {
        let cases = try Engine.Conformance.cases(in: URL(fileURLWithPath: directory), matching: filter)
        guard !cases.isEmpty else { throw ValidationError("no test cases under \(directory)" + (filter.map { " matching '\($0)'" } ?? "")) }
        var ok = 0, failed = 0, unsupported = 0
        for folder in cases {
            let name = folder.lastPathComponent
            switch Engine.Conformance.run(case: folder, tolerance: .init(rtol: rtol, atol: atol), threads: threads) {
            case .ok(let err):
                ok += 1
                print("OK          \(name)  max_abs_err=\(String(format: "%.3g", err))")
            case .fail(let why):
                failed += 1
                print("FAIL        \(name)  \(why.replacingOccurrences(of: "\n", with: " | "))")
            case .unsupported(let why):
                unsupported += 1
                print("UNSUPPORTED \(name)  \(why.replacingOccurrences(of: "\n", with: " | "))")
            }
        }
        print("\(ok) passed, \(failed) failed, \(unsupported) unsupported (of \(cases.count))")
        if failed > 0 { throw ExitCode.failure }
    }
}
