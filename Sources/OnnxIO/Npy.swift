import Foundation

/// NumPy `.npy` files (format versions 1.0, 2.0 and 3.0): little-endian float32, float64, int64,
/// int32, uint8 and bool, C order. Fortran order and big-endian data are refused with a clear error.
public enum Npy {
    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    static let descriptors: [(String, DataType)] = [
        ("<f4", .float), ("<f8", .double), ("<i8", .int64), ("<i4", .int32), ("|u1", .uint8), ("|b1", .bool),
        ("<u1", .uint8), ("|i1", .int8), ("<i2", .int16), ("<u2", .uint16), ("<f2", .float16),
    ]

    public static func read(_ url: URL) throws -> Tensor {
        try decode(readFile(url, what: ".npy"), file: url.path)
    }

    public static func decode(_ data: Data, file: String = "<memory>") throws -> Tensor {
        let bytes = [UInt8](data.prefix(12))
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw OnnxError(.malformed, file: file, "not a .npy file (no \\x93NUMPY magic)")
        }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw OnnxError(.malformed, file: file, "truncated .npy header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default:
            throw OnnxError(.unsupported, file: file, ".npy format version \(major).\(bytes[7]) is not supported (1.0-3.0 are)")
        }
        guard data.count >= headerStart + headerLength else { throw OnnxError(.malformed, file: file, "truncated .npy header") }
        let base = data.startIndex
        let header = String(decoding: data[(base + headerStart)..<(base + headerStart + headerLength)], as: UTF8.self)

        guard let descr = field("descr", in: header), let order = field("fortran_order", in: header),
              let shapeText = field("shape", in: header) else {
            throw OnnxError(.malformed, file: file, "the .npy header lacks descr, fortran_order or shape: \(header)")
        }
        if order.hasPrefix("True") {
            throw OnnxError(.unsupported, file: file, "Fortran-ordered arrays are not supported; save with np.ascontiguousarray")
        }
        if descr.hasPrefix(">") {
            throw OnnxError(.unsupported, file: file, "big-endian data (\(descr)) is not supported; convert with arr.astype('<...')")
        }
        guard let type = descriptors.first(where: { $0.0 == descr })?.1 else {
            throw OnnxError(.unsupported, file: file, "element type '\(descr)' is not supported (float32/64, int32/64, uint8, bool are)")
        }
        let inner = shapeText.drop { $0 != "(" }.dropFirst().prefix { $0 != ")" }
        var dims: [Int] = []
        for part in inner.split(separator: ",") {
            let trimmed = part.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let d = Int(trimmed), d >= 0 else { throw OnnxError(.malformed, file: file, "bad shape \(shapeText) in .npy header") }
            dims.append(d)
        }
        // The header's size, overflow-checked, must be exactly what the file holds after it.
        let start = headerStart + headerLength
        var count = 1
        for d in dims {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else {
                throw OnnxError(.invalidTensor, file: file, "shape \(dims) in the .npy header has more elements than can be counted; the file has \(data.count - start) bytes of data")
            }
            count = product
        }
        guard let needed = type.byteCount(elements: count) else {
            throw OnnxError(.invalidTensor, file: file, "shape \(dims) of \(type) in the .npy header needs more bytes than can be counted; the file has \(data.count - start)")
        }
        guard data.count - start == needed else {
            throw OnnxError(.invalidTensor, file: file, "the .npy data has \(data.count - start) bytes but shape \(dims) of \(type) needs \(needed)")
        }
        return Tensor(dataType: type, dims: dims, data: Data(data[(base + start)...]))
    }

    /// Value text of `'key': value` in the header dict (descr's quotes removed).
    static func field(_ key: String, in header: String) -> String? {
        guard let r = header.range(of: "'\(key)':") else { return nil }
        let rest = header[r.upperBound...].drop { $0 == " " }
        if rest.first == "'" { return String(rest.dropFirst().prefix { $0 != "'" }) }
        if rest.first == "(" { return String(rest.prefix { $0 != ")" }) + ")" }
        return String(rest.prefix { $0 != "," && $0 != "}" })
    }

    public static func encode(_ tensor: Tensor) throws -> Data {
        guard let descr = descriptors.first(where: { $0.1 == tensor.dataType })?.0 else {
            throw OnnxError(.unsupported, file: tensor.name, "cannot write element type \(tensor.dataType) to .npy")
        }
        let shape = tensor.dims.count == 1 ? "(\(tensor.dims[0]),)" : "(" + tensor.dims.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
        // Pad with spaces so the data starts on a 64-byte boundary; the header ends with a newline.
        let total = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
        var out = Data(magic + [1, 0, UInt8(header.utf8.count & 0xff), UInt8(header.utf8.count >> 8)])
        out.append(Data(header.utf8))
        out.append(tensor.data)
        return out
    }

    public static func write(_ tensor: Tensor, to url: URL) throws {
        do { try encode(tensor).write(to: url, options: .atomic) } catch let e as OnnxError { throw e } catch {
            throw OnnxError(.io, file: url.path, "cannot write: \(error.localizedDescription)")
        }
    }
}

extension Tensor {
    /// Reads a tensor file by extension: `.npy` or `.pb` (TensorProto).
    public init(file url: URL) throws {
        switch url.pathExtension.lowercased() {
        case "npy": self = try Npy.read(url)
        case "pb": try self.init(protobufFile: url)
        default: throw OnnxError(.unsupported, file: url.path, "unknown tensor file type; use .npy or .pb")
        }
    }
}
