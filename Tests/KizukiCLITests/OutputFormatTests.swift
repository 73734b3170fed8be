import Foundation
import XCTest

/// What the CLI prints and writes stays parseable whatever the names: score's CSV (RFC 4180) and JSON
/// lines, and run's output files.
final class OutputFormatTests: CLITestCase {
    /// File names a careless or hostile user could give images: every character CSV or JSON must escape.
    static let hostileNames = [
        "plain.png", "comma,name.png", "quote\"name.png", "back\\slash.png", "new\nline.png", "cr\rlf\r\n.png",
        "tab\tname.png", "bell\u{07}esc\u{1B}nul-less\u{01}.png", "日本語 é ü.png", " leading space.png", "\",\".png",
    ]

    /// RFC 4180, strictly: fields separated by commas, records by LF or CRLF; a quoted field may hold
    /// commas, line breaks and doubled quotes; an unquoted field may hold no quote. Throws on anything else.
    func parseCSV(_ text: String) throws -> [[String]] {
        struct Malformed: Error { let at: Int }
        let chars = Array(text.unicodeScalars)
        var records: [[String]] = [], record: [String] = [], field = "", i = 0
        while i < chars.count {
            if chars[i] == "\"" {
                guard field.isEmpty else { throw Malformed(at: i) }
                i += 1
                while true {
                    guard i < chars.count else { throw Malformed(at: i) }
                    if chars[i] == "\"" {
                        if i + 1 < chars.count && chars[i + 1] == "\"" { field.unicodeScalars.append("\""); i += 2; continue }
                        i += 1
                        break
                    }
                    field.unicodeScalars.append(chars[i])
                    i += 1
                }
                guard i == chars.count || chars[i] == "," || chars[i] == "\n" || chars[i] == "\r" else { throw Malformed(at: i) }
                continue
            }
            switch chars[i] {
            case ",": record.append(field); field = ""; i += 1
            case "\r" where i + 1 < chars.count && chars[i + 1] == "\n", "\n":
                record.append(field); records.append(record); record = []; field = ""
                i += chars[i] == "\r" ? 2 : 1
            case "\"", "\r": throw Malformed(at: i)
            default: field.unicodeScalars.append(chars[i]); i += 1
            }
        }
        if !field.isEmpty || !record.isEmpty { record.append(field); records.append(record) }
        return records
    }

    func testScoreCSVAndJSONLinesKeepEveryName() throws {
        let folder = try writePNGFolder("images", names: Self.hostileNames)
        let index = path("a.kzi")
        let built = try kizuki("index", Self.seed, "--images", folder, "--out", index, "--quiet")
        XCTAssertEqual(built.status, 0, built.err)

        let csv = try kizuki("score", Self.seed, "--index", index, "--images", folder, "--threshold", "0.5", "--quiet")
        XCTAssertEqual(csv.status, 0, csv.err)
        let rows = try parseCSV(csv.out)
        XCTAssertEqual(rows.first, ["index", "name", "score", "verdict"])
        XCTAssertEqual(rows.count, Self.hostileNames.count + 1, csv.out)
        XCTAssertTrue(rows.allSatisfy { $0.count == 4 }, "\(rows)")
        XCTAssertEqual(Set(rows.dropFirst().map { $0[1] }), Set(Self.hostileNames))
        XCTAssertEqual(rows.dropFirst().map { $0[0] }, (0..<Self.hostileNames.count).map(String.init))
        // Each image is one of the anchors: its distance to the nearest is 0, so "normal".
        XCTAssertTrue(rows.dropFirst().allSatisfy { Double($0[2]) == 0 && $0[3] == "normal" }, "\(rows)")

        let jsonl = try kizuki("score", Self.seed, "--index", index, "--images", folder, "--format", "jsonl", "--quiet")
        XCTAssertEqual(jsonl.status, 0, jsonl.err)
        let lines = jsonl.out.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        XCTAssertEqual(lines.count, Self.hostileNames.count, "one line per image: \(jsonl.out)")
        let objects = try lines.map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], String($0)) }
        XCTAssertEqual(Set(objects.compactMap { $0["name"] as? String }), Set(Self.hostileNames))
        XCTAssertEqual(objects.compactMap { $0["index"] as? Int }, Array(0..<Self.hostileNames.count))
        XCTAssertTrue(objects.allSatisfy { ($0["score"] as? Double) == 0 && $0["verdict"] == nil }, "\(objects)")
    }

    /// Outputs "a/b" and "a_b" both sanitise to a_b: each gets its own file, the same on every run, and
    /// the CLI says which file holds which output, one line each (a newline in a name is escaped).
    func testRunOutputsWithCollidingNamesKeepTheirOwnFiles() throws {
        let model = try makeModel(nodes: [("Relu", "x", "a/b"), ("Identity", "x", "a_b"), ("Relu", "a_b", "A_B"), ("Identity", "a_b", "new\nline")],
                                  outputs: ["a/b", "a_b", "A_B", "new\nline"])
        let x = try writeNpy("x.npy", shape: [1, 4], values: [1, -2, 3, -4])
        for attempt in 0..<2 {
            let r = try kizuki("run", model, "--input", "x=\(x)", "--output-dir", path("out"))
            XCTAssertEqual(r.status, 0, r.err)
            let mapping = Dictionary(uniqueKeysWithValues: r.out.split(separator: "\n").map { line -> (String, String) in
                let parts = line.components(separatedBy: " -> ")
                return (parts[0], String(parts[1].split(separator: " ")[0]))
            })
            XCTAssertEqual(mapping, ["a/b": path("out/a_b.npy"), "a_b": path("out/a_b-2.npy"), "A_B": path("out/A_B-3.npy"),
                                     "new\\u{a}line": path("out/new_line.npy")], "run \(attempt)")
            func floats(_ file: String) throws -> [Float] {
                let data = try Data(contentsOf: URL(fileURLWithPath: file))
                return data.suffix(16).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            }
            XCTAssertEqual(try floats(path("out/a_b.npy")), [1, 0, 3, 0])
            XCTAssertEqual(try floats(path("out/a_b-2.npy")), [1, -2, 3, -4])
            XCTAssertEqual(try floats(path("out/A_B-3.npy")), [1, 0, 3, 0])
        }
    }
}
