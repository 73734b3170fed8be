import Foundation

/// The process's peak resident memory. On Linux it is VmHWM from /proc/self/status:
/// getrusage(RUSAGE_SELF).ru_maxrss survives exec, so a bench started from a large Python process
/// would report the parent's peak (525 MiB instead of 28).
enum PeakMemory {
    static func mebibytes() -> Double {
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
           let kib = Double(line.dropFirst("VmHWM:".count).split(whereSeparator: \.isWhitespace).first ?? "") {
            return kib / 1024
        }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}
