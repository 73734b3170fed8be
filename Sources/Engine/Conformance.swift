import Foundation
import OnnxIO

/// Runs ONNX backend test cases: a folder with `model.onnx` and `test_data_set_*/input_*.pb`,
/// `output_*.pb`. Inputs bind to the graph's non-initializer inputs in order, outputs likewise.
public enum Conformance {
    public enum Status: Equatable {
        case ok(maxAbsError: Double)
        case fail(String)
        case unsupported(String)
    }

    public struct Tolerance: Sendable {
        public var rtol: Double = 1e-4
        public var atol: Double = 1e-5
        public init(rtol: Double = 1e-4, atol: Double = 1e-5) { self.rtol = rtol; self.atol = atol }
    }

    /// Case folders under `root` (itself a case, a suite such as `node/`, or a folder of suites), sorted by name.
    public static func cases(in root: URL, matching filter: String? = nil) throws -> [URL] {
        let fm = FileManager.default
        let regex = try filter.map { try NSRegularExpression(pattern: $0) }
        func isCase(_ url: URL) -> Bool { fm.fileExists(atPath: url.appendingPathComponent("model.onnx").path) }
        var found: [URL] = []
        func walk(_ url: URL, depth: Int) {
            if isCase(url) { found.append(url); return }
            guard depth < 3, let children = try? fm.contentsOfDirectory(at: url, includingPropertiesForKeys: nil) else { return }
            for c in children { walk(c, depth: depth + 1) }
        }
        walk(root, depth: 0)
        return found.filter { url in
            guard let regex else { return true }
            let name = url.lastPathComponent
            return regex.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil
        }.sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    /// Runs every data set of one case.
    public static func run(case folder: URL, tolerance: Tolerance = .init(), threads: Int = 1) -> Status {
        let session: Session
        do {
            var options = SessionOptions()
            options.threads = threads
            session = try Session(contentsOf: folder.appendingPathComponent("model.onnx"), options: options)
        } catch let e as EngineError where e.kind == .unsupported {
            return .unsupported(e.message)
        } catch {
            return .fail("load: \(error)")
        }
        // Sequence, optional and map values are not tensors; the engine runs tensors only.
        for v in session.model.graph.inputs + session.model.graph.outputs {
            if case .other? = v.type { return .unsupported("value '\(v.name)' is not a tensor (sequence/optional/map types are not supported)") }
        }
        let sets = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [])
            .filter { $0.hasPrefix("test_data_set_") }.sorted()
        guard !sets.isEmpty else { return .fail("no test_data_set_* folder") }
        var worst = 0.0
        for set in sets {
            let dir = folder.appendingPathComponent(set)
            do {
                let inputs = try numbered("input", in: dir)
                let expected = try numbered("output", in: dir)
                // A case that checks nothing must not pass, and every graph output must be checked.
                guard !expected.isEmpty else { return .fail("\(set): no expected outputs (output_0.pb missing)") }
                guard expected.count == session.outputs.count else {
                    return .fail("\(set): \(expected.count) expected outputs for the graph's \(session.outputs.count) outputs")
                }
                var feeds: [String: HostTensor] = [:]
                let names = session.inputs.map(\.name)
                guard inputs.count <= names.count else { return .fail("\(set): \(inputs.count) inputs for \(names.count) graph inputs") }
                for (i, t) in inputs.enumerated() { feeds[names[i]] = try HostTensor(t) }
                let outputs = try session.run(feeds)
                for (i, want) in expected.enumerated() {
                    guard let got = outputs[session.outputs[i].name] else {
                        return .fail("\(set): output \(i) ('\(session.outputs[i].name)') missing from the run")
                    }
                    switch compare(got, try HostTensor(want), tolerance) {
                    case .success(let e): worst = max(worst, e)
                    case .failure(let message): return .fail("\(set): output '\(session.outputs[i].name)': \(message.message)")
                    }
                }
            } catch let e as EngineError where e.kind == .unsupported {
                return .unsupported(e.message)
            } catch {
                return .fail("\(set): \(error)")
            }
        }
        return .ok(maxAbsError: worst)
    }

    /// prefix_0.pb, prefix_1.pb, ... in order; a numbered file after a gap (input_0, input_2) is an error,
    /// not silently left out.
    static func numbered(_ prefix: String, in dir: URL) throws -> [Tensor] {
        var out: [Tensor] = []
        while true {
            let url = dir.appendingPathComponent("\(prefix)_\(out.count).pb")
            guard FileManager.default.fileExists(atPath: url.path) else { break }
            out.append(try Tensor(protobufFile: url))
        }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        let stray = files.filter { name in
            guard name.hasPrefix(prefix + "_"), name.hasSuffix(".pb"),
                  let n = Int(name.dropFirst(prefix.count + 1).dropLast(3)) else { return false }
            return n >= out.count
        }
        if let first = stray.sorted().first {
            throw Mismatch(message: "\(first) follows a gap: \(prefix)_\(out.count).pb is missing")
        }
        return out
    }

    struct Mismatch: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// Max absolute error when every element is within atol + rtol·|expected| (NaN matches NaN).
    static func compare(_ got: HostTensor, _ want: HostTensor, _ tol: Tolerance) -> Result<Double, Mismatch> {
        guard got.dtype == want.dtype else { return .failure(Mismatch(message: "type \(got.dtype), expected \(want.dtype)")) }
        guard got.shape == want.shape else { return .failure(Mismatch(message: "shape \(got.shape), expected \(want.shape)")) }
        func values(_ t: HostTensor) -> [Double] {
            switch t.dtype {
            case .float: return t.floats.map(Double.init)
            case .double: return t.elements(as: Double.self)
            case .int64: return t.elements(as: Int64.self).map(Double.init)
            case .int32: return t.elements(as: Int32.self).map(Double.init)
            case .int16: return t.elements(as: Int16.self).map(Double.init)
            case .int8: return t.elements(as: Int8.self).map(Double.init)
            case .uint8, .bool: return t.elements(as: UInt8.self).map(Double.init)
            case .uint16: return t.elements(as: UInt16.self).map(Double.init)
            case .uint32: return t.elements(as: UInt32.self).map(Double.init)
            case .uint64: return t.elements(as: UInt64.self).map(Double.init)
            case .float16: return t.elements(as: Float16.self).map(Double.init)
            case .bfloat16: return t.elements(as: UInt16.self).map { Double(Float(bitPattern: UInt32($0) << 16)) }
            default: return t.elements(as: UInt8.self).map(Double.init)
            }
        }
        let a = values(got), b = values(want)
        var worst = 0.0
        for i in a.indices {
            if a[i].isNaN && b[i].isNaN { continue }
            if a[i] == b[i] { continue }
            let err = abs(a[i] - b[i])
            if !(err <= tol.atol + tol.rtol * abs(b[i])) {
                return .failure(Mismatch(message: "element \(i) is \(a[i]), expected \(b[i]) (abs error \(err))"))
            }
            worst = max(worst, err)
        }
        return .success(worst)
    }
}
