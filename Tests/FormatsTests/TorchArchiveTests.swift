import Basics
import Foundation
import Formats
import XCTest

/// The torch-archive path of NeMo's `.nemo` weights: the restricted unpickler, storages and
/// their views, half-precision storages, Lightning checkpoints, and the tar around them, each
/// against hostile or damaged input. (Thousands of mutated real `.nemo` files are read in
/// InteropTests/NemoImportTests.)
final class TorchArchiveTests: XCTestCase {
    /// Hostile and damaged inputs end in an error naming the problem, never a crash, a hang or
    /// a large allocation.
    func testAdversarialPicklesAndArchivesAreRefused() throws {
        func pickle(_ body: [UInt8]) -> Bytes { Bytes(Data([0x80, 2] + body + [0x2E]), origin: "test.pkl") }
        func refuses(_ body: [UInt8], _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try Unpickler.load(pickle(body)), file: file, line: line) {
                XCTAssertTrue("\($0)".contains(fragment), "\($0)", file: file, line: line)
            }
        }
        refuses(Array("cos\nsystem\n".utf8) + [0x29, 0x52], "global os.system is not allowed")
        refuses(Array("cbuiltins\neval\n".utf8), "builtins.eval")
        refuses(Array("ctorch\nIntStorage\n".utf8), "torch.IntStorage is not supported")
        refuses([0x58, 0xFF, 0xFF, 0xFF, 0x7F], "needs 2147483647 bytes")          // a forged string length
        refuses([UInt8](repeating: 0x29, count: 1) + [UInt8](repeating: 0x85, count: 100), "nested deeper")
        refuses([0x29] + (0..<2_000).flatMap { _ in [UInt8(0x28)] }, "MARK nesting")
        refuses([0x68, 0x05], "unset memo slot")
        refuses([0x93], "opcode 0x93")
        refuses([0x7D, 0x29, 0x62], "BUILD with a non-dict state")
        var bomb = Unpickler.Limits()
        bomb.memo = 10
        XCTAssertThrowsError(try Unpickler.load(pickle([0x29] + (0..<20).flatMap { [0x72, UInt8($0), 0, 0, 0] }), limits: bomb)) {
            XCTAssertTrue("\($0)".contains("memo larger"), "\($0)")
        }
        // A view past its storage, a storage of the wrong size, torch's legacy format.
        XCTAssertThrowsError(try TorchArchiveReader(try torchArchive(count: 4, shape: [3], strides: [2]))) {
            XCTAssertTrue("\($0)".contains("reaches element 4 of a storage of 4"), "\($0)")
        }
        XCTAssertThrowsError(try TorchArchiveReader(try torchArchive(count: 4, shape: [4], strides: [1], recordBytes: 12))) {
            XCTAssertTrue("\($0)".contains("holds 12 bytes"), "\($0)")
        }
        XCTAssertEqual(try TorchArchiveReader(try torchArchive(count: 6, shape: [2, 2], strides: [1, 2], offset: 1)).read("w").floats,
                       [1, 3, 2, 4], "a strided view gathers its elements")
        XCTAssertThrowsError(try TorchArchiveReader(Bytes(Data([0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E]), origin: "old.pt"))) {
            XCTAssertTrue("\($0)".contains("legacy"), "\($0)")
        }
        // A tar member escaping the folder.
        let evil = TarWriter.archive([("../model_config.yaml", Data("x".utf8))])
        XCTAssertThrowsError(try TarReader(Bytes(evil, origin: "evil.nemo"))) { XCTAssertTrue("\($0)".contains("unsafe member name"), "\($0)") }
    }

    /// Half-precision storages widen to float32 exactly; a Lightning checkpoint's `state_dict`
    /// is found inside its top-level dict.
    func testHalfStoragesAndLightningCheckpoints() throws {
        // float16: 1.0, -2.0, 0.5, 65504 (max), 2^-24 (smallest subnormal); bfloat16: 1.0, -3.0, 0.15625.
        let half: [UInt16] = [0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001]
        let bf16: [UInt16] = [0x3F80, 0xC040, 0x3E20]
        func archive(_ storage: String, _ bits: [UInt16], lightning: Bool) throws -> Bytes {
            var p = PickleWriter()
            p.proto2()
            if lightning { p.global("collections", "OrderedDict"); p.emptyTuple(); p.reduce(); p.mark(); p.string("state_dict") }
            p.global("collections", "OrderedDict"); p.emptyTuple(); p.reduce()
            p.mark()
            p.string("w")
            p.global("torch._utils", "_rebuild_tensor_v2")
            p.mark(); p.mark()
            p.string("storage"); p.global("torch", storage); p.string("0"); p.string("cpu"); p.int(bits.count)
            p.tuple(); p.persistentID()
            p.int(0); p.intTuple([bits.count]); p.intTuple([1]); p.bool(false)
            p.global("collections", "OrderedDict"); p.emptyTuple(); p.reduce()
            p.tuple(); p.reduce()
            p.setItems()
            if lightning { p.setItems() }
            p.stop()
            return Bytes(try ZipWriter.stored([("archive/data.pkl", p.data), ("archive/data/0", bits.withUnsafeBytes { Data($0) })]), origin: "half.ckpt")
        }
        XCTAssertEqual(try TorchArchiveReader(try archive("HalfStorage", half, lightning: false)).read("w").floats, [1, -2, 0.5, 65504, 0x1p-24])
        XCTAssertEqual(try TorchArchiveReader(try archive("BFloat16Storage", bf16, lightning: true)).read("w").floats, [1, -3, 0.15625])
    }

    /// A one-tensor torch archive: storage "0" of `count` float32 values 0, 1, 2, … and a view.
    func torchArchive(count: Int, shape: [Int], strides: [Int], offset: Int = 0, recordBytes: Int? = nil) throws -> Bytes {
        var p = PickleWriter()
        p.proto2()
        p.global("collections", "OrderedDict"); p.emptyTuple(); p.reduce()
        p.mark()
        p.string("w")
        p.global("torch._utils", "_rebuild_tensor_v2")
        p.mark(); p.mark()
        p.string("storage"); p.global("torch", "FloatStorage"); p.string("0"); p.string("cpu"); p.int(count)
        p.tuple(); p.persistentID()
        p.int(offset); p.intTuple(shape); p.intTuple(strides); p.bool(false)
        p.global("collections", "OrderedDict"); p.emptyTuple(); p.reduce()
        p.tuple(); p.reduce()
        p.setItems(); p.stop()
        let values = (0..<count).map(Float.init)
        let data = values.withUnsafeBytes { Data($0) }.prefix(recordBytes ?? count * 4)
        return Bytes(try ZipWriter.stored([("archive/data.pkl", p.data), ("archive/data/0", Data(data))]), origin: "test.ckpt")
    }
}
