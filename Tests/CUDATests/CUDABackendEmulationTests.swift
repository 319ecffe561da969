import CUDA
import Foundation
import Tensor
import XCTest

/// The CUDA backend without a GPU: its kernels (the very sources NVRTC compiles) run on host
/// threads through `HostKernelRuntime`, and every op's forward and backward is compared with the
/// CPU backend (`BackendComparison`, what `gpu-check` runs on a GPU). Also: every kernel in
/// `Sources/CUDA/Kernels` is launched by the backend, and the caching allocator asks the
/// device for no memory once a step's shapes repeat.
final class CUDABackendEmulationTests: XCTestCase {
    /// The emulated runtime, recording the kernels launched by name (the backend counts the
    /// rest: `DeviceActivity`).
    final class Recording: KernelRuntime {
        let inner: HostKernelRuntime
        var launched: Set<String> = []
        init() throws { inner = try HostKernelRuntime() }
        var name: String { inner.name }
        var maxBlocks: Int { inner.maxBlocks }
        var threadsPerBlock: Int { inner.threadsPerBlock }
        var reductionThreadsPerBlock: Int { inner.reductionThreadsPerBlock }
        var memory: RawMemory { inner.memory }
        func copy(fromHost source: UnsafeRawPointer, to address: UnsafeMutableRawPointer, bytes: Int) { inner.copy(fromHost: source, to: address, bytes: bytes) }
        func copy(from address: UnsafeRawPointer, toHost destination: UnsafeMutableRawPointer, bytes: Int) {
            inner.copy(from: address, toHost: destination, bytes: bytes)
        }
        func copy(from source: UnsafeRawPointer, to destination: UnsafeMutableRawPointer, bytes: Int) { inner.copy(from: source, to: destination, bytes: bytes) }
        func fill(_ address: UnsafeMutableRawPointer, word: UInt32, count: Int) { inner.fill(address, word: word, count: count) }
        func launch(_ kernel: String, grid: Int, block: Int, sharedBytes: Int, _ arguments: [KernelArgument]) {
            launched.insert(kernel)
            inner.launch(kernel, grid: grid, block: block, sharedBytes: sharedBytes, arguments)
        }
        func sgemm(_ g: ColumnMajorGEMM) { launched.insert("cublasSgemmStridedBatched"); inner.sgemm(g) }
        func synchronize() {}
    }

    static let runtime = try! Recording()
    static let device = Device(name: "cuda (host emulation)", backend: CUDABackend(runtime: runtime))

    func testEveryOpMatchesTheCPUBackendForwardAndBackward() {
        for seed in 1...2 {
            let checks = BackendComparison(device: Self.device, size: .small).all(seed: UInt64(seed))
            XCTAssertGreaterThan(checks.count, 60)
            for c in checks {
                XCTAssertTrue(c.passed, String(format: "seed %d: %@ %@: relative error %.2e > %.0e", seed, c.name, "\(c.shape)", c.relativeError, c.tolerance))
            }
        }
    }

    func testEveryKernelSourceIsUsedByTheBackend() {
        _ = BackendComparison(device: Self.device, size: .small).all(seed: 3)
        let all = Set(KernelSource.all.flatMap(\.kernelNames))
        XCTAssertEqual(all.subtracting(Self.runtime.launched), [], "kernels no op launches")
        XCTAssertTrue(Self.runtime.launched.contains("cublasSgemmStridedBatched"))
    }

    /// The profiler (NEST_TRAIN_GPU_PROFILE) times each kernel without changing what it computes.
    func testTheProfilerTimesEveryKernelItRuns() throws {
        let profiled = ProfilingRuntime(try HostKernelRuntime())
        let d = Device(name: "profiled", backend: CUDABackend(runtime: profiled))
        let x = Tensor((0..<600).map { Float($0 % 13) / 13 - 0.5 }, shape: [20, 30], on: .cpu)
        let onDevice = withoutGrad { x.to(d).silu().softmax() }.array, onCPU = withoutGrad { x.silu().softmax() }.array
        XCTAssertLessThan(BackendComparison.relativeError(onDevice, onCPU), 1e-5)
        let names = Set(profiled.profile.map(\.name))
        XCTAssertTrue(names.isSuperset(of: ["activation_forward", "softmax_forward", "copy host→device", "copy device→host"]), "\(names)")
        XCTAssertTrue(profiled.profile.allSatisfy { $0.calls > 0 && $0.seconds >= 0 })
        XCTAssertTrue(profiled.report().contains { $0.contains("softmax_forward") })
    }

    /// LayerNorm's weight and bias gradients stay on the device, and the gradient norm of all
    /// parameters comes back in one copy: a backward pass and the norm wait for the GPU once.
    func testBackwardAndTheGradientNormReadTheDeviceOnce() {
        let d = Self.device
        let x = Tensor((0..<2048).map { Float($0 % 19) / 19 - 0.3 }, shape: [32, 64], on: d)
        let parameters = [Tensor((0..<4096).map { Float($0 % 23) / 230 - 0.05 }, shape: [64, 64], on: d),
                          Tensor((0..<64).map { 1 + Float($0 % 5) / 10 }, shape: [64], on: d), Tensor((0..<64).map { Float($0 % 3) / 10 }, shape: [64], on: d)]
        for p in parameters { p.requiresGrad = true }
        let loss = Tensor.linear(x, weight: parameters[0], bias: nil).layerNorm(weight: parameters[1], bias: parameters[2]).silu().mean()
        let before = d.backend.activity!
        loss.backward()
        let norm = Gradients.globalNorm(parameters)
        XCTAssertEqual((d.backend.activity! - before).deviceToHost, 1, "backward and the norm of three gradients")
        let cpu = parameters.map { p -> Tensor in
            let t = p.to(.cpu, always: true).detached()
            t.requiresGrad = true
            return t
        }
        Tensor.linear(x.to(.cpu), weight: cpu[0], bias: nil).layerNorm(weight: cpu[1], bias: cpu[2]).silu().mean().backward()
        XCTAssertEqual(norm, Gradients.globalNorm(cpu), accuracy: 1e-5 * Gradients.globalNorm(cpu))
        for (p, c) in zip(parameters, cpu) { XCTAssertLessThan(BackendComparison.relativeError(p.grad!.array, c.grad!.array), 1e-4) }
    }

    /// The device pool frees nothing while steps run; idle blocks go back to the driver only
    /// when an allocation fails, and the allocation is then retried.
    func testTheDevicePoolReturnsBlocksOnlyWhenAnAllocationFails() {
        final class Budget: @unchecked Sendable { var blocks = 3, allocations = 0, frees = 0 }
        let budget = Budget()
        let memory = RawMemory(name: "three blocks", allocate: { count in
            guard budget.blocks > 0 else { return nil }
            budget.blocks -= 1
            budget.allocations += 1
            return UnsafeMutablePointer<Float>.allocate(capacity: count)
        }, deallocate: { block, _ in
            budget.blocks += 1
            budget.frees += 1
            block.deallocate()
        })
        let pool = BufferPool(memory: memory, trimming: .onFailure)
        let small = (0..<3).map { _ in pool.acquire(100) }
        for (p, c) in small { pool.release(p, capacity: c) }
        for _ in 0..<10 { pool.endStep() }
        XCTAssertEqual(budget.frees, 0, "idle blocks stay through steps")
        let (large, capacity) = pool.acquire(1 << 20)
        XCTAssertEqual(budget.frees, 3, "a failed allocation returns the idle blocks, then succeeds")
        XCTAssertEqual(budget.allocations, 4)
        pool.release(large, capacity: capacity)
    }

    func testTheCachingAllocatorStopsAllocatingOnceShapesRepeat() {
        let d = Self.device
        let x = Tensor((0..<4096).map { Float($0 % 17) / 17 }, shape: [64, 64], on: d), w = Tensor(repeating: 0.01, shape: [64, 64], on: d)
        w.requiresGrad = true
        func step() {
            let loss = Tensor.linear(x, weight: w, bias: nil).silu().layerNorm(weight: Tensor(repeating: 1, shape: [64], on: d),
                                                                               bias: Tensor(zeros: [64], on: d)).mean()
            loss.backward()
            w.grad = nil
            d.backend.endStep()
        }
        step()
        step()
        let before = d.backend.activity!
        for _ in 0..<3 { step() }
        let during = d.backend.activity! - before
        XCTAssertEqual(during.driverAllocations, 0, "steps of repeated shapes reuse the pool's device blocks")
        XCTAssertEqual(during.driverFrees, 0, "a device pool returns nothing inside or between steps")
        XCTAssertGreaterThan(d.backend.memory.peakLive, 0)
    }
}
