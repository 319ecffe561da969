import Foundation
import HDF5
import Tensor

/// The shared NeMo reference data. Read from `../shared/fixtures` beside the repository (or
/// `$NEST_FIXTURES`); never copied into the repository.
public enum Fixtures {
    public static var directory: URL {
        if let dir = ProcessInfo.processInfo.environment["NEST_FIXTURES"] { return URL(fileURLWithPath: dir) }
        // Sources/_TestSupport/Fixtures.swift → repository root → ../shared/fixtures
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.deletingLastPathComponent().appendingPathComponent("shared/fixtures")
    }

    public static var nemoTinyPath: String { directory.appendingPathComponent("nemo-tiny/nemo-tiny.h5").path }

    public static func nemoTiny() throws -> HDF5File { try HDF5File(path: nemoTinyPath, mode: .readOnly) }

    /// `<name>/<name>.h5` of the shared fixtures (`nemo-streaming`, `nemo-transformer`).
    public static func file(_ name: String) throws -> HDF5File {
        try HDF5File(path: directory.appendingPathComponent("\(name)/\(name).h5").path, mode: .readOnly)
    }
}

extension HDF5File {
    public func tensor(_ name: String) throws -> Tensor {
        let a = try read(name)
        return Tensor(a.floats, shape: a.shape)
    }
}
