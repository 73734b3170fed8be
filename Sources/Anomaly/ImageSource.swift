import Foundation
import OnnxIO

/// Where images come from, as users write it on the command line:
///   fmnist:train:7  fmnist:test:7,9  fmnist:test     a Fashion-MNIST selection (classes optional)
///   path/to/file-idx3-ubyte[.gz]                     an IDX image file
///   path/to/folder/                                  every *.png in the folder, sorted by name
///   path/to/images.npy                               (N,H,W) or (N,H,W,1), uint8 (divided by 255) or float32/64 (taken as is)
public enum ImageSource: Equatable, CustomStringConvertible {
    case fashionMNIST(FashionMNIST.Split, classes: [Int])
    case idx(String)
    case pngFolder(String)
    case npy(String)

    public init(parsing text: String) throws {
        if text.hasPrefix("fmnist:") {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard parts.count >= 2, parts.count <= 3, let split = FashionMNIST.Split(rawValue: parts[1]) else {
                throw DataError(file: "", "bad image source '\(text)': use fmnist:train or fmnist:test, optionally :CLASSES like fmnist:test:7,9")
            }
            var classes: [Int] = []
            if parts.count == 3 {
                for c in parts[2].split(separator: ",") {
                    guard let v = Int(c), (0..<10).contains(v) else {
                        throw DataError(file: "", "bad class '\(c)' in '\(text)': classes are 0...9")
                    }
                    classes.append(v)
                }
            }
            self = .fashionMNIST(split, classes: classes)
            return
        }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: text, isDirectory: &isDir) else {
            throw DataError(file: text, "no such file or folder (image sources: fmnist:SPLIT[:CLASSES], an IDX file, a folder of PNGs, or a .npy)")
        }
        if isDir.boolValue { self = .pngFolder(text) }
        else if text.lowercased().hasSuffix(".npy") { self = .npy(text) }
        else { self = .idx(text) }
    }

    public var description: String {
        switch self {
        case .fashionMNIST(let split, let classes):
            return "fmnist:\(split.rawValue)" + (classes.isEmpty ? "" : ":" + classes.map(String.init).joined(separator: ","))
        case .idx(let p), .pngFolder(let p), .npy(let p): return p
        }
    }

    /// The most pixels one source may hold (256 M, 1 GiB as float32), checked from headers before decoding.
    public static let maxTotalPixels = 1 << 28

    /// Loads the images, checking (or with `resize`, making) their size `height` x `width`. The decoded
    /// pixels (float32) may take at most `memoryLimit` bytes (the engine's budget, `--memory-limit`) and
    /// `maxTotalPixels`; both are checked from headers, before decoding.
    public func load(dataDirectory: String? = nil, height: Int = 28, width: Int = 28,
                     resize: ImageSet.ResizeMode? = nil, memoryLimit: Int = .max) throws -> ImageSet {
        let maxPixels = min(Self.maxTotalPixels, memoryLimit / MemoryLayout<Float>.size)
        let images = try loadRaw(dataDirectory: dataDirectory, expected: resize == nil ? (height, width) : nil, maxPixels: maxPixels)
        guard images.count > 0 else { throw DataError(file: description, "no images") }
        if images.height == height && images.width == width { return images }
        guard let resize else {
            throw DataError(file: description, "images are \(images.height)x\(images.width); the model expects \(height)x\(width) (pass --resize nearest|bilinear to resize)")
        }
        return images.resized(height: height, width: width, mode: resize)
    }

    /// The images as stored. `expected` (height, width), when given, is checked before decoding PNGs.
    func loadRaw(dataDirectory: String?, expected: (height: Int, width: Int)? = nil, maxPixels: Int = maxTotalPixels) throws -> ImageSet {
        switch self {
        case .fashionMNIST(let split, let classes):
            let all = try FashionMNIST.load(split, from: FashionMNIST.directory(dataDirectory))
            if classes.isEmpty { return all }
            return all.subset(all.labels.indices.filter { classes.contains(all.labels[$0]) })
        case .idx(let path):
            let idx = try IDXFile(contentsOf: URL(fileURLWithPath: path), rank: 3, maxBytes: maxPixels)
            return ImageSet(height: idx.dims[1], width: idx.dims[2], bytes: [UInt8](idx.bytes))
        case .pngFolder(let path):
            let files = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.lowercased().hasSuffix(".png") }.sorted()
            guard !files.isEmpty else { throw DataError(file: path, "the folder has no .png files") }
            let urls = files.map { URL(fileURLWithPath: path).appendingPathComponent($0) }
            // Headers first: every size is checked, against the others and the model, before any pixel is decoded.
            var size: (height: Int, width: Int)?
            for url in urls {
                let s = try PNG.size(url)
                if let size, size != s {
                    throw DataError(file: url.path, "is \(s.height)x\(s.width) but earlier images are \(size.height)x\(size.width); all images must share one size")
                }
                if size == nil, let expected, s != expected {
                    throw DataError(file: url.path, "is \(s.height)x\(s.width); the model expects \(expected.height)x\(expected.width) (pass --resize nearest|bilinear to resize)")
                }
                size = s
            }
            guard let size else { throw DataError(file: path, "the folder has no .png files") }
            let (total, overflow) = (size.height * size.width).multipliedReportingOverflow(by: urls.count)
            guard !overflow, total <= maxPixels else {
                throw DataError(file: path, "\(urls.count) images of \(size.height)x\(size.width) are more than the \(maxPixels) pixels Kizuki may load at once"
                    + " (\(Self.maxTotalPixels) at most, and 4 bytes each within the memory limit)")
            }
            var pixels: [Float] = []
            pixels.reserveCapacity(total)
            for url in urls {
                let (h, w, bytes) = try PNG.readGray(url)
                guard (h, w) == size else { throw DataError(file: url.path, "changed while being read (now \(h)x\(w))") }
                for b in bytes { pixels.append(Float(b) / 255) }  // no temporary array the size of the image
            }
            var set = ImageSet(height: size.height, width: size.width, pixels: pixels)
            set.names = files
            return set
        case .npy(let path):
            let t = try Npy.read(URL(fileURLWithPath: path))
            let dims = t.dims
            guard dims.count == 3 || (dims.count == 4 && dims[3] == 1) else {
                throw DataError(file: path, "array shape \(dims) is not images: expected (N,H,W) or (N,H,W,1)")
            }
            let pixels: [Float]
            switch t.dataType {
            case .uint8: pixels = t.elements(as: UInt8.self).map { Float($0) / 255 }
            case .float: pixels = t.floats
            case .double: pixels = t.elements(as: Double.self).map { Float($0) }
            default: throw DataError(file: path, "element type \(t.dataType) is not supported for images (uint8, float32, float64 are)")
            }
            if let bad = pixels.firstIndex(where: { !$0.isFinite }) {
                throw DataError(file: path, "pixel \(bad) is \(pixels[bad]); images must be finite")
            }
            return ImageSet(height: dims[1], width: dims[2], pixels: pixels)
        }
    }
}
