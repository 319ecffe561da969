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

    /// One graph over every op family, run on `device` from the same values; returns the
    /// output and every input gradient, on the host.
    private func everyOp(on device: Device) -> [[Float]] {
        let x = randomTensor([2, 6, 8], seed: 1).to(device), w = randomTensor([16, 8], seed: 2).to(device)
        let b = randomTensor([16], seed: 3).to(device), ln = randomTensor([16], seed: 4).to(device)
        let dw = randomTensor([16, 1, 3], seed: 5).to(device), conv = randomTensor([4, 1, 3, 3], seed: 6).to(device)
        let u = randomTensor([2, 4], seed: 7).to(device), v = randomTensor([2, 4], seed: 8).to(device)
        let positions = randomTensor([11, 2, 4], seed: 9).to(device)
        let (mean, variance) = (Tensor(zeros: [16], on: device), Tensor(repeating: 1, shape: [16], on: device))
        let inputs = [x, w, b, ln, dw, conv, u, v, positions]
        for t in inputs { t.requiresGrad = true }

        var h = Tensor.linear(x, weight: w, bias: b).silu()                                     // [2, 6, 16]
        h = h.layerNorm(weight: ln, bias: b).dropout(0.1, seed: 42)
        h = h.depthwiseConv1d(weight: dw, bias: b, left: 1, right: 1)
        h = h.batchNorm(weight: ln, bias: b, runningMean: mean, runningVar: variance, training: true)
        let heads = h.reshaped([2, 6, 2, 8]).slice(axis: 3, 0..<4)                              // [2, 6, 2, 4]
        let mask = Tensor.attentionMask(lengths: [6, 4], length: 6).to(device)
        let scores = Tensor.relPositionScores(q: heads, k: heads, p: positions, biasU: u, biasV: v, scale: 0.5)
        let context = Tensor.attentionContext(scores.softmax(mask: mask), heads)                // [2, 6, 2, 4]
        let banded = Tensor.bandedRelPositionScores(q: heads, k: heads, p: positions, biasU: u, biasV: v, scale: 0.5, left: 1, right: 1)
        let bandMask = Tensor.bandMask(lengths: [6, 4], length: 6, left: 1, right: 1).to(device)
        let bandContext = Tensor.bandedAttentionContext(banded.softmax(mask: bandMask), heads, left: 1)
        let image = (context + bandContext).reshaped([2, 1, 6, 8])
        let convolved = image.conv2d(weight: conv, bias: nil, Conv2dGeometry(stride: (2, 2), padding: (1, 1))).relu()
        let pooled = Tensor.concat([convolved.reshaped([2, -1]), h.reshaped([2, -1]).glu()], axis: 1)
        let logits = Tensor.matmul(pooled.reshaped([2, 1, -1]), pooled.reshaped([2, 1, -1]), transposeB: true).reshaped([2, 1])
        let loss = (logits.gelu().sigmoid() * 3 - logits.scaled(0.5)).permuted([1, 0]).padded(axis: 1, before: 1, after: 0)
            .logSoftmax().gatherRows([0]).nllLoss(targets: [1]) + pooled.gatherRows([1, 0, 1]).mean()
        loss.backward()
        return [loss.array, mean.array, variance.array] + inputs.map { $0.grad!.array }
    }

    func testTheCheckingDeviceComputesBitForBitWhatTheCPUComputes() {
        let onCPU = everyOp(on: .cpu), onChecking = everyOp(on: checking)
        XCTAssertEqual(onCPU.count, onChecking.count)
        for (i, (a, b)) in zip(onCPU, onChecking).enumerated() {
            XCTAssertFalse(a.contains { !$0.isFinite }, "result \(i) is finite on the CPU")
            XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), "result \(i) differs between the CPU and the checking device")
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
