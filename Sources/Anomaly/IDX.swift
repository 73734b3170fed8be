import CZlib
import Foundation

/// An error about input data (datasets, images, indexes); the CLI prints it as is.
public struct DataError: Error, CustomStringConvertible {
    public var file: String
    public var message: String
    public init(file: String, _ message: String) { self.file = file; self.message = message }
    public var description: String { file.isEmpty ? message : "\(file): \(message)" }
}

/// IDX files (the MNIST format): a big-endian header (magic with the element type and rank,
/// then each dimension) followed by the data. Gzip-compressed files are read transparently.
public struct IDXFile {
    public var dims: [Int]
    public var bytes: Data

    /// Reads an IDX file of unsigned bytes (type 0x08), gzip-compressed or plain.
    public init(contentsOf url: URL) throws {
        let raw = try IDXFile.decompressedContents(of: url)
        try self.init(data: raw, file: url.path)
    }

    public init(data raw: Data, file: String) throws {
        guard raw.count >= 4 else { throw DataError(file: file, "too short for an IDX header (\(raw.count) bytes)") }
        let b = [UInt8](raw.prefix(4))
        guard b[0] == 0, b[1] == 0 else { throw DataError(file: file, "not an IDX file (bad magic \(b))") }
        guard b[2] == 0x08 else { throw DataError(file: file, "IDX element type 0x\(String(b[2], radix: 16)) is not supported (unsigned bytes are)") }
        let rank = Int(b[3])
        guard rank >= 1, rank <= 4, raw.count >= 4 + 4 * rank else { throw DataError(file: file, "IDX header with rank \(rank) is truncated") }
        let header = [UInt8](raw.prefix(4 + 4 * rank))
        dims = (0..<rank).map { i in
            header[4 + 4 * i..<8 + 4 * i].reduce(0) { $0 << 8 | Int($1) }
        }
        let count = dims.reduce(1, *)
        let payload = raw.count - (4 + 4 * rank)
        guard payload == count else {
            throw DataError(file: file, "IDX dims \(dims) need \(count) bytes of data, the file has \(payload)")
        }
        bytes = raw.subdata(in: (raw.startIndex + 4 + 4 * rank)..<raw.endIndex)
    }

    /// The file's bytes, gunzipped when they start with the gzip magic.
    public static func decompressedContents(of url: URL) throws -> Data {
        guard let handle = FileHandle(forReadingAtPath: url.path) else { throw DataError(file: url.path, "cannot open (missing?)") }
        let head = (try? handle.read(upToCount: 2)) ?? Data()
        try? handle.close()
        if head != Data([0x1f, 0x8b]) {
            do { return try Data(contentsOf: url) } catch { throw DataError(file: url.path, "cannot read: \(error.localizedDescription)") }
        }
        guard let gz = gzopen(url.path, "rb") else { throw DataError(file: url.path, "cannot open gzip file") }
        defer { gzclose(gz) }
        var out = Data()
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { gzread(gz, $0.baseAddress, UInt32($0.count)) }
            if n < 0 {
                var code: Int32 = 0
                let message = gzerror(gz, &code).map { String(cString: $0) } ?? "unknown"
                throw DataError(file: url.path, "corrupt gzip data: \(message)")
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<Int(n)])
        }
        // gzread stops quietly at a truncated stream; gzeof tells whether the end was real.
        if gzeof(gz) == 0 { throw DataError(file: url.path, "truncated gzip data") }
        var code: Int32 = 0
        _ = gzerror(gz, &code)
        if code != Z_OK && code != Z_STREAM_END { throw DataError(file: url.path, "corrupt or truncated gzip data") }
        return out
    }
}
