import Basics
import Formats
import CHDF5
import Foundation

/// A small, safe view of an HDF5 file: datasets of float32/float64/int64 arrays and strings,
/// groups, and string or integer attributes. Object paths are absolute ("/weights/key"); a dot
/// in a name is an ordinary character.
public final class HDF5File {
    public let path: String
    private var id: hid_t

    public enum Mode { case readOnly, create }

    /// `userBlock` reserves that many bytes (a power of two ≥ 512) at the start of a new file
    /// for the caller's own header; HDF5 readers (h5py too) skip it.
    public init(path: String, mode: Mode, userBlock: Int = 0) throws {
        // HDF5 prints its own error stack by default; we report errors ourselves.
        H5Eset_auto2(nest_h5e_default(), nil, nil)
        self.path = path
        switch mode {
        case .readOnly:
            id = H5Fopen(path, nest_h5f_acc_rdonly(), nest_h5p_default())
            if id < 0 {
                let exists = FileManager.default.fileExists(atPath: path)
                throw NestError(file: path, exists ? "not a readable HDF5 file (truncated or corrupted?)" : "no such file")
            }
        case .create:
            let fcpl = userBlock > 0 ? H5Pcreate(nest_h5p_file_create()) : nest_h5p_default()
            if userBlock > 0 { H5Pset_userblock(fcpl, hsize_t(userBlock)) }
            id = H5Fcreate(path, nest_h5f_acc_trunc(), fcpl, nest_h5p_default())
            if userBlock > 0 { H5Pclose(fcpl) }
            if id < 0 { throw NestError(file: path, "cannot create HDF5 file") }
        }
    }

    deinit { if id >= 0 { H5Fclose(id) } }

    /// Flushes and closes; further use is an error.
    public func close() throws {
        guard id >= 0 else { return }
        let status = H5Fclose(id)
        id = -1
        if status < 0 { throw NestError(file: path, "closing failed (disk full?)") }
    }

    // MARK: structure

    public func exists(_ object: String) -> Bool {
        // Check each prefix: H5Lexists fails on a missing intermediate group.
        var prefix = ""
        for part in object.split(separator: "/") {
            prefix += "/" + part
            if H5Lexists(id, prefix, nest_h5p_default()) <= 0 { return false }
        }
        return true
    }

    public enum Kind { case group, dataset }

    /// Names of the members of `group` with their kinds, in name order.
    public func members(of group: String) throws -> [(name: String, kind: Kind)] {
        let g = H5Gopen2(id, group, nest_h5p_default())
        guard g >= 0 else { throw NestError(file: path, "no group \(group)") }
        defer { H5Gclose(g) }
        var info = H5G_info_t()
        guard H5Gget_info(g, &info) >= 0 else { throw NestError(file: path, "cannot list \(group)") }
        var result: [(String, Kind)] = []
        for i in 0..<info.nlinks {
            let size = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, nil, 0, nest_h5p_default())
            guard size >= 0 else { throw NestError(file: path, "cannot read member \(i) of \(group)") }
            var buffer = [CChar](repeating: 0, count: Int(size) + 1)
            H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, &buffer, size + 1, nest_h5p_default())
            let name = String(cString: buffer)
            let o = H5Oopen(g, name, nest_h5p_default())
            guard o >= 0 else { throw NestError(file: path, "cannot open \(group)/\(name)") }
            let kind: Kind = H5Iget_type(o) == H5I_GROUP ? .group : .dataset
            H5Oclose(o)
            result.append((name, kind))
        }
        return result
    }

    public func datasetNames(in group: String) throws -> [String] {
        try members(of: group).filter { $0.kind == .dataset }.map(\.name)
    }

    /// Creates `group` and any missing parents.
    public func createGroup(_ group: String) throws {
        var prefix = ""
        for part in group.split(separator: "/") {
            prefix += "/" + part
            if H5Lexists(id, prefix, nest_h5p_default()) > 0 { continue }
            let g = H5Gcreate2(id, prefix, nest_h5p_default(), nest_h5p_default(), nest_h5p_default())
            guard g >= 0 else { throw NestError(file: path, "cannot create group \(prefix)") }
            H5Gclose(g)
        }
    }

    // MARK: datasets

    private func openDataset(_ name: String) throws -> hid_t {
        let d = H5Dopen2(id, name, nest_h5p_default())
        guard d >= 0 else { throw NestError(file: path, "no dataset \(name)") }
        return d
    }

    /// Shape of a dataset without reading it.
    public func shape(of name: String) throws -> [Int] {
        let d = try openDataset(name)
        defer { H5Dclose(d) }
        return try dataspaceShape(d, name)
    }

    private func dataspaceShape(_ d: hid_t, _ name: String) throws -> [Int] {
        let space = H5Dget_space(d)
        defer { H5Sclose(space) }
        let rank = H5Sget_simple_extent_ndims(space)
        guard rank >= 0 && rank <= 32 else { throw NestError(file: path, "dataset \(name) has an invalid rank") }
        var dims = [hsize_t](repeating: 0, count: Int(rank))
        H5Sget_simple_extent_dims(space, &dims, nil)
        return dims.map { Int($0) }
    }

    /// Reads a numeric dataset as float32, float64 or int64 (integers of any width become int64).
    /// Checksums (Fletcher-32) are verified by HDF5 on read; a mismatch is an error here.
    public func read(_ name: String) throws -> ArrayData {
        let d = try openDataset(name)
        defer { H5Dclose(d) }
        let shape = try dataspaceShape(d, name)
        let count = shape.reduce(1, *)
        let type = H5Dget_type(d)
        defer { H5Tclose(type) }
        let cls = H5Tget_class(type)
        let size = H5Tget_size(type)
        // A corrupted header can claim any size: refuse more than the file could expand to
        // (HDF5 compression at most reaches ~1000:1 on constant data).
        let fileSize = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        guard count <= (1 << 34), count * max(size, 1) <= fileSize * 1000 + (1 << 20) else {
            throw NestError(file: path, "dataset \(name) claims shape \(shape), more than the file can hold")
        }
        func readInto<T>(_ memType: hid_t, _ zero: T) throws -> [T] {
            var values = [T](repeating: zero, count: count)
            let status = values.withUnsafeMutableBytes { H5Dread(d, memType, nest_h5s_all(), nest_h5s_all(), nest_h5p_default(), $0.baseAddress) }
            guard status >= 0 else { throw NestError(file: path, "cannot read dataset \(name) (checksum mismatch or corrupted data)") }
            return values
        }
        switch cls {
        case H5T_FLOAT where size == 8:
            return ArrayData(shape: shape, values: .float64(try readInto(nest_h5t_native_double(), 0.0)))
        case H5T_FLOAT:
            return ArrayData(shape: shape, values: .float32(try readInto(nest_h5t_native_float(), Float(0))))
        case H5T_INTEGER:
            return ArrayData(shape: shape, values: .int64(try readInto(nest_h5t_native_int64(), Int64(0))))
        default:
            throw NestError(file: path, "dataset \(name) is not numeric")
        }
    }

    /// Writes a numeric dataset, creating parent groups. With `checksum`, the data is stored
    /// chunked with HDF5's Fletcher-32 filter so corruption is detected on read.
    public func write(_ name: String, _ array: ArrayData, checksum: Bool = true) throws {
        precondition(array.count == array.shape.reduce(1, *), "\(name): \(array.count) values for shape \(array.shape)")
        if let slash = name.lastIndex(of: "/"), slash != name.startIndex {
            try createGroup(String(name[..<slash]))
        }
        var dims = array.shape.map { hsize_t($0) }
        let space = H5Screate_simple(Int32(dims.count), &dims, nil)
        defer { H5Sclose(space) }
        let dcpl = H5Pcreate(nest_h5p_dataset_create())
        defer { H5Pclose(dcpl) }
        if checksum && !dims.isEmpty && !dims.contains(0) {
            H5Pset_chunk(dcpl, Int32(dims.count), &dims)
            H5Pset_fletcher32(dcpl)
        }
        let memType: hid_t
        switch array.values {
        case .float32: memType = nest_h5t_native_float()
        case .float64: memType = nest_h5t_native_double()
        case .int64: memType = nest_h5t_native_int64()
        }
        let d = H5Dcreate2(id, name, memType, space, nest_h5p_default(), dcpl, nest_h5p_default())
        guard d >= 0 else { throw NestError(file: path, "cannot create dataset \(name)") }
        defer { H5Dclose(d) }
        let status: herr_t
        switch array.values {
        case .float32(let v): status = v.withUnsafeBytes { H5Dwrite(d, memType, nest_h5s_all(), nest_h5s_all(), nest_h5p_default(), $0.baseAddress) }
        case .float64(let v): status = v.withUnsafeBytes { H5Dwrite(d, memType, nest_h5s_all(), nest_h5s_all(), nest_h5p_default(), $0.baseAddress) }
        case .int64(let v): status = v.withUnsafeBytes { H5Dwrite(d, memType, nest_h5s_all(), nest_h5s_all(), nest_h5p_default(), $0.baseAddress) }
        }
        if status < 0 { throw NestError(file: path, "cannot write dataset \(name) (disk full?)") }
    }

    // MARK: strings

    /// A scalar string dataset (fixed-length or variable-length).
    public func readString(_ name: String) throws -> String {
        let d = try openDataset(name)
        defer { H5Dclose(d) }
        let type = H5Dget_type(d)
        defer { H5Tclose(type) }
        guard H5Tget_class(type) == H5T_STRING else { throw NestError(file: path, "dataset \(name) is not a string") }
        return try readStringValue(type: type, name: name) { mem, buffer in H5Dread(d, mem, nest_h5s_all(), nest_h5s_all(), nest_h5p_default(), buffer) }
    }

    /// Writes a scalar fixed-length string dataset (readable by h5py as bytes).
    public func writeString(_ name: String, _ value: String) throws {
        if let slash = name.lastIndex(of: "/"), slash != name.startIndex { try createGroup(String(name[..<slash])) }
        let bytes = Array(value.utf8)
        let type = H5Tcopy(nest_h5t_c_s1())
        defer { H5Tclose(type) }
        H5Tset_size(type, max(bytes.count, 1))
        let space = H5Screate(H5S_SCALAR)
        defer { H5Sclose(space) }
        let d = H5Dcreate2(id, name, type, space, nest_h5p_default(), nest_h5p_default(), nest_h5p_default())
        guard d >= 0 else { throw NestError(file: path, "cannot create dataset \(name)") }
        defer { H5Dclose(d) }
        let padded = bytes.isEmpty ? [UInt8(0)] : bytes
        if padded.withUnsafeBytes({ H5Dwrite(d, type, nest_h5s_all(), nest_h5s_all(), nest_h5p_default(), $0.baseAddress) }) < 0 {
            throw NestError(file: path, "cannot write dataset \(name) (disk full?)")
        }
    }

    private func readStringValue(type: hid_t, name: String, _ read: (hid_t, UnsafeMutableRawPointer) -> herr_t) throws -> String {
        if H5Tis_variable_str(type) > 0 {
            let mem = H5Tcopy(nest_h5t_c_s1())
            defer { H5Tclose(mem) }
            H5Tset_size(mem, Int(bitPattern: UInt(bitPattern: -1)))  // H5T_VARIABLE
            var pointer: UnsafeMutablePointer<CChar>?
            guard withUnsafeMutablePointer(to: &pointer, { read(mem, $0) }) >= 0, let pointer else {
                throw NestError(file: path, "cannot read string \(name)")
            }
            defer { free(pointer) }
            return String(cString: pointer)
        }
        let size = H5Tget_size(type)
        guard size < (1 << 30) else { throw NestError(file: path, "string \(name) claims \(size) bytes") }
        var buffer = [UInt8](repeating: 0, count: size + 1)
        guard buffer.withUnsafeMutableBytes({ read(type, $0.baseAddress!) }) >= 0 else { throw NestError(file: path, "cannot read string \(name)") }
        return String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
    }

    // MARK: attributes

    public func setAttribute(_ attribute: String, on object: String = "/", _ value: String) throws {
        let o = H5Oopen(id, object, nest_h5p_default())
        guard o >= 0 else { throw NestError(file: path, "no object \(object)") }
        defer { H5Oclose(o) }
        if H5Aexists(o, attribute) > 0 { H5Adelete(o, attribute) }
        let bytes = Array(value.utf8)
        let type = H5Tcopy(nest_h5t_c_s1())
        defer { H5Tclose(type) }
        H5Tset_size(type, max(bytes.count, 1))
        let space = H5Screate(H5S_SCALAR)
        defer { H5Sclose(space) }
        let a = H5Acreate2(o, attribute, type, space, nest_h5p_default(), nest_h5p_default())
        guard a >= 0 else { throw NestError(file: path, "cannot create attribute \(attribute) on \(object)") }
        defer { H5Aclose(a) }
        let padded = bytes.isEmpty ? [UInt8(0)] : bytes
        if padded.withUnsafeBytes({ H5Awrite(a, type, $0.baseAddress) }) < 0 { throw NestError(file: path, "cannot write attribute \(attribute)") }
    }

    public func stringAttribute(_ attribute: String, of object: String = "/") throws -> String? {
        let o = H5Oopen(id, object, nest_h5p_default())
        guard o >= 0 else { throw NestError(file: path, "no object \(object)") }
        defer { H5Oclose(o) }
        guard H5Aexists(o, attribute) > 0 else { return nil }
        let a = H5Aopen(o, attribute, nest_h5p_default())
        defer { H5Aclose(a) }
        let type = H5Aget_type(a)
        defer { H5Tclose(type) }
        guard H5Tget_class(type) == H5T_STRING else { throw NestError(file: path, "attribute \(attribute) of \(object) is not a string") }
        return try readStringValue(type: type, name: "\(object)@\(attribute)") { mem, buffer in H5Aread(a, mem, buffer) }
    }
}
