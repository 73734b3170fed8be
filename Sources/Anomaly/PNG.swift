import CPNG
import Foundation

/// PNG in and out through libpng's simplified API: any 8-bit PNG read as grey, grey images written.
public enum PNG {
    /// Reads a PNG file as 8-bit grey (RGB is converted by libpng with its standard weights).
    public static func readGray(_ url: URL) throws -> (height: Int, width: Int, pixels: [UInt8]) {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        guard png_image_begin_read_from_file(&image, url.path) != 0 else {
            throw DataError(file: url.path, "not a readable PNG: \(message(image))")
        }
        image.format = UInt32(PNG_FORMAT_GRAY)
        let (w, h) = (Int(image.width), Int(image.height))
        guard w > 0, h > 0, w * h <= 1 << 26 else {
            png_image_free(&image)
            throw DataError(file: url.path, "PNG of \(w)x\(h) pixels is not supported")
        }
        var pixels = [UInt8](repeating: 0, count: w * h)
        let ok = pixels.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, Int32(w), nil) }
        guard ok != 0 else {
            let why = message(image)
            png_image_free(&image)
            throw DataError(file: url.path, "corrupt PNG: \(why)")
        }
        return (h, w, pixels)
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
