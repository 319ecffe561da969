import Config
import Foundation
import HDF5
import Model
import NN
import Tensor
import _TestSupport

/// The `nemo-tiny` model built from the fixture's own NeMo config, with its weights loaded.
enum NeMoTinyFixture {
    static func file() throws -> HDF5File { try Fixtures.nemoTiny() }

    static func config() throws -> NESTConfig {
        let path = Fixtures.directory.appendingPathComponent("nemo-tiny/nemo-tiny.config.yaml").path
        return try ModelConfigReader.read(try ConfigDocument(contentsOf: path))
    }

    static func model() throws -> (NESTModel, HDF5File) {
        let f = try file()
        let model = NESTModel(config: try config(), window: Tensor(zeros: [400]), filterbank: Tensor(zeros: [1, 80, 257]), seed: 1)
        try StateDictLoader.load(model, from: HDF5Group(file: f, group: "/weights", origin: Fixtures.nemoTinyPath))
        return (model, f)
    }
}

extension HDF5File {
    func ints(_ name: String) throws -> [Int] { try read(name).ints }
}
