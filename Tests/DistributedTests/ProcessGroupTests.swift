import Distributed
import XCTest

/// One process outside a launcher is its own group: every collective is the identity, so the
/// training code runs the same calls with one process or many. (Several processes under
/// `mpirun` are tested end to end in TrainingTests/DataParallelTests.)
final class ProcessGroupTests: XCTestCase {
    func testOutsideALauncherTheGroupIsThisProcessAlone() throws {
        let group = try ProcessGroup.fromLauncher()
        XCTAssertFalse(group.isDistributed)
        XCTAssertTrue(group.isLeader)
        XCTAssertEqual(group.rank, 0)
        XCTAssertEqual(group.size, 1)
        XCTAssertEqual(group.sum([1.5, -2]), [1.5, -2])
        XCTAssertEqual(group.sum([Int64(3)]), [3])
        XCTAssertEqual(group.min([Int64(-4), 7]), [-4, 7])
        XCTAssertEqual(group.max([Int64(9)]), [9])
        var values: [Float] = [1, 2, 3]
        values.withUnsafeMutableBufferPointer { group.startSum($0.baseAddress!, count: 3).wait() }
        XCTAssertEqual(values, [1, 2, 3])
        group.barrier()
    }
}
