import ArgumentParser
import Foundation

/// How `score` prints one line per image: CSV (RFC 4180) or JSON lines.
enum ScoreFormat: String, ExpressibleByArgument {
    case csv, jsonl

    struct Line: Encodable {
        var index: Int
        var name: String
        var score: Double
        var verdict: String?
    }

    func header(withVerdict: Bool) -> String? {
        self == .csv ? CSV.row(["index", "name", "score"] + (withVerdict ? ["verdict"] : [])) : nil
    }

    func format(_ line: Line) throws -> String {
        switch self {
        case .csv:
            return CSV.row(["\(line.index)", line.name, String(format: "%.6f", line.score)] + (line.verdict.map { [$0] } ?? []))
        case .jsonl:
            // JSONEncoder escapes quotes, backslashes and control characters; keys sorted for a stable order.
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return String(decoding: try encoder.encode(line), as: UTF8.self)
        }
    }
}

/// RFC 4180 fields: a field with a comma, a double quote, CR or LF is enclosed in double quotes,
/// its double quotes doubled.
enum CSV {
    static func field(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    static func row(_ fields: [String]) -> String { fields.map(field).joined(separator: ",") }
}
