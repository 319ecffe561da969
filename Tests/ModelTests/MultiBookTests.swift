import Config
import Foundation
import HDF5
import Model
import NN
import Tensor
import XCTest
import _TestSupport

final class MultiBookTests: XCTestCase {
    func model(books: Int) throws -> NESTModel {
        let path = Fixtures.directory.appendingPathComponent("nemo-tiny/nemo-tiny.config.yaml").path
        var config = try ModelConfigReader.read(try ConfigDocument(contentsOf: path, overrides: ["quantizer.num_books=\(books)", "decoder.num_decoders=\(books)", "loss.num_decoders=\(books)"]))
        config.encoder.dropout = 0
        return NESTModel(config: config, window: Tensor(zeros: [400]), filterbank: Tensor(zeros: [1, 80, 257]), seed: 3)
    }

    /// Two codebooks: tokens [B, T′, 2], a decoder of 2·V outputs (channel c·N + h), and a loss
    /// equal to the mean of the two books' NLLs over the masked tokens.
    func testTwoCodebooksEndToEnd() throws {
        let m = try model(books: 2)
        XCTAssertEqual(m.quantizer.codebooks.shape, [2, 256, 16])
        XCTAssertEqual(m.decoder.projection.weight.shape, [512, 64, 1])
        let f = try Fixtures.nemoTiny()
        let features = try f.tensor("/preprocessor/features")
        let lengths = try f.read("/preprocessor/lengths").ints
        let mask = FrameMask(try f.tensor("/train_step/frame_mask"))
        let tokens = m.quantizer.tokens(features).array.map { Int($0) }
        XCTAssertEqual(tokens.count, 2 * 18 * 2)
        XCTAssertNotEqual(stride(from: 0, to: tokens.count, by: 2).map { tokens[$0] }, stride(from: 1, to: tokens.count, by: 2).map { tokens[$0] },
                          "independent codebooks give different tokens")
        m.train()
        let r = m.maskedTokenLoss(clean: features, noisy: features, noisyLengths: lengths, frameMask: mask)
        XCTAssertEqual(r.maskedTokens, 12)
        // Reference: both books' log-softmax over their own V channels, averaged.
        let encoded = withoutGrad { m.encoder(m.maskProcessor.apply(features, frameMask: mask), lengths: lengths).encoded }
        let logits = withoutGrad { Tensor.linear(encoded.reshaped([-1, 64]), weight: m.decoder.projection.weight.reshaped([512, 64]), bias: m.decoder.projection.bias) }
        var total = 0.0
        let rows = r.tokenMask.indices.filter { r.tokenMask[$0] }
        for row in rows {
            for h in 0..<2 {
                let z = (0..<256).map { Double(logits.array[row * 512 + $0 * 2 + h]) }
                let mx = z.max()!
                let lse = mx + log(z.map { exp($0 - mx) }.reduce(0, +))
                total += lse - z[tokens[row * 2 + h]]
            }
        }
        XCTAssertEqual(Double(r.loss.scalar), total / Double(2 * rows.count), accuracy: 1e-4)
        r.loss.backward()
        XCTAssertNotNil(m.decoder.projection.weight.grad)
    }

    func testStateDictAtTheFileRootLoadsLikeUnderWeights() throws {
        let source = try model(books: 1)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("root-\(UUID().uuidString).h5").path
        let file = try HDF5File(path: path, mode: .create)
        for (name, array) in source.namedArrays() { try file.write("/\(name)", array) }
        try file.close()
        let target = try model(books: 1)
        let reader = try HDF5Group.foreign(path: path)
        XCTAssertEqual(reader.group, "/")
        XCTAssertTrue(reader.origin.contains("foreign"), reader.origin)
        try StateDictLoader.load(target, from: reader)
        for (a, b) in zip(source.stateDict(), target.stateDict()) {
            XCTAssertEqual(a.value.arrayData, b.value.arrayData, a.key)
        }
    }
}
