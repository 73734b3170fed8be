import Foundation

/// A file a command will write, checked before any work starts and written atomically.
///
/// Checked: the folder exists; the path is not a folder, a FIFO or a device; it is none of the command's
/// inputs (`index --out model.onnx`); and an existing file there is of the kind being written, so a
/// mistyped path never clobbers a model or images (delete the file to replace it with another kind).
/// Written: into a temporary file in the same folder, flushed, then renamed over the path, so an
/// interrupted or failed write leaves the old file (or none), never half a file.
struct OutputFile {
    /// What a command writes, recognised by the first bytes of an existing file.
    enum Kind: String {
        case npy = ".npy array"
        case index = "Kizuki anchor index (.kzi)"
        case thresholdJSON = "threshold JSON file"
        case html = "HTML report"

        func matches(_ head: Data) -> Bool {
            switch self {
            case .npy: return head.starts(with: [0x93] + Array("NUMPY".utf8))
            case .index: return head.starts(with: Data("KZI".utf8))
            // calibrate writes sorted keys, so its files open with "calibratedOn".
            case .thresholdJSON: return String(decoding: head, as: UTF8.self).filter { !$0.isWhitespace }.hasPrefix(#"{"calibratedOn""#)
            case .html: return String(decoding: head.prefix(64), as: UTF8.self).lowercased()
                .trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("<!doctype html")
            }
        }
    }

    let path: String
    let kind: Kind

    /// `option` names the flag in messages; `inputs` are what the command reads (or writes elsewhere), each
    /// with how to name it: [("the model", model), ("--images", images)].
    init(_ path: String, kind: Kind, option: String, inputs: [(role: String, path: String)] = []) throws {
        guard !path.isEmpty else { throw FileError(.write, path: "''", reason: "\(option) needs a file name") }
        guard !path.hasSuffix("/") else { throw FileError(.write, path: path, reason: "\(option) names a folder (it ends with '/'); give a file name") }
        self.path = path
        self.kind = kind
        if let problem = FileError.diagnose(.write, path: path) { throw FileError(.write, path: path, reason: problem) }
        for input in inputs where OutputFile.sameFile(path, input.path) {
            throw FileError(.write, path: path, reason: "\(option) is the same file as \(input.role) (\(input.path)); choose another path")
        }
        var info = stat()
        if stat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFREG else {
                throw FileError(.write, path: path, reason: "it exists and is not a regular file (a device, FIFO or socket)")
            }
            let head = try FileAction.read(path) { () throws -> Data in
                let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
                defer { try? handle.close() }
                return try handle.read(upToCount: 64) ?? Data()
            }
            guard head.isEmpty || kind.matches(head) else {
                throw FileError(.write, path: path, reason: "it exists and is not a \(kind.rawValue); refusing to overwrite it (delete it or choose another \(option))")
            }
        }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        guard access(folder, W_OK) == 0 else { throw FileError(.write, path: path, reason: FileError.text(errno: errno)) }
    }

    /// Two paths name the same file: the same device and inode when both exist, else the same
    /// absolute path with symlinks resolved.
    static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        if stat(a, &sa) == 0 && stat(b, &sb) == 0 { return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino }
        let ua = URL(fileURLWithPath: a).standardizedFileURL.resolvingSymlinksInPath()
        let ub = URL(fileURLWithPath: b).standardizedFileURL.resolvingSymlinksInPath()
        return ua.path == ub.path
    }

    func write(_ data: Data) throws {
        try write { url in try data.write(to: url) }
    }

    /// Lets `produce` write a temporary file in the same folder, then renames it over the path.
    func write(with produce: (URL) throws -> Void) throws {
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent().path
        // A hidden name next to the target, so rename(2) stays within one file system.
        var template = Array("\(folder)/.\(url.lastPathComponent.prefix(64)).XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { throw FileError(.write, path: path, reason: FileError.text(errno: errno)) }
        let temp = String(cString: template)
        close(fd)
        var committed = false
        defer { if !committed { unlink(temp) } }
        do { try produce(URL(fileURLWithPath: temp)) } catch {
            throw FileError(.write, path: path, reason: "\(FileError.from(error))")
        }
        // mkstemp makes the file private (0600); give it the mode a plain create would (or the old file's).
        var old = stat()
        let mode: mode_t
        if stat(path, &old) == 0 { mode = old.st_mode & 0o7777 } else {
            let mask = umask(0o022)
            umask(mask)
            mode = 0o666 & ~mask
        }
        chmod(temp, mode)
        let sync = open(temp, O_RDONLY)
        if sync >= 0 { fsync(sync); close(sync) }
        guard rename(temp, path) == 0 else { throw FileError(.write, path: path, reason: FileError.text(errno: errno)) }
        committed = true
    }
}
