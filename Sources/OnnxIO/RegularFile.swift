import Foundation

/// A file opened for reading only if it is a regular file. Opening is non-blocking, so a FIFO or a
/// device given where data is expected is refused at once instead of hanging the open or the read;
/// the type and size come from `fstat` on the open descriptor, so what is checked is what is read.
public final class RegularFile {
    public let path: String
    /// Size in bytes when opened.
    public let size: Int
    /// The open descriptor (closed with this object); for readers that stream, e.g. through zlib.
    public let descriptor: Int32

    /// `what` names the expected content in errors ("ONNX model", ".npy"). With `followSymlinks` false a
    /// symlink as the last component is refused (for paths already resolved, so nothing can swap one in).
    public init(path: String, what: String, followSymlinks: Bool = true) throws {
        self.path = path
        let flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | (followSymlinks ? 0 : O_NOFOLLOW)
        let fd = open(path, flags)
        guard fd >= 0 else {
            let code = errno
            switch code {
            case ENOENT: throw OnnxError(.notFound, file: path, "no such \(what) file")
            case ELOOP: throw OnnxError(.io, file: path, "is a symbolic link; refused (expected: \(what))")
            default: throw OnnxError(.io, file: path, "cannot open: \(String(cString: strerror(code)))")
            }
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            close(fd)
            throw OnnxError(.io, file: path, "cannot stat: \(String(cString: strerror(code)))")
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR:
            close(fd)
            throw OnnxError(.isDirectory, file: path, "is a folder, not a file (expected: \(what))")
        default:
            close(fd)
            throw OnnxError(.io, file: path, "is not a regular file (a FIFO, socket or device); refused (expected: \(what))")
        }
        descriptor = fd
        size = Int(info.st_size)
    }

    deinit { close(descriptor) }

    /// `count` bytes from `offset`; refuses a range beyond the end (checked without overflow).
    public func read(offset: Int = 0, count: Int) throws -> Data {
        guard offset >= 0, count >= 0, offset <= size, count <= size - offset else {
            throw OnnxError(.io, file: path, "the range \(offset) + \(count) bytes lies beyond the file's \(size) bytes")
        }
        var data = Data(count: count)
        var done = 0
        var failure: Int32 = 0
        data.withUnsafeMutableBytes { buffer in
            while done < count {
                let n = pread(descriptor, buffer.baseAddress! + done, count - done, off_t(offset + done))
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { failure = n < 0 ? errno : 0; break }
                done += n
            }
        }
        guard done == count else {
            let why = failure == 0 ? "the file ended early (changed while reading?)" : String(cString: strerror(failure))
            throw OnnxError(.io, file: path, "read \(done) of \(count) bytes at offset \(offset): \(why)")
        }
        return data
    }

    /// The whole file.
    public func readAll() throws -> Data { try read(count: size) }
}

/// Reads a whole regular file, turning the usual failures into errors that name it.
func readFile(_ url: URL, what: String) throws -> Data {
    let data = try RegularFile(path: url.path, what: what).readAll()
    if data.isEmpty { throw OnnxError(.empty, file: url.path, "the \(what) file is empty") }
    return data
}
