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
}
