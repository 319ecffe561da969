import Basics
import Formats
import Foundation
import HDF5
import XCTest

/// The HDF5 layer: datasets of each element type and strings read back exactly, groups listed,
/// and a file that is not HDF5 refused by name.
final class HDF5FileTests: XCTestCase {
    func testDatasetsStringsAndAttributesReadBackExactly() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("h5-\(UUID().uuidString).h5").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let floats = ArrayData([1.5, -0.25, .greatestFiniteMagnitude, .leastNonzeroMagnitude, 0, -0], shape: [2, 3])
        let doubles = ArrayData([Double.pi, -1e300], shape: [2])
        let ints = ArrayData([Int64.min, 0, Int64.max], shape: [3])
        do {
            let file = try HDF5File(path: path, mode: .create)
            try file.createGroup("/weights")
            try file.write("/weights/a", floats)
            try file.write("/weights/b", doubles)
            try file.write("/c", ints)
            try file.writeString("/note", "größe ✓")
            try file.setAttribute("format", "nest-train test")
            try file.close()
        }
        let file = try HDF5File(path: path, mode: .readOnly)
        XCTAssertEqual(try file.datasetNames(in: "/weights").sorted(), ["a", "b"])
        XCTAssertEqual(try file.shape(of: "/weights/a"), [2, 3])
        XCTAssertEqual(try file.read("/weights/a"), floats)
        XCTAssertEqual(try file.read("/weights/b"), doubles)
        XCTAssertEqual(try file.read("/c"), ints)
        XCTAssertEqual(try file.readString("/note"), "größe ✓")
        XCTAssertEqual(try file.stringAttribute("format"), "nest-train test")
        XCTAssertFalse(file.exists("/weights/absent"))
    }

    func testAFileThatIsNotHDF5IsRefusedByName() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("not-h5-\(UUID().uuidString).h5").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data("not an HDF5 file".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try HDF5File(path: path, mode: .readOnly)) { XCTAssertTrue("\($0)".contains(path), "\($0)") }
    }
}
