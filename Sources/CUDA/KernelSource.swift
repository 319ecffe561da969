/// The CUDA C kernel sources, one file per family in `Kernels/`, embedded in the binary at
/// build time (so a bundle needs no files beside it) and compiled by NVRTC on first use.
public struct KernelSource: Sendable {
    public let family: String
    public let text: String

    public init(family: String, text: String) {
        self.family = family
        self.text = text
    }

    /// One per `.cu` file in `Kernels/` (Package.swift embeds each; a test holds this list to the
    /// folder), in name order.
    public static let all: [KernelSource] = [
        KernelSource(family: "activations", text: String(decoding: PackageResources.activations_cu, as: UTF8.self)),
        KernelSource(family: "adamw", text: String(decoding: PackageResources.adamw_cu, as: UTF8.self)),
        KernelSource(family: "attention", text: String(decoding: PackageResources.attention_cu, as: UTF8.self)),
        KernelSource(family: "batchnorm", text: String(decoding: PackageResources.batchnorm_cu, as: UTF8.self)),
        KernelSource(family: "convolution", text: String(decoding: PackageResources.convolution_cu, as: UTF8.self)),
        KernelSource(family: "dropout", text: String(decoding: PackageResources.dropout_cu, as: UTF8.self)),
        KernelSource(family: "layernorm", text: String(decoding: PackageResources.layernorm_cu, as: UTF8.self)),
        KernelSource(family: "layout", text: String(decoding: PackageResources.layout_cu, as: UTF8.self)),
        KernelSource(family: "softmax", text: String(decoding: PackageResources.softmax_cu, as: UTF8.self)),
        KernelSource(family: "targets", text: String(decoding: PackageResources.targets_cu, as: UTF8.self)),
    ]

    public static func named(_ family: String) -> KernelSource {
        guard let source = all.first(where: { $0.family == family }) else { preconditionFailure("no kernel family \(family)") }
        return source
    }
}

extension KernelSource {
    /// The `extern "C" __global__` kernels the source defines.
    public var kernelNames: [String] { kernelSignatures.map(\.name) }

    /// Each kernel's name and its parameters' C types, in order.
    var kernelSignatures: [(name: String, parameters: [String])] {
        text.components(separatedBy: "extern \"C\" __global__ void ").dropFirst().map { rest in
            let name = String(rest.prefix { $0 != "(" })
            let list = rest.dropFirst(name.count + 1).prefix { $0 != ")" }
            let parameters = list.split(separator: ",").map { parameter -> String in
                let p = parameter.trimmingCharacters(in: .whitespacesAndNewlines)
                let identifier = p.reversed().prefix { $0.isLetter || $0.isNumber || $0 == "_" }.count
                return String(p.dropLast(identifier)).trimmingCharacters(in: .whitespaces)
            }
            return (name, parameters)
        }
    }

    /// The family each kernel is defined in, for runtimes that load one family at a time.
    static let familyOfKernel: [String: String] = Dictionary(uniqueKeysWithValues: all.flatMap { source in source.kernelNames.map { ($0, source.family) } })
}
