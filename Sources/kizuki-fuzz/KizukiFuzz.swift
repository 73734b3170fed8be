import ArgumentParser
import Foundation

/// kizuki-fuzz: hostile inputs through the whole pipeline. The supervisor (`kizuki-fuzz run`)
/// makes the corpus, then runs trials in child processes until its budget is spent: mutated
/// models through a driver (`kizuki-fuzz drive`: load → Session → plan → run), mutated .npy,
/// .kzi, IDX, gzip IDX and PNG files through the `kizuki` binary. A child that dies of a signal
/// or an unexpected exit code, hangs, or passes the memory cap is a finding; its input is saved.
@main
struct KizukiFuzz: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kizuki-fuzz",
        abstract: "Fuzz Kizuki's model and data readers, engine and CLI; fails when anything crashes, hangs or blows up memory.",
        subcommands: [Supervise.self, Drive.self],
        defaultSubcommand: Supervise.self
    )
}

/// What a trial feeds: a model, or one of the data files the CLI reads.
enum TrialKind: String, CaseIterable, Comparable {
    case model, npy, kzi, idx, idxGzip = "idx.gz", png

    var ordinal: Int { Self.allCases.firstIndex(of: self)! }
    static func < (a: TrialKind, b: TrialKind) -> Bool { a.ordinal < b.ordinal }
}

/// How a trial ended when it did not kill its process.
enum Outcome: String {
    case success = "ok"
    /// A clean error (thrown, or the CLI's exit 1 / usage exit 64).
    case refused
    /// The model loaded, but its declared inputs are larger than the harness feeds.
    case notRun = "notrun"
}

struct FuzzError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}
