import Tensor

/// `nn.Dropout(p)`: active only in training; draws from the model's dropout generator.
public final class Dropout: Module {
    public let p: Float
    /// The generator masks are drawn from; a model points all its dropouts at one generator
    /// so that a checkpoint captures a single state.
    public var generator: RandomGenerator

    public init(_ p: Float, rng: RandomGenerator) {
        self.p = p
        self.generator = rng
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { isTraining && p > 0 ? x.dropout(p, rng: generator) : x }
}
