import CHDF5
import Foundation

/// An error reading an HDF5 file: names the file and the object.
public struct HDF5Error: Error, CustomStringConvertible {
    public var description: String
    public init(_ file: String, _ message: String) { description = "\(file): \(message)" }
}

/// The few HDF5 calls Keras weight files need, over libhdf5: groups, string-array attributes and float
/// datasets, read (here) and written (HDF5File+Writing.swift). Objects are addressed by '/'-separated paths
/// from the root.
public final class HDF5File {
    public let path: String
    let id: hid_t
    private var open = true

    public init(reading path: String) throws {
        self.path = path
        HDF5File.silenceErrorPrinting()
        guard FileManager.default.fileExists(atPath: path) else { throw HDF5Error(path, "no such file") }
        guard H5Fis_hdf5(path) > 0 else { throw HDF5Error(path, "not an HDF5 file") }
        let id = H5Fopen(path, kizuki_h5f_acc_rdonly(), kizuki_h5p_default())
        guard id >= 0 else { throw HDF5Error(path, "libhdf5 cannot open it") }
        self.id = id
    }

    init(path: String, id: hid_t) {
        self.path = path
        self.id = id
    }

    deinit { if open { H5Fclose(id) } }

    /// Flushes and closes the file (a written file is complete only after this).
    public func close() throws {
        guard open else { return }
        open = false
        guard H5Fclose(id) >= 0 else { throw HDF5Error(path, "libhdf5 cannot close (flush) it") }
    }

    /// libhdf5 prints its error stack on stderr by default; errors reach users as HDF5Error instead.
    private static let silence: Void = { H5Eset_auto2(kizuki_h5e_default(), nil, nil) }()
    static func silenceErrorPrinting() { _ = silence }

    public func exists(_ object: String) -> Bool {
        // Each level must exist before the next is asked for (H5Lexists requires it).
        var prefix = ""
        for part in object.split(separator: "/") {
            prefix += (prefix.isEmpty ? "" : "/") + part
            guard H5Lexists(id, prefix, kizuki_h5p_default()) > 0 else { return false }
        }
        return true
    }

    /// Whether `object` is a group (false for datasets and missing objects).
    public func isGroup(_ object: String) -> Bool {
        guard object.isEmpty || exists(object) else { return false }
        var info = H5O_info_t()
        guard H5Oget_info_by_name1(id, object.isEmpty ? "/" : object, &info, kizuki_h5p_default()) >= 0 else { return false }
        return info.type == H5O_TYPE_GROUP
    }

    /// The names of the links in group `object` ("" = the root), in libhdf5's name order.
    public func children(of object: String = "") throws -> [String] {
        guard isGroup(object) else { throw HDF5Error(path, "no group '\(object)'") }
        let group = object.isEmpty ? "/" : object
        var info = H5G_info_t()
        guard H5Gget_info_by_name(id, group, &info, kizuki_h5p_default()) >= 0 else { throw HDF5Error(path, "cannot list group '\(group)'") }
        return try (0..<info.nlinks).map { i in
            let size = H5Lget_name_by_idx(id, group, H5_INDEX_NAME, H5_ITER_INC, i, nil, 0, kizuki_h5p_default())
            guard size >= 0, size < 1 << 16 else { throw HDF5Error(path, "cannot list group '\(group)'") }
            var name = [CChar](repeating: 0, count: Int(size) + 1)
            H5Lget_name_by_idx(id, group, H5_INDEX_NAME, H5_ITER_INC, i, &name, name.count, kizuki_h5p_default())
            return String(cString: name)
        }
    }

    /// The string values of attribute `name` on `object` ("" = the root): fixed-length or variable-length
    /// strings, one or an array (what h5py writes for Keras's `layer_names` and `weight_names`).
    public func stringsAttribute(_ name: String, of object: String = "") throws -> [String]? {
        let where_ = object.isEmpty ? "/" : object
        guard object.isEmpty || exists(object), H5Aexists_by_name(id, where_, name, kizuki_h5p_default()) > 0 else { return nil }
        let attr = H5Aopen_by_name(id, where_, name, kizuki_h5p_default(), kizuki_h5p_default())
        guard attr >= 0 else { throw HDF5Error(path, "cannot open attribute '\(name)' of '\(where_)'") }
        defer { H5Aclose(attr) }
        let type = H5Aget_type(attr), space = H5Aget_space(attr)
        defer { H5Tclose(type); H5Sclose(space) }
        let count = max(Int(H5Sget_simple_extent_npoints(space)), 0)
        // h5py stores an empty list as an empty float array (a layer without weights).
        if count == 0 { return [] }
        guard H5Tget_class(type) == H5T_STRING else { throw HDF5Error(path, "attribute '\(name)' of '\(where_)' is not a string") }
        if H5Tis_variable_str(type) > 0 {
            let memType = H5Tcopy(kizuki_h5t_c_s1())
            defer { H5Tclose(memType) }
            H5Tset_size(memType, Int(bitPattern: UInt(bitPattern: -1)))  // H5T_VARIABLE
            H5Tset_cset(memType, H5Tget_cset(type))  // libhdf5 does not convert between ASCII and UTF-8
            var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
            guard H5Aread(attr, memType, &pointers) >= 0 else { throw HDF5Error(path, "cannot read attribute '\(name)' of '\(where_)'") }
            defer { H5Dvlen_reclaim(memType, space, kizuki_h5p_default(), &pointers) }
            return pointers.map { $0.map { String(cString: $0) } ?? "" }
        }
        let size = H5Tget_size(type)
        guard size > 0, size < 1 << 20 else { throw HDF5Error(path, "attribute '\(name)' of '\(where_)' has strings of \(size) bytes") }
        var bytes = [UInt8](repeating: 0, count: size * count)
        guard H5Aread(attr, type, &bytes) >= 0 else { throw HDF5Error(path, "cannot read attribute '\(name)' of '\(where_)'") }
        return (0..<count).map { i in
            let field = bytes[i * size..<(i + 1) * size]
            return String(decoding: field.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// Shape of dataset `object`.
    public func shape(_ object: String) throws -> [Int] {
        try withDataset(object) { dataset, _, space in
            let rank = Int(H5Sget_simple_extent_ndims(space))
            guard rank >= 0, rank <= 32 else { throw HDF5Error(path, "dataset '\(object)' has rank \(rank)") }
            var dims = [hsize_t](repeating: 0, count: rank)
            H5Sget_simple_extent_dims(space, &dims, nil)
            return dims.map { Int($0) }
        }
    }

    /// The values of a numeric dataset as float32 (libhdf5 converts other float and integer types).
    public func floats(_ object: String) throws -> [Float] {
        let dims = try shape(object)
        var count = 1
        for d in dims {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, product <= 1 << 31 else { throw HDF5Error(path, "dataset '\(object)' of shape \(dims) is too large") }
            count = product
        }
        return try withDataset(object) { dataset, type, _ in
            let cls = H5Tget_class(type)
            guard cls == H5T_FLOAT || cls == H5T_INTEGER else { throw HDF5Error(path, "dataset '\(object)' is not numeric") }
            var values = [Float](repeating: 0, count: count)
            guard H5Dread(dataset, kizuki_h5t_native_float(), kizuki_h5s_all(), kizuki_h5s_all(), kizuki_h5p_default(), &values) >= 0 else {
                throw HDF5Error(path, "cannot read dataset '\(object)'")
            }
            return values
        }
    }

    private func withDataset<T>(_ object: String, _ body: (hid_t, hid_t, hid_t) throws -> T) throws -> T {
        guard exists(object), !isGroup(object) else { throw HDF5Error(path, "no dataset '\(object)'") }
        let dataset = H5Dopen2(id, object, kizuki_h5p_default())
        guard dataset >= 0 else { throw HDF5Error(path, "cannot open dataset '\(object)'") }
        defer { H5Dclose(dataset) }
        let type = H5Dget_type(dataset), space = H5Dget_space(dataset)
        defer { H5Tclose(type); H5Sclose(space) }
        return try body(dataset, type, space)
    }
}
