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
    @Flag(help: "Print JSON lines instead of a table.") var json = false
    @Flag(help: "After each configuration, print time per op type.") var profile = false

    func validate() throws {
        guard parse(batch) != nil else { throw ValidationError("--batch takes positive integers separated by commas, got '\(batch)'") }
        guard parse(threads) != nil else { throw ValidationError("--threads takes positive integers separated by commas, got '\(threads)'") }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
    }

    func parse(_ list: String) -> [Int]? {
        let values = list.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
        return values.map { $0! }
    }

    func run() throws {
        do {
            let loaded = try Model(contentsOf: URL(fileURLWithPath: model))
            if !json { print("batch threads   median_ms      min_ms      max_ms  ms/image   peak_rss_MiB") }
            for t in parse(threads)! {
                var options = SessionOptions()
                options.threads = t
                options.profile = profile
                let session = try Session(model: loaded, options: options)
                for b in parse(batch)! {
                    let feeds = try Bench.randomFeeds(session, batch: b)
                    _ = try session.run(feeds)  // plan + warm-up
                    _ = try session.run(feeds)
                    session.resetProfile()  // profile this configuration's timed runs only
                    var times: [Double] = []
                    let start = DispatchTime.now().uptimeNanoseconds
                    repeat {
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        _ = try session.run(feeds)
                        times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
                    } while Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < seconds || times.count < 3
                    times.sort()
                    let median = times[times.count / 2]
                    let rss = Bench.peakRSSMiB()
                    if json {
                        print(#"{"batch": \#(b), "threads": \#(t), "median_ms": \#(median), "min_ms": \#(times.first!), "max_ms": \#(times.last!), "per_image_ms": \#(median / Double(b)), "runs": \#(times.count), "peak_rss_mib": \#(rss)}"#)
                    } else {
                        print(String(format: "%5d %7d %11.3f %11.3f %11.3f %9.3f %14.1f", b, t, median, times.first!, times.last!, median / Double(b), rss))
                    }
                    if profile { Bench.printProfile(session) }
                }
            }
        } catch let e as ExitCode { throw e } catch { throw fail(error) }
    }

    /// Uniform [0,1) inputs of the model's declared shapes, the first symbolic dimension set to `batch`.
    static func randomFeeds(_ session: Session, batch: Int) throws -> [String: HostTensor] {
        var generator = SystemRandomNumberGenerator()
        var feeds: [String: HostTensor] = [:]
        for info in session.inputs {
            guard info.type?.elementType == .float, let dims = info.type?.shape else {
                throw EngineError(.invalidInput, "bench needs float inputs with declared shapes; '\(info.name)' is \(String(describing: info.type))")
            }
            let shape = dims.enumerated().map { i, d -> Int in
                if case .known(let n) = d { return n }
                return i == 0 ? batch : 1
            }
            let count = shape.reduce(1, *)
            feeds[info.name] = try HostTensor(shape: shape, floats: (0..<count).map { _ in Float.random(in: 0..<1, using: &generator) })
        }
        return feeds
    }

    /// Share of time per op type over the configuration's timed runs.
    static func printProfile(_ session: Session) {
        let total = session.profile.values.reduce(0) { $0 + $1.seconds }
        for (op, entry) in session.profile.sorted(by: { $0.value.seconds > $1.value.seconds }) {
            print("      " + op.padding(toLength: 28, withPad: " ", startingAt: 0)
                + String(format: "%6.1f%%  %8.1f us/call  %7d calls", 100 * entry.seconds / total, 1e6 * entry.seconds / Double(entry.calls), entry.calls))
        }
    }

    static func peakRSSMiB() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}
