import Foundation

/// A file-system failure as users should read it: the action, the path, and why, in one line
/// ("cannot write out/e.npy: folder out does not exist"), never an NSError dump.
struct FileError: Error, CustomStringConvertible {
    var action: FileAction
    var path: String
    var reason: String
    /// What the path was given as, when that helps: "the model", "--images".
    var role: String?

    var description: String { "cannot \(action.rawValue) \(path)\(role.map { " (\($0))" } ?? ""): \(reason)" }

    init(_ action: FileAction, path: String, reason: String, role: String? = nil) {
        self.action = action
        self.path = path
        self.reason = reason
        self.role = role
    }

    /// The reason for `underlying`, preferring what the file system shows now (a missing folder, a file
    /// where a folder should be) over the error's code, which Foundation reports inconsistently.
    init(_ action: FileAction, path: String, underlying: Error?) {
        self.action = action
        self.path = path
        reason = FileError.diagnose(action, path: path)
            ?? underlying.flatMap(FileError.posixCode).map(FileError.text(errno:))
            ?? underlying.map { ($0 as NSError).localizedDescription }
            ?? "failed"
    }

    /// A Foundation or POSIX error that names a path becomes a FileError; the action follows from
    /// Foundation's code ranges (256–511 reading, 512–1023 writing). Anything else is left as it is.
    static func from(_ error: Error) -> Error {
        if error is FileError { return error }
        let ns = error as NSError
        guard ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain else { return error }
        let path = ns.userInfo[NSFilePathErrorKey] as? String ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
        guard let path else { return error }
        let action: FileAction = ns.domain == NSCocoaErrorDomain && (512..<1024).contains(ns.code) ? .write : .read
        return FileError(action, path: path, underlying: error)
    }

    /// What is visibly wrong with `path` for this action, if anything.
    static func diagnose(_ action: FileAction, path: String) -> String? {
        let fm = FileManager.default
        var isFolder: ObjCBool = false
        let exists = fm.fileExists(atPath: path, isDirectory: &isFolder)
        switch action {
        case .read:
            if !exists { return blockingAncestor(of: path) ?? "no such file" }
            if isFolder.boolValue { return "it is a folder, not a file" }
            // A FIFO or device could block or never end.
            var info = stat()
            if stat(path, &info) == 0 && info.st_mode & S_IFMT != S_IFREG { return "not a regular file (a FIFO, device or socket)" }
        case .write:
            if exists && isFolder.boolValue { return "it is a folder" }
            if !exists, let problem = blockingAncestor(of: path) { return problem }
        case .createFolder:
            if exists && !isFolder.boolValue { return "a file is in the way" }
            if !exists, let problem = blockingAncestor(of: path, missingIsFine: true) { return problem }
        case .list:
            if !exists { return blockingAncestor(of: path) ?? "no such folder" }
            if !isFolder.boolValue { return "it is a file, not a folder" }
        }
        return nil
    }

    /// The nearest ancestor of `path` that is missing or is a file, as a reason; nil when its parent is a folder.
    static func blockingAncestor(of path: String, missingIsFine: Bool = false) -> String? {
        var parent = URL(fileURLWithPath: path).deletingLastPathComponent()
        var missing: URL?
        while true {
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: parent.path, isDirectory: &isFolder) {
                if !isFolder.boolValue { return "\(parent.path) is a file, not a folder" }
                break
            }
            missing = parent
            let up = parent.deletingLastPathComponent()
            if up.path == parent.path { break }
            parent = up
        }
        guard let missing, !missingIsFine else { return nil }
        return "folder \(missing.path) does not exist"
    }

    /// The POSIX error number inside a Foundation error (directly, or as its underlying error).
    static func posixCode(_ error: Error) -> Int32? {
        let ns = error as NSError
        if ns.domain == NSPOSIXErrorDomain { return Int32(truncatingIfNeeded: ns.code) }
        if let inner = ns.userInfo[NSUnderlyingErrorKey] as? Error { return posixCode(inner) }
        guard ns.domain == NSCocoaErrorDomain else { return nil }
        switch CocoaError.Code(rawValue: ns.code) {
        case .fileNoSuchFile, .fileReadNoSuchFile: return ENOENT
        case .fileReadNoPermission, .fileWriteNoPermission: return EACCES
        case .fileWriteOutOfSpace: return ENOSPC
        case .fileWriteVolumeReadOnly: return EROFS
        case .fileWriteFileExists: return EEXIST
        case .fileWriteInvalidFileName: return ENAMETOOLONG
        default: return nil
        }
    }

    /// Plain words for the error numbers users meet; strerror's text otherwise.
    static func text(errno code: Int32) -> String {
        switch code {
        case EACCES, EPERM: return "permission denied"
        case ENOENT: return "no such file or folder"
        case ENOSPC: return "no space left on the device"
        case EDQUOT: return "disk quota exceeded"
        case EROFS: return "the file system is read-only"
        case EEXIST: return "a file is in the way"
        case EISDIR: return "it is a folder"
        case ENOTDIR: return "a part of the path is a file, not a folder"
        case ENAMETOOLONG: return "the name is too long"
        default: return String(cString: strerror(code)).lowercased()
        }
    }
}

/// What the CLI was doing with a path; calling it runs the work and names any file-system failure.
///     let data = try FileAction.read(path) { try Data(contentsOf: url) }
enum FileAction: String {
    case read
    case write
    case createFolder = "create folder"
    case list = "list the folder"

    func callAsFunction<T>(_ path: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as FileError { throw error } catch {
            let domain = (error as NSError).domain
            guard domain == NSCocoaErrorDomain || domain == NSPOSIXErrorDomain else { throw error }
            throw FileError(self, path: path, underlying: error)
        }
    }

    /// Refuses an input path that cannot be what `option` names, before any reader opens it: missing,
    /// empty, a folder where a file is needed, or a FIFO or device (which would block or never end).
    static func checkInput(_ path: String, option: String, folderAllowed: Bool = false) throws {
        guard !path.isEmpty else { throw FileError(.read, path: "''", reason: "an empty path", role: option) }
        var isFolder: ObjCBool = false
        if folderAllowed && FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) && isFolder.boolValue { return }
        if let problem = FileError.diagnose(.read, path: path) { throw FileError(.read, path: path, reason: problem, role: option) }
    }
}

/// Any error as one line for users: file-system errors name the path and the action, other Foundation
/// errors give their description, never the NSError dump.
func userMessage(for error: Error) -> String {
    let mapped = FileError.from(error)
    if mapped is FileError { return "\(mapped)" }
    let ns = error as NSError
    if ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain { return ns.localizedDescription }
    return "\(error)"
}
