import Foundation

/// A one-line progress bar on stderr, shown only when stderr is a terminal and not --quiet.
struct Progress {
    let label: String
    let enabled: Bool
    let start = DispatchTime.now().uptimeNanoseconds

    init(_ label: String, quiet: Bool) {
        self.label = label
        enabled = !quiet && isatty(STDERR_FILENO) != 0
    }

    func update(_ done: Int, _ total: Int) {
        guard enabled, total > 0 else { return }
        let width = 30
        let filled = width * done / total
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        FileHandle.standardError.write(Data(String(format: "\r%@ [%@] %d/%d  %.0f img/s ", label, bar, done, total, rate).utf8))
        if done >= total { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    /// A status line (stderr), for steps without a count.
    static func note(_ text: String, quiet: Bool) {
        if !quiet { FileHandle.standardError.write(Data("\(text)\n".utf8)) }
    }
}
