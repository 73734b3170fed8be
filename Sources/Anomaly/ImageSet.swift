import Foundation

/// Grey images of one size, preprocessed as the reference: float32 in [0, 1], row-major,
/// one channel (NHWC with C = 1). Labels when known.
public struct ImageSet {
    public let height: Int
    public let width: Int
    /// count * height * width values.
    public var pixels: [Float]
    public var labels: [Int]
    /// Where each image came from (file names for PNG folders), for reports; may be empty.
    public var names: [String] = []

    public var count: Int { pixels.count / max(height * width, 1) }
    public var imageSize: Int { height * width }

    public init(height: Int, width: Int, pixels: [Float], labels: [Int] = []) {
        self.height = height
        self.width = width
        self.pixels = pixels
        self.labels = labels
    }

    /// From 8-bit pixels: divides by 255.
    public init(height: Int, width: Int, bytes: [UInt8], labels: [Int] = []) {
        self.init(height: height, width: width, pixels: bytes.map { Float($0) / 255 }, labels: labels)
    }

    /// The images at `indices`, in that order.
    public func subset(_ indices: [Int]) -> ImageSet {
        let size = imageSize
        var out = [Float]()
        out.reserveCapacity(indices.count * size)
        for i in indices { out += pixels[i * size..<(i + 1) * size] }
        var s = ImageSet(height: height, width: width, pixels: out, labels: labels.isEmpty ? [] : indices.map { labels[$0] })
        if !names.isEmpty { s.names = indices.map { names[$0] } }
        return s
    }

    public func prefix(_ n: Int) -> ImageSet { subset(Array(0..<min(n, count))) }

    /// Pixels of image `i` as bytes (for PNG output).
    public func bytes(of i: Int) -> [UInt8] {
        pixels[i * imageSize..<(i + 1) * imageSize].map { UInt8(max(0, min(255, ($0 * 255).rounded()))) }
    }

    public enum ResizeMode: String, CaseIterable, Sendable { case nearest, bilinear }

    /// Resized to `h` x `w` (nearest: pixel centres; bilinear: half-pixel centres, edges clamped).
    public func resized(height h: Int, width w: Int, mode: ResizeMode) -> ImageSet {
        if h == height && w == width { return self }
        var out = [Float](repeating: 0, count: count * h * w)
        let sy = Double(height) / Double(h), sx = Double(width) / Double(w)
        for n in 0..<count {
            let src = n * imageSize, dst = n * h * w
            for y in 0..<h {
                for x in 0..<w {
                    switch mode {
                    case .nearest:
                        let iy = min(height - 1, Int((Double(y) + 0.5) * sy)), ix = min(width - 1, Int((Double(x) + 0.5) * sx))
                        out[dst + y * w + x] = pixels[src + iy * width + ix]
                    case .bilinear:
                        let fy = max(0, min(Double(height - 1), (Double(y) + 0.5) * sy - 0.5))
                        let fx = max(0, min(Double(width - 1), (Double(x) + 0.5) * sx - 0.5))
                        let y0 = Int(fy), x0 = Int(fx), y1 = min(y0 + 1, height - 1), x1 = min(x0 + 1, width - 1)
                        let dy = Float(fy - Double(y0)), dx = Float(fx - Double(x0))
                        let p = { (yy: Int, xx: Int) in self.pixels[src + yy * self.width + xx] }
                        out[dst + y * w + x] = (p(y0, x0) * (1 - dx) + p(y0, x1) * dx) * (1 - dy) + (p(y1, x0) * (1 - dx) + p(y1, x1) * dx) * dy
                    }
                }
            }
        }
        var s = ImageSet(height: h, width: w, pixels: out, labels: labels)
        s.names = names
        return s
    }
}
