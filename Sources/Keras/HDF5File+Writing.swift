import CHDF5
import Foundation

/// Writing: what Keras weight files are made of (groups, fixed-length ASCII string attributes, float32
/// datasets). Written files are created fresh; `close()` completes them.
extension HDF5File {
    /// Creates (or truncates) `path` for writing.
    public convenience init(creating path: String) throws {
        HDF5File.silenceErrorPrinting()
        let id = H5Fcreate(path, kizuki_h5f_acc_trunc(), kizuki_h5p_default(), kizuki_h5p_default())
        guard id >= 0 else { throw HDF5Error(path, "libhdf5 cannot create it") }
        self.init(path: path, id: id)
    }

    /// Creates group `object` and any missing parents.
    public func createGroup(_ object: String) throws {
        var prefix = ""
        for part in object.split(separator: "/") {
            prefix += (prefix.isEmpty ? "" : "/") + part
            if exists(prefix) { continue }
            let group = H5Gcreate2(id, prefix, kizuki_h5p_default(), kizuki_h5p_default(), kizuki_h5p_default())
            guard group >= 0 else { throw HDF5Error(path, "cannot create group '\(prefix)'") }
            H5Gclose(group)
        }
    }

    /// Writes attribute `name` on `object` ("" = the root) as fixed-length, NUL-padded ASCII strings: an array,
    /// or a scalar when `scalar` (what h5py writes for NumPy byte strings, and reads back as such).
    public func writeStringsAttribute(_ name: String, _ values: [String], of object: String = "", scalar: Bool = false) throws {
        precondition(!scalar || values.count == 1, "a scalar attribute holds one string")
        let where_ = object.isEmpty ? "/" : object
        let encoded = values.map { Array($0.utf8) }
        let width = max(encoded.map(\.count).max() ?? 1, 1)
        var bytes = [UInt8](repeating: 0, count: width * max(values.count, 1))
        for (i, e) in encoded.enumerated() { bytes.replaceSubrange(i * width..<i * width + e.count, with: e) }

        let type = H5Tcopy(kizuki_h5t_c_s1())
        defer { H5Tclose(type) }
        H5Tset_size(type, width)
        H5Tset_strpad(type, H5T_STR_NULLPAD)
        var dims = [hsize_t(values.count)]
        let space = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dims, nil)
        defer { H5Sclose(space) }
        let attr = H5Acreate_by_name(id, where_, name, type, space, kizuki_h5p_default(), kizuki_h5p_default(), kizuki_h5p_default())
        guard attr >= 0 else { throw HDF5Error(path, "cannot create attribute '\(name)' of '\(where_)'") }
        defer { H5Aclose(attr) }
        guard H5Awrite(attr, type, bytes) >= 0 else { throw HDF5Error(path, "cannot write attribute '\(name)' of '\(where_)'") }
    }

    /// Writes the float32 dataset `object` (its parent group must exist).
    public func writeFloats(_ object: String, _ values: [Float], shape: [Int]) throws {
        precondition(values.count == shape.reduce(1, *), "\(object): \(values.count) values for shape \(shape)")
        var dims = shape.map { hsize_t($0) }
        let space = H5Screate_simple(Int32(dims.count), &dims, nil)
        defer { H5Sclose(space) }
        let dataset = H5Dcreate2(id, object, kizuki_h5t_ieee_f32le(), space, kizuki_h5p_default(), kizuki_h5p_default(), kizuki_h5p_default())
        guard dataset >= 0 else { throw HDF5Error(path, "cannot create dataset '\(object)'") }
        defer { H5Dclose(dataset) }
        guard H5Dwrite(dataset, kizuki_h5t_native_float(), kizuki_h5s_all(), kizuki_h5s_all(), kizuki_h5p_default(), values) >= 0 else {
            throw HDF5Error(path, "cannot write dataset '\(object)'")
        }
    }
}

extension HDF5File {
    /// Creates `path` through `body` in a temporary file beside it, renamed into place once complete,
    /// so a failed write never leaves a half-written file under the final name.
    public static func write(_ path: String, _ body: (HDF5File) throws -> Void) throws {
        let url = URL(fileURLWithPath: path)
        let temp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial").path
        defer { try? FileManager.default.removeItem(atPath: temp) }
        let h5 = try HDF5File(creating: temp)
        try body(h5)
        try h5.close()
        guard rename(temp, path) == 0 else { throw HDF5Error(path, "cannot write it: \(String(cString: strerror(errno)))") }
    }
}
