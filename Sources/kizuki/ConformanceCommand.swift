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

    func validate() throws {
        guard rtol.isFinite, rtol >= 0, atol.isFinite, atol >= 0 else {
            throw ValidationError("--rtol and --atol must be finite and not negative (got \(rtol), \(atol))")
        }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1 (got \(threads))") }
        if let filter, (try? NSRegularExpression(pattern: filter)) == nil {
            throw ValidationError("--filter '\(filter)' is not a valid regular expression")
        }
    }

    func run() throws {
        if let problem = FileError.diagnose(.list, path: directory) { throw fail(FileError(.list, path: directory, reason: problem)) }
        let cases: [URL]
        do { cases = try Engine.Conformance.cases(in: URL(fileURLWithPath: directory), matching: filter) } catch { throw fail(error) }
        guard !cases.isEmpty else {
            throw fail(FileError(.list, path: directory, reason: "no test cases (folders with a model.onnx)" + (filter.map { " matching '\($0)'" } ?? "")))
        }
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
