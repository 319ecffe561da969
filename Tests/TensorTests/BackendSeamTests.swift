import Foundation
import Tensor
import XCTest
import _TestSupport

/// The backend seam: ops reach memory only through kernels, values cross between host and
/// device only through the explicit copies, and the checking device (the CPU's kernels over
/// memory of its own) computes bit for bit what the CPU computes, forward and backward.
final class BackendSeamTests: XCTestCase {
    private let checking = Device.checking
    private var transfers: Int { (checking.backend as! CheckingBackend).hostTransfers }

    /// Every op of the table, forward and backward, from the same values and the same output
    /// gradient on the CPU and on the checking device: the same bits, and finite on the CPU.
    func testEveryOpIsBitForBitTheSameOnTheCheckingDevice() {
        let cases = OpTable.cases(size: .small, seed: 11)
        XCTAssertGreaterThan(cases.count, 50)
        for op in cases {
            func run(on device: Device) -> [[Float]] {
                let xs = op.inputs.map { Tensor($0.array, shape: $0.shape, on: device) }
                for x in xs { x.requiresGrad = true }
                let out = op.call(xs)
                if out.requiresGrad { out.backward(seed: randomTensor(out.shape, seed: 3).to(device)) }
                return [out.array] + xs.map { $0.grad?.array ?? [] }
            }
            let onCPU = run(on: .cpu), onChecking = run(on: checking)
            for (i, (a, b)) in zip(onCPU, onChecking).enumerated() {
                XCTAssertFalse(a.contains { !$0.isFinite }, "\(op.name): result \(i) is finite on the CPU")
                XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), "\(op.name): result \(i) differs between the CPU and the checking device")
            }
        }
    }

    func testAForwardPassOnTheDeviceCopiesNothingToOrFromTheHost() {
        let x = randomTensor([4, 8, 16], seed: 1).to(checking), w = randomTensor([32, 16], seed: 2).to(checking)
        let g = Tensor(repeating: 1, shape: [32], on: checking), b = Tensor(zeros: [32], on: checking)
        let before = transfers
        _ = withoutGrad { Tensor.linear(x, weight: w, bias: b).silu().layerNorm(weight: g, bias: b).softmax().dropout(0.1, seed: 1) }
        XCTAssertEqual(transfers, before, "kernels ran on device memory without staging")
        _ = x.array
        XCTAssertEqual(transfers, before + 1, "reading values is one explicit copy")
    }

    func testHostViewsOfDeviceMemoryAreStagedAndWrittenBack() {
        let t = Tensor([1, 2, 3], shape: [3], on: checking)
        t.withMutableHostValues { $0[1] = 20 }
        XCTAssertEqual(t.array, [1, 20, 3], "a mutable view's writes reach the device")
        t.withHostValues { values in
            // A read-only view is a copy: writing through it must not reach the device.
            UnsafeMutablePointer(mutating: values.baseAddress!)[0] = 100
        }
        XCTAssertEqual(t.array, [1, 20, 3], "a read-only view is a staged copy")
        let stage = HostStage(t)
        stage.values[2] = 30
        XCTAssertEqual(t.array, [1, 20, 3], "a stage reaches the device only when finished")
        stage.finish()
        XCTAssertEqual(t.array, [1, 20, 30])
    }

    func testFreshDeviceMemoryIsGarbageNotZeros() {
        let t = Tensor(uninitializedShape: [1000], on: checking)
        XCTAssertTrue(t.array.allSatisfy(\.isNaN), "the checking device fills fresh memory with NaN, as a GPU's holds garbage")
    }

    func testMovingBetweenDevicesKeepsValuesAndGradientsStayOnTheirDevice() {
        let host = randomTensor([3, 5], seed: 4)
        let device = host.to(checking)
        XCTAssertTrue(device.device === checking)
        XCTAssertEqual(device.array, host.array)
        XCTAssertTrue(host.to(host.device) === host, "moving to the device a tensor is on is free")
        device.requiresGrad = true
        (device * device).sum().backward()
        XCTAssertTrue(device.grad!.device === checking)
        XCTAssertEqual(device.grad!.array, host.array.map { 2 * $0 })
    }

    /// Ops call kernels; only the backends (`Sources/Tensor/Kernels` for the CPU, `Backend`) and the
    /// storage's own files touch a tensor's address.
    func testOnlyKernelsTouchMemory() throws {
        let tensorSources = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Sources/Tensor").standardized
        let allowed = ["Kernels/", "Backend/", "Core/Storage.swift", "Core/Tensor.swift", "Core/HostAccess.swift"]
        let files = FileManager.default.enumerator(atPath: tensorSources.path)!.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }
        XCTAssertGreaterThan(files.count, 20)
        for file in files where !allowed.contains(where: { file.hasPrefix($0) }) {
            let text = try String(contentsOf: tensorSources.appendingPathComponent(file), encoding: .utf8)
            XCTAssertFalse(text.contains(".address"), "\(file) reaches into memory instead of calling a kernel")
        }
    }
}
