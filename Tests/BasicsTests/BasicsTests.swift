import Basics
import Foundation
import XCTest

/// What every target builds on: bounds-checked bytes, regular input files, whole-or-nothing writes.
final class BasicsTests: XCTestCase {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("basics-\(UUID().uuidString)").path

    override func setUpWithError() throws { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
    override func tearDown() { try? FileManager.default.removeItem(atPath: folder) }

    func testBytesRefuseReadsPastTheirEndNamingWhatWasWanted() throws {
        let bytes = Bytes(Data([1, 0, 0, 0, 2, 0]), origin: "x.bin")
        XCTAssertEqual(try bytes.u32(0, "the count"), 1)
        XCTAssertEqual(try bytes.slice(4, 2, "the tail").u16(0, "a short"), 2)
        XCTAssertThrowsError(try bytes.u32(4, "the second count")) {
            XCTAssertEqual("\($0)", "x.bin: the second count needs bytes 4..<8, the data has 6")
        }
        // A forged length never wraps around or allocates.
        XCTAssertThrowsError(try bytes.slice(2, Int.max, "a forged member"))
        XCTAssertThrowsError(try bytes.slice(-1, 1, "a negative offset"))
    }

    func testOnlyRegularFilesAreOpened() throws {
        XCTAssertThrowsError(try RegularFile.check(folder)) { XCTAssertTrue("\($0)".contains("a folder, not a regular file"), "\($0)") }
        XCTAssertThrowsError(try RegularFile.check(folder + "/absent.json", what: "manifest")) { XCTAssertEqual("\($0)", "\(folder)/absent.json: manifest not found") }
        let fifo = folder + "/pipe"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        XCTAssertThrowsError(try RegularFile.contents(fifo)) { XCTAssertTrue("\($0)".contains("a FIFO (named pipe)"), "\($0)") }
        try Data("ok".utf8).write(to: URL(fileURLWithPath: folder + "/file"))
        XCTAssertEqual(try RegularFile.contents(folder + "/file"), Data("ok".utf8))
    }

    func testAnAtomicWriteThatFailsLeavesThePreviousFileAndNoPart() throws {
        let path = folder + "/checkpoint"
        try AtomicFile.write(Data("first".utf8), to: path)
        try AtomicFile.write(Data("second".utf8), to: path)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), Data("second".utf8))
        struct DiskFull: Error {}
        XCTAssertThrowsError(try AtomicFile.write(to: path) { temporary in
            try Data("thi".utf8).write(to: URL(fileURLWithPath: temporary))
            throw DiskFull()
        })
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), Data("second".utf8), "the previous file, whole")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), ["checkpoint"], "no temporary left behind")
    }
}
