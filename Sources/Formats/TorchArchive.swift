import Foundation

/// What `torch.save(state_dict)` writes (spec §10.2): a ZIP archive (entries STORED) with
/// `archive/data.pkl` (a protocol-2 pickle of an OrderedDict of tensors rebuilt by
/// `torch._utils._rebuild_tensor_v2` from persistent storages), one `archive/data/<n>` file of
/// raw little-endian elements per tensor, `archive/version` and `archive/byteorder`. Loadable
/// with `torch.load(..., weights_only=True)`.
public enum TorchArchiveWriter {
    public static func data(_ arrays: [NamedArray]) throws -> Data {
        var files: [(name: String, body: Data)] = [("archive/data.pkl", pickle(arrays))]
        for (n, entry) in arrays.enumerated() {
            var bytes: [UInt8] = []
            entry.array.appendBytes(to: &bytes)
            files.append(("archive/data/\(n)", Data(bytes)))
        }
        files.append(("archive/version", Data("3\n".utf8)))
        files.append(("archive/byteorder", Data("little".utf8)))
        return try ZipWriter.stored(files)
    }

    /// The pickle: OrderedDict([(name, tensor), ...]).
    static func pickle(_ arrays: [NamedArray]) -> Data {
        var p = PickleWriter()
        p.proto2()
        p.global("collections", "OrderedDict"); p.emptyTuple(); p.reduce()
        p.mark()
        for (n, entry) in arrays.enumerated() {
            p.string(entry.name)
            // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks)
            p.global("torch._utils", "_rebuild_tensor_v2")
            p.mark()
            p.mark()
            p.string("storage")
            p.global("torch", entry.array.dtype.torchStorage)
            p.string(String(n)); p.string("cpu"); p.int(entry.array.count)
            p.tuple()
            p.persistentID()
            p.int(0)
            p.intTuple(entry.array.shape)
            p.intTuple(ArrayData.rowMajorStrides(entry.array.shape))
            p.bool(false)
            p.global("collections", "OrderedDict"); p.emptyTuple(); p.reduce()
            p.tuple()
            p.reduce()
        }
        p.setItems()
        p.stop()
        return p.data
    }
}
