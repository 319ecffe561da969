import CUDA
import Foundation
import XCTest

/// Where nest-train looks for NVRTC and cuBLAS: the folders users have them in, in order.
final class CUDALibrariesTests: XCTestCase {
    func testSearchFindsTheCUDAWheelsOfEveryKindOfPythonEnvironment() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cuda-search-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let folders = [
            "venv/lib/python3.12/site-packages/nvidia/cu13/lib",       // CUDA 13 wheels in a virtual environment
            "venv/lib/python3.12/site-packages/nvidia/cu13/include",   // not a lib folder
            "conda/lib/python3.11/site-packages/nvidia/cublas/lib",    // CUDA 12 wheels in conda
            "conda/lib/python3.11/site-packages/nvidia/cuda_nvrtc/lib",
            "home/.local/lib/python3.12/site-packages/nvidia/cu13/lib", // pip install --user
            "usr/local/lib/python3.11/dist-packages/nvidia/cu13/lib",   // Debian's pip as root
            "opt/torch/bin",
            "opt/torch/lib/python3.12/site-packages/nvidia/cu13/lib",  // the python3 first on the PATH
        ]
        for f in folders { try FileManager.default.createDirectory(atPath: "\(root)/\(f)", withIntermediateDirectories: true) }
        let python = "\(root)/opt/torch/bin/python3"
        FileManager.default.createFile(atPath: python, contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o755])
        let environment = ["NEST_TRAIN_CUDA_LIBS": "/first:/second", "CUDA_HOME": "/toolkit", "VIRTUAL_ENV": "\(root)/venv",
                           "CONDA_PREFIX": "\(root)/conda", "HOME": "\(root)/home", "PATH": "/nonexistent:\(root)/opt/torch/bin"]
        let found = CUDALibraries.searchFolders(environment: environment, systemPrefixes: ["\(root)/usr/local", "\(root)/venv"])
        XCTAssertEqual(found, [
            "/first", "/second", "/toolkit/lib64", "/toolkit/lib", "/usr/local/cuda/lib64", "/usr/local/cuda/lib",
            "\(root)/venv/lib/python3.12/site-packages/nvidia/cu13/lib",
            "\(root)/conda/lib/python3.11/site-packages/nvidia/cublas/lib",
            "\(root)/conda/lib/python3.11/site-packages/nvidia/cuda_nvrtc/lib",
            "\(root)/opt/torch/lib/python3.12/site-packages/nvidia/cu13/lib",
            "\(root)/home/.local/lib/python3.12/site-packages/nvidia/cu13/lib",
            "\(root)/usr/local/lib/python3.11/dist-packages/nvidia/cu13/lib",
        ], "each environment once, in order")
    }

    /// The driver's CUDA version orders the toolkits: a major newer than the driver is passed
    /// over with the reason, the rest are tried newest first.
    func testTheDriverVersionOrdersTheToolkitMajors() {
        XCTAssertEqual(CUDALibraries.majors(forDriver: 13000).order, [13, 12])
        XCTAssertEqual(CUDALibraries.majors(forDriver: 13010).order, [13, 12])
        let old = CUDALibraries.majors(forDriver: 12040)
        XCTAssertEqual(old.order, [12])
        XCTAssertEqual(old.passedOver, ["CUDA 13: its libraries need a driver for CUDA 13.0 or newer; this one supports 12.4"])
        XCTAssertEqual(CUDALibraries.majors(forDriver: 11080).order, [])
    }

    /// A fake driver (every entry point of `nest_cuda_driver_load`, reporting the CUDA version
    /// in FAKE_CUDA_VERSION) beside CUDA 13's NVRTC and no cuBLAS: the version is asked before
    /// any toolkit is loaded, and the error names each major and why it was passed over.
    func testAFakeDriverVersionChoosesAmongTheToolkitsFound() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fake-cuda-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let loader = try String(contentsOf: CLIPaths.root.appendingPathComponent("Sources/CCUDA/ccuda.c"), encoding: .utf8)
        let driverPart = loader.components(separatedBy: "int nest_cuda_driver_load")[1].components(separatedBy: "int nest_nvrtc_load")[0]
        let symbols = try NSRegularExpression(pattern: #"RESOLVE\(\w+, "(\w+)""#).matches(in: driverPart, range: NSRange(driverPart.startIndex..., in: driverPart))
            .map { String(driverPart[Range($0.range(at: 1), in: driverPart)!]) }
        XCTAssertGreaterThan(symbols.count, 25)
        let source = "#include <stdlib.h>\n"
            + "int cuDriverGetVersion(int *v) { *v = atoi(getenv(\"FAKE_CUDA_VERSION\")); return 0; }\n"
            + symbols.filter { $0 != "cuDriverGetVersion" }.map { "int \($0)(void) { return 999; }\n" }.joined()
        try source.write(toFile: folder + "/fake.c", atomically: true, encoding: .utf8)
        let cc = Process()
        cc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        cc.arguments = ["cc", "-shared", "-fPIC", "-o", folder + "/libcuda.so.1", folder + "/fake.c"]
        try cc.run()
        cc.waitUntilExit()
        XCTAssertEqual(cc.terminationStatus, 0)
        let nvrtc13 = CLIPaths.root.appendingPathComponent(".build/nvrtc/nvidia/cu13/lib").path
        func info(_ version: String) throws -> String {
            let p = Process(), err = Pipe()
            p.executableURL = URL(fileURLWithPath: CLIPaths.root.appendingPathComponent(".build/release/nest-train").path)
            p.arguments = ["info", "--device", "cuda"]
            p.environment = ["NEST_TRAIN_CUDA_LIBS": "\(folder):\(nvrtc13)", "FAKE_CUDA_VERSION": version, "PATH": "/usr/bin:/bin", "HOME": folder]
            p.standardError = err
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            XCTAssertNotEqual(p.terminationStatus, 0)
            return text
        }
        let old = try info("11080")
        XCTAssertTrue(old.contains("no CUDA toolkit this driver can run (it supports CUDA 11.8)"), old)
        XCTAssertTrue(old.contains("CUDA 13: its libraries need a driver for CUDA 13.0") && old.contains("CUDA 12: its libraries need a driver for CUDA 12.0"), old)
        let twelve = try info("12040")
        XCTAssertTrue(twelve.contains("CUDA 13: its libraries need a driver for CUDA 13.0 or newer; this one supports 12.4"), twelve)
        XCTAssertTrue(twelve.contains("CUDA 12: cannot load NVRTC 12 (libnvrtc.so.12)"), twelve)
        XCTAssertTrue(twelve.contains("pip install nvidia-cuda-nvrtc-cu12 nvidia-cublas-cu12"), twelve)
        let thirteen = try info("13000")
        XCTAssertTrue(thirteen.contains("CUDA 13: cannot load cuBLAS 13 (libcublas.so.13)"), thirteen)
    }
}

/// The package root, for the tests that build files or run the binary.
enum CLIPaths {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
}
