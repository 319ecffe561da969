import NN
import Tensor
import XCTest

/// A module's children are named once, where they are declared: `registerChildren` names each
/// module-holding property in snake case (NeMo's attribute names), in declaration order.
final class ModuleNamingTests: XCTestCase {
    final class Block: Module {
        let normFeedForward1 = LayerNorm(2)
        let wQKV = Linear(inputFeatures: 2, outputFeatures: 6, bias: false, rng: RandomGenerator(seed: 1))
        let absent: LayerNorm? = nil
        let present: LayerNorm? = LayerNorm(2)
        let layers = [LayerNorm(2), LayerNorm(2)]
        let notAModule = 3
        let heldElsewhere = LayerNorm(2)

        override init() {
            super.init()
            registerChildren(except: ["heldElsewhere"])
        }
    }

    func testChildrenAreTheDeclaredPropertiesInSnakeCase() {
        XCTAssertEqual(Block().stateDict().map(\.key), [
            "norm_feed_forward1.weight", "norm_feed_forward1.bias", "w_qkv.weight", "present.weight", "present.bias",
            "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias",
        ])
    }
}
