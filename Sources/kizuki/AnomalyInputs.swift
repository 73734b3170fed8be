import Anomaly
import Foundation

// Checks and readers for what the anomaly commands are given, run before any embedding.

/// Refuses k before any embedding when the index has too few anchors (leave-one-out needs k + 1).
func checkAnchors(k: Int, skipSelf: Bool, in index: AnchorIndex, file: String) throws {
    let available = index.header.count - (skipSelf ? 1 : 0)
    guard k <= available else {
        throw DataError(file: file, "k = \(k) needs at least \(skipSelf ? "k + 1" : "k") anchors; the index has \(index.header.count)")
    }
}

extension Threshold {
    /// A threshold file written by `calibrate --out`, named in every error.
    static func read(_ path: String) throws -> Threshold {
        let t: Threshold
        do { t = try JSONDecoder().decode(Threshold.self, from: FileAction.contents(of: path, limit: 1 << 20)) } catch let e as FileError { throw e } catch {
            throw DataError(file: path, "not a threshold file written by `kizuki calibrate --out` (\(decodingProblem(error)))")
        }
        guard t.value.isFinite else { throw DataError(file: path, "the threshold \(t.value) is not a finite number") }
        return t
    }
}

/// The gist of a JSON decoding error: which field, and what was wrong, without Swift's debug dump.
func decodingProblem(_ error: Error) -> String {
    func at(_ path: [CodingKey]) -> String { path.isEmpty ? "" : " at '" + path.map(\.stringValue).joined(separator: ".") + "'" }
    switch error as? DecodingError {
    case .keyNotFound(let key, let c)?: return "field '\(key.stringValue)' missing\(at(c.codingPath))"
    case .typeMismatch(_, let c)?, .valueNotFound(_, let c)?: return "wrong value\(at(c.codingPath)): \(c.debugDescription)"
    case .dataCorrupted(let c)?: return "invalid JSON\(at(c.codingPath))"
    default: return userMessage(for: error)
    }
}

extension FileAction {
    /// sha256 of a file, read in chunks (a model can be large), as Embedder.modelSHA256 gives it.
    static func sha256(of path: String) throws -> String {
        if let problem = FileError.diagnose(.read, path: path) { throw FileError(.read, path: path, reason: problem) }
        return try read(path) {
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            var hash = SHA256()
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hash.update(chunk) }
            return hash.finalize().map { String(format: "%02x", $0) }.joined()
        }
    }
}
