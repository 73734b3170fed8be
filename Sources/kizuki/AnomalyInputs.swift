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
