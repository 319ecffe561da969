import Foundation

/// NumPy `.npy` (format 1.0), as NeMo's feature extractor writes them.
public enum NPYWriter {
    public static func data(_ array: ArrayData) -> Data {
        let shape = array.shape
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(array.dtype.numpyDescr)', 'fortran_order': False, 'shape': \(shapeText), }"
        // magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64, ending in \n.
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var out = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        withUnsafeBytes(of: UInt16(header.utf8.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(Data(header.utf8))
        var bytes: [UInt8] = []
        array.appendBytes(to: &bytes)
        out.append(contentsOf: bytes)
        return out
    }
}
