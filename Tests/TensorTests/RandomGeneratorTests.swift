import Tensor
import XCTest

final class RandomGeneratorTests: XCTestCase {
    func testStateRoundTripReproducesTheStream() {
        let a = RandomGenerator(seed: 42)
        for _ in 0..<10 { _ = a.next() }
        let b = RandomGenerator(state: a.stateWords)
        XCTAssertEqual((0..<5).map { _ in a.next() }, (0..<5).map { _ in b.next() })
    }

    func testDistributionsHaveTheirMoments() {
        let r = RandomGenerator(seed: 1)
        let n = 20_000
        let normals = (0..<n).map { _ in r.normal() }
        let mean = normals.reduce(0, +) / Double(n)
        let variance = normals.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n)
        XCTAssertEqual(mean, 0, accuracy: 0.03)
        XCTAssertEqual(variance, 1, accuracy: 0.05)
        let binomials = (0..<2000).map { _ in Double(r.binomial(960, 0.01)) }
        XCTAssertEqual(binomials.reduce(0, +) / 2000, 9.6, accuracy: 0.3)
        let perm = r.permutation(50)
        XCTAssertEqual(perm.sorted(), Array(0..<50))
        XCTAssertNotEqual(perm, Array(0..<50))
        let ints = (0..<1000).map { _ in r.int(in: 3...5) }
        XCTAssertEqual(Set(ints), [3, 4, 5])
    }
}
