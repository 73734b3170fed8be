import CPNG
import OnnxIO
import Foundation

/// PNG in and out through libpng's simplified API: any 8-bit PNG read as grey, grey images written.
/// Files are opened as regular files only (a FIFO named *.png would block), and the header (IHDR)
/// is read and checked before anything is decoded.
public enum PNG {
    /// The largest image decoded: 64 Mpixels, a bound on what one bogus header can cost.
    public static let maxPixels = 1 << 26

    /// Height and width from the header alone; no pixel is decoded.
    public static func size(_ url: URL) throws -> (height: Int, width: Int) {
        try withHeader(url) { image, h, w in (h, w) }
    }

    /// Reads a PNG file as 8-bit grey (RGB is converted by libpng with its standard weights).
    public static func readGray(_ url: URL) throws -> (height: Int, width: Int, pixels: [UInt8]) {
        try withHeader(url) { image, h, w in
            image.format = UInt32(PNG_FORMAT_GRAY)
            var pixels = [UInt8](repeating: 0, count: w * h)
            let ok = pixels.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, Int32(w), nil) }
            guard ok != 0 else { throw DataError(file: url.path, "corrupt PNG: \(message(image))") }
            return (h, w, pixels)
        }
    }

    /// Opens `url`, reads its header through libpng and checks the size, then runs `body` with the image
    /// ready to decode, its height and its width.
    private static func withHeader<R>(_ url: URL, _ body: (inout png_image, Int, Int) throws -> R) throws -> R {
        let file = try RegularFile(path: url.path, what: "PNG")
        let fd = dup(file.descriptor)
        guard fd >= 0, let stream = fdopen(fd, "rb") else {
            if fd >= 0 { close(fd) }
            throw DataError(file: url.path, "cannot open for reading")
        }
        defer { fclose(stream) }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        guard png_image_begin_read_from_stdio(&image, stream) != 0 else {
            throw DataError(file: url.path, "not a readable PNG: \(message(image))")
        }
        defer { png_image_free(&image) }
        let (w, h) = (Int(image.width), Int(image.height))
        guard w > 0, h > 0, !w.multipliedReportingOverflow(by: h).overflow, w * h <= maxPixels else {
            throw DataError(file: url.path, "PNG of \(w)x\(h) pixels is not supported (at most \(maxPixels) pixels)")
        }
        return try body(&image, h, w)
    }

    /// Encodes an 8-bit grey image as PNG bytes.
    public static func encodeGray(height: Int, width: Int, pixels: [UInt8]) throws -> Data {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = UInt32(PNG_FORMAT_GRAY)
        var size = 0
        _ = pixels.withUnsafeBytes { png_image_write_to_memory(&image, nil, &size, 0, $0.baseAddress, Int32(width), nil) }
        var out = Data(count: size)
        let ok = out.withUnsafeMutableBytes { dst in
            pixels.withUnsafeBytes { png_image_write_to_memory(&image, dst.baseAddress, &size, 0, $0.baseAddress, Int32(width), nil) }
        }
        guard ok != 0 else { throw DataError(file: "", "PNG encoding failed: \(message(image))") }
        return out.prefix(size)
    }

    static func message(_ image: png_image) -> String {
        withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}
