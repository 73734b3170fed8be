import ArgumentParser
import Foundation
import Keras

/// libhdf5 1.10 (Debian's) trusts the sizes it finds in a file: one wrong byte in a global heap makes it copy out of
/// bounds and crash. So before the CLI opens a Keras file in its own process, a child process (this binary, the
/// hidden `keras probe` command) reads all of it first; a child killed by a signal, or stuck, means the file is
/// not safe to open, and the command refuses it with an error instead of crashing.
enum KerasFileProbe {
    static let timeout: Double = 300

    static func check(_ path: String) throws {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return }  // no /proc: read in-process as before
        let p = Process()
        p.executableURL = URL(fileURLWithPath: String(cString: buffer))
        p.arguments = ["keras", "probe", path]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let deadline = DispatchTime.now() + timeout
        DispatchQueue.global().asyncAfter(deadline: deadline) { if p.isRunning { p.terminate() } }
        p.waitUntilExit()
        guard p.terminationReason == .uncaughtSignal else { return }  // read, or refused with an error the caller gets too
        let reason = p.terminationStatus == SIGTERM ? "did not finish reading it in \(Int(timeout)) s"
            : "crashed reading it (signal \(p.terminationStatus))"
        throw HDF5Error(path, "libhdf5 \(reason) in a separate process: the file is corrupt")
    }
}

/// `kizuki keras probe FILE`: reads a Keras weight file completely and exits 0, or 1 with an error (see KerasFileProbe).
struct KerasProbe: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "probe", abstract: "Read a Keras weight file completely (internal).",
                                                    shouldDisplay: false)

    @Argument var file: String

    func run() throws {
        do {
            if try Keras3Weights.isKeras3(file: file) { _ = try Keras3Weights(contentsOf: file) } else { _ = try KerasWeights(contentsOf: file) }
        } catch { throw fail(error) }
    }
}
