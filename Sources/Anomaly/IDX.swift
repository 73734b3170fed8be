import CZlib
import Foundation
import OnnxIO

/// An error about input data (datasets, images, indexes); the CLI prints it as is.
public struct DataError: Error, CustomStringConvertible {
    public var file: String
    public var message: String
    public init(file: String, _ message: String) { self.file = file; self.message = message }
    public var description: String { file.isEmpty ? message : "\(file): \(message)" }
}

/// IDX files (the MNIST format): a big-endian header (magic with the element type and rank,
/// then each dimension) followed by the data. Gzip-compressed files are read transparently.
///
/// The header is read and checked first (rank, overflow-checked size, a limit), then exactly the
/// promised number of bytes, then the file must end: a small gzip file cannot inflate to gigabytes
/// behind a bogus header, and a plain file's size is compared with the header before any allocation.
public struct IDXFile {
    public var dims: [Int]
    public var bytes: Data

    /// The default limit on the data size (1 GiB); readers of images pass a tighter one.
    public static let defaultMaxBytes = 1 << 30

    /// Reads an IDX file of unsigned bytes (type 0x08), gzip-compressed or plain, of rank `rank` when given.
    public init(contentsOf url: URL, rank: Int? = nil, maxBytes: Int = IDXFile.defaultMaxBytes) throws {
        let file = try RegularFile(path: url.path, what: "IDX")
        let isGzip = try file.read(count: min(2, file.size)) == Data([0x1f, 0x8b])
        // zlib reads plain files as they are ("transparent" mode), so one streaming path serves both.
        let fd = dup(file.descriptor)
        guard fd >= 0, let gz = gzdopen(fd, "rb") else {
            if fd >= 0 { close(fd) }
            throw DataError(file: url.path, "cannot open for reading")
        }
        defer { gzclose(gz) }
        var stream = GzipStream(gz: gz, file: url.path)
        try self.init(file: url.path, rank: rank, maxBytes: maxBytes, plainSize: isGzip ? nil : file.size) { try stream.read($0) }
    }

    /// Parses IDX bytes already in memory.
    public init(data: Data, file: String, rank: Int? = nil, maxBytes: Int = IDXFile.defaultMaxBytes) throws {
        var position = data.startIndex
        try self.init(file: file, rank: rank, maxBytes: maxBytes, plainSize: data.count) { n in
            let end = data.index(position, offsetBy: min(n, data.endIndex - position))
            defer { position = end }
            return data.subdata(in: position..<end)
        }
    }

    /// `read(n)` returns the next `n` bytes, fewer only at the end. `plainSize`: the total size when known
    /// without decompressing, to refuse a short or long file before reading its data.
    private init(file: String, rank expectedRank: Int?, maxBytes: Int, plainSize: Int?, read: (Int) throws -> Data) throws {
        let magic = [UInt8](try read(4))
        guard magic.count == 4 else { throw DataError(file: file, "too short for an IDX header (\(magic.count) bytes)") }
        guard magic[0] == 0, magic[1] == 0 else { throw DataError(file: file, "not an IDX file (bad magic \(magic))") }
        guard magic[2] == 0x08 else { throw DataError(file: file, "IDX element type 0x\(String(magic[2], radix: 16)) is not supported (unsigned bytes are)") }
        let rank = Int(magic[3])
        guard rank >= 1, rank <= 4 else { throw DataError(file: file, "IDX rank \(rank) is not supported (1 to 4 are)") }
        if let expectedRank, rank != expectedRank {
            throw DataError(file: file, "IDX file of rank \(rank); expected rank \(expectedRank)" + (expectedRank == 3 ? " (images: N, H, W)" : ""))
        }
        let header = [UInt8](try read(4 * rank))
        guard header.count == 4 * rank else { throw DataError(file: file, "IDX header with rank \(rank) is truncated") }
        dims = (0..<rank).map { i in header[4 * i..<4 * i + 4].reduce(0) { $0 << 8 | Int($1) } }
        // Each dim is below 2^32, so a product of up to four can overflow Int: check every step.
        var count = 1
        for d in dims {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, product <= maxBytes else {
                throw DataError(file: file, "IDX dims \(dims) describe more than \(maxBytes) bytes, the most Kizuki reads here")
            }
            count = product
        }
        if let plainSize, plainSize - (4 + 4 * rank) != count {
            throw DataError(file: file, "IDX dims \(dims) need \(count) bytes of data, the file has \(plainSize - (4 + 4 * rank))")
        }
        bytes = try read(count)
        guard bytes.count == count else {
            throw DataError(file: file, "IDX dims \(dims) need \(count) bytes of data, the file has \(bytes.count)")
        }
        guard try read(1).isEmpty else {
            throw DataError(file: file, "the file goes on after the \(count) bytes of data its IDX dims \(dims) need")
        }
    }

    /// The header as stored (magic, rank, big-endian dims), e.g. to checksum a file as it was.
    var headerBytes: Data {
        Data([0, 0, 0x08, UInt8(dims.count)] + dims.flatMap { d in (0..<4).map { UInt8(truncatingIfNeeded: d >> (24 - 8 * $0)) } })
    }
}

/// Sequential reads through zlib, growing the result chunk by chunk: a header that promises
/// more than the stream holds costs only what the stream holds.
private struct GzipStream {
    let gz: gzFile
    let file: String

    mutating func read(_ n: Int) throws -> Data {
        var out = Data()
        var chunk = [UInt8](repeating: 0, count: min(n, 1 << 20))
        while out.count < n {
            let want = min(chunk.count, n - out.count)
            let got = chunk.withUnsafeMutableBytes { gzread(gz, $0.baseAddress, UInt32(want)) }
            var code: Int32 = 0
            let message = gzerror(gz, &code).map { String(cString: $0) } ?? ""
            // A truncated stream reads short with Z_BUF_ERROR; corrupt data fails with Z_DATA_ERROR.
            if got < 0 || (code != Z_OK && code != Z_STREAM_END) {
                throw DataError(file: file, "corrupt or truncated gzip data: \(message)")
            }
            if got == 0 { break }
            out.append(contentsOf: chunk[0..<Int(got)])
        }
        return out
    }
}
