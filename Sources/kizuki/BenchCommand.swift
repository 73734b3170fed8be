import ArgumentParser
import Engine
import Foundation
import OnnxIO

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time a model: median / min / max milliseconds per batch and per image, and peak memory.")

    @Argument(help: "The .onnx file.") var model: String
    @Option(help: "Batch sizes, comma separated.") var batch = "1,20,128"
    @Option(help: "Thread counts, comma separated.") var threads = "1,\(ProcessInfo.processInfo.activeProcessorCount)"
    @Option(help: "Seconds of timed runs per configuration (after warm-up).") var seconds = 3.0
    @Option(help: "Exactly this many timed runs per configuration instead of --seconds (for instruction counts).") var runs: Int?
    @Flag(help: "Print JSON lines instead of a table.") var json = false
    @Flag(help: "After each configuration, print time per op type.") var profile = false
    @Option(name: .customLong("shape"), help: ArgumentHelp(
        "An input's shape, NAME=D0,D1,... (repeatable); needed for every input with a free axis after the first. "
            + "Axis 0 is the batch: when the model leaves it free it takes each --batch size.",
        valueName: "name=dims")) var shapes: [String] = []

    func validate() throws {
        guard parse(batch) != nil else { throw ValidationError("--batch takes positive integers separated by commas, got '\(batch)'") }
        guard parse(threads) != nil else { throw ValidationError("--threads takes positive integers separated by commas, got '\(threads)'") }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
        if let runs, runs < 1 { throw ValidationError("--runs must be at least 1 (got \(runs))") }
        _ = try givenShapes()
    }

    /// `--shape NAME=D0,D1,...` by input name.
    func givenShapes() throws -> [String: [Int]] {
        var result: [String: [Int]] = [:]
        for item in shapes {
            guard let equals = item.lastIndex(of: "="), equals != item.startIndex else {
                throw ValidationError("--shape takes NAME=D0,D1,... (e.g. images=1,3,640,640), got '\(item)'")
            }
            let name = String(item[..<equals])
            let dims = item[item.index(after: equals)...].split(separator: ",", omittingEmptySubsequences: false)
                .map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !dims.isEmpty, dims.allSatisfy({ ($0 ?? 0) > 0 }) else {
                throw ValidationError("--shape \(name): the sizes must be positive integers separated by commas, got '\(item[item.index(after: equals)...])'")
            }
            guard result[name] == nil else { throw ValidationError("--shape \(name) is given twice") }
            result[name] = dims.compactMap { $0 }
        }
        return result
    }

    func parse(_ list: String) -> [Int]? {
        let values = list.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
        return values.map { $0! }
    }

    func run() throws {
        do {
            let loaded = try Model(contentsOf: URL(fileURLWithPath: model))
            let given = try givenShapes()
            var headerPrinted = json
            for t in parse(threads)! {
                var options = SessionOptions()
                options.threads = t
                options.profile = profile
                let session = try Session(model: loaded, options: options)
                let unknown = Set(given.keys).subtracting(session.inputs.map(\.name))
                guard unknown.isEmpty else {
                    throw ValidationError("--shape names \(unknown.sorted().joined(separator: ", ")), not an input of \(model); its inputs: "
                        + session.inputs.map(\.name).joined(separator: ", "))
                }
                for b in parse(batch)! {
                    let feeds = try Bench.randomFeeds(session, batch: b, shapes: given)
                    if !headerPrinted {
                        // The machine and the kernels in use decide the numbers below: say which they are.
                        for line in Kizuki.platformLines() { print(line) }
                        print("batch threads   median_ms      min_ms      max_ms  ms/image   peak_rss_MiB")
                        headerPrinted = true
                    }
                    _ = try session.run(feeds)  // plan + warm-up
                    _ = try session.run(feeds)
                    session.resetProfile()  // profile this configuration's timed runs only
                    var times: [Double] = []
                    let start = DispatchTime.now().uptimeNanoseconds
                    repeat {
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        _ = try session.run(feeds)
                        times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
                    } while runs.map({ times.count < $0 }) ?? (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < seconds || times.count < 3)
                    times.sort()
                    let median = times[times.count / 2]
                    let rss = PeakMemory.mebibytes()
                    if json {
                        // With --profile: milliseconds per run by op kind, as onnxruntime's profile is read (tools/ort_bench.py).
                        let ops = profile ? ", \"profile\": {" + session.profile.sorted { $0.key < $1.key }.map { op, entry in
                            "\"\(op)\": \(1e3 * entry.seconds / Double(times.count))"
                        }.joined(separator: ", ") + "}" : ""
                        print(#"{"batch": \#(b), "threads": \#(t), "median_ms": \#(median), "min_ms": \#(times.first!), "max_ms": \#(times.last!), "per_image_ms": \#(median / Double(b)), "runs": \#(times.count), "peak_rss_mib": \#(rss)"#
                            + ops + "}")
                    } else {
                        print(String(format: "%5d %7d %11.3f %11.3f %11.3f %9.3f %14.1f", b, t, median, times.first!, times.last!, median / Double(b), rss))
                        if profile { Bench.printProfile(session) }
                    }
                }
            }
        } catch let e as ExitCode { throw e } catch { throw fail(error) }
    }

    /// Uniform [0,1) inputs of the model's declared shapes, or those given with --shape; a free axis 0 takes
    /// `batch`. Any other free axis must come from --shape: a guess (1) would time a different workload.
    static func randomFeeds(_ session: Session, batch: Int, shapes: [String: [Int]]) throws -> [String: HostTensor] {
        var generator = SystemRandomNumberGenerator()
        var feeds: [String: HostTensor] = [:]
        for info in session.inputs {
            guard info.type?.elementType == .float else {
                throw EngineError(.invalidInput, "bench needs float inputs; '\(info.name)' is \(String(describing: info.type))")
            }
            let shape = try benchShape(info, batch: batch, given: shapes[info.name])
            // The checked initialiser refuses shapes too large to count or to allocate.
            let tensor = try HostTensor(dtype: .float, shape: shape)
            let values = tensor.storage.pointer.assumingMemoryBound(to: Float.self)
            for i in 0..<tensor.count { values[i] = Float.random(in: 0..<1, using: &generator) }
            feeds[info.name] = tensor
        }
        return feeds
    }

    /// The shape `info` is timed at: declared axes where fixed, `batch` on a free axis 0, --shape elsewhere.
    static func benchShape(_ info: ValueInfo, batch: Int, given: [Int]?) throws -> [Int] {
        let declared = info.type?.shape
        guard let declared else {
            guard let given else {
                throw ValidationError("input '\(info.name)' declares no shape: give one with --shape \(info.name)=D0,D1,...")
            }
            return [batch] + given.dropFirst()
        }
        if let given, given.count != declared.count {
            throw ValidationError("--shape \(info.name) has \(given.count) axes; the model declares \(declared.count): \(declared)")
        }
        var shape: [Int] = []
        for (axis, dim) in declared.enumerated() {
            if axis == 0 {
                if let fixed = dim.fixedSize, fixed != batch {
                    throw ValidationError("input '\(info.name)' has a fixed batch of \(fixed) (shape \(declared)): use --batch \(fixed)")
                }
                shape.append(batch)
            } else if let fixed = dim.fixedSize {
                if let given, given[axis] != fixed {
                    throw ValidationError("--shape \(info.name): axis \(axis) is \(fixed) in the model, not \(given[axis])")
                }
                shape.append(fixed)
            } else if let given {
                shape.append(given[axis])
            } else {
                let example = declared.enumerated().map { i, d in i == 0 ? "1" : d.fixedSize.map(String.init) ?? "N" }
                throw ValidationError("input '\(info.name)' has a free axis \(axis) ('\(dim)' in \(declared)): give its size with "
                    + "--shape \(info.name)=\(example.joined(separator: ",")) (the batch axis 0 follows --batch)")
            }
        }
        return shape
    }

    /// Share of time per op type over the configuration's timed runs.
    static func printProfile(_ session: Session) {
        let total = session.profile.values.reduce(0) { $0 + $1.seconds }
        for (op, entry) in session.profile.sorted(by: { $0.value.seconds > $1.value.seconds }) {
            print("      " + op.padding(toLength: 28, withPad: " ", startingAt: 0)
                + String(format: "%6.1f%%  %8.1f us/call  %7d calls", 100 * entry.seconds / total, 1e6 * entry.seconds / Double(entry.calls), entry.calls))
        }
    }
}
