import Foundation
import XCTest
@testable import Engine

/// Every case named in allowlist.txt must pass against ONNX's own backend test data.
/// Format: `## OpType` sections; a case name per line, optionally `tol=RTOL,ATOL` and `# why`;
/// `!case  # reason` lines record exclusions (not run).
final class AllowListTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let data = root.appendingPathComponent(".cache/onnx-conformance")

    struct Entry { let name: String; let tolerance: Conformance.Tolerance }

    static func entries() throws -> [Entry] {
        let text = try String(contentsOf: root.appendingPathComponent("Tests/ConformanceTests/allowlist.txt"), encoding: .utf8)
        var out: [Entry] = []
        for raw in text.split(separator: "\n") {
            let line = raw.split(separator: "#", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            if line.isEmpty || raw.hasPrefix("#") || raw.hasPrefix("!") { continue }
            let parts = line.split(separator: " ").map(String.init)
            var tolerance = Conformance.Tolerance()
            for p in parts.dropFirst() where p.hasPrefix("tol=") {
                let values = p.dropFirst(4).split(separator: ",").compactMap { Double($0) }
                if values.count == 2 { tolerance = .init(rtol: values[0], atol: values[1]) }
            }
            out.append(Entry(name: parts[0], tolerance: tolerance))
        }
        return out
    }

    func testListedCasesPass() throws {
        guard FileManager.default.fileExists(atPath: Self.data.path) else {
            throw XCTSkip("conformance data missing: run `make conformance-data`")
        }
        let entries = try Self.entries()
        XCTAssertGreaterThan(entries.count, 300, "the allow-list looks truncated")
        var folders: [String: URL] = [:]
        for suite in ["node", "pytorch-converted", "pytorch-operator", "simple"] {
            let dir = Self.data.appendingPathComponent(suite)
            for name in (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [] {
                folders[name] = dir.appendingPathComponent(name)
            }
        }
        var failures: [String] = []
        var passed = 0
        for entry in entries {
            guard let folder = folders[entry.name] else { failures.append("\(entry.name): no such case"); continue }
            switch Conformance.run(case: folder, tolerance: entry.tolerance) {
            case .ok: passed += 1
            case .fail(let why): failures.append("\(entry.name): FAIL \(why)")
            case .unsupported(let why): failures.append("\(entry.name): UNSUPPORTED \(why)")
            }
        }
        print("conformance: \(passed) of \(entries.count) listed cases passed")
        XCTAssertEqual(failures, [], failures.joined(separator: "\n"))
    }
}
