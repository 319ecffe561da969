import NN
import Tensor

/// NeMo's `RandomProjectionVectorQuantizer` (BEST-RQ targets): stack `combine` frames
/// time-major, project with a frozen xavier-normal matrix, L2-normalise per book, and take the
/// nearest unit-norm float64 code by L2 distance.
public final class RandomProjectionVectorQuantizer: Module {
    public let config: QuantizerConfig
    /// [N, V, code_dim] float64, unit-norm codes.
    public let codebooks: DoubleTensor
    public let proj: Linear
    /// The codebooks as the code search reads them, on the device the features were last on,
    /// and the `codebooks.version` they were copied from: uploaded once (and again after a
    /// load), not once per batch.
    private var searchedCodebooks: (tensor: Tensor, version: Int)?

    public init(config: QuantizerConfig, rng: RandomGenerator) {
        self.config = config
        let (n, v, c) = (config.numBooks, config.numClasses, config.codeDim)
        var codes = [Double](repeating: 0, count: n * v * c)
        for code in 0..<(n * v) {
            var norm = 0.0
            for j in 0..<c { let x = rng.normal(); codes[code * c + j] = x; norm += x * x }
            norm = max(norm.squareRoot(), 1e-12)
            for j in 0..<c { codes[code * c + j] /= norm }
        }
        codebooks = DoubleTensor(codes, shape: [n, v, c])
        let stacked = config.featIn * config.combineTimeSteps
        proj = Linear(inputFeatures: stacked, outputFeatures: n * c, bias: false, rng: rng)
        Initialization.xavierNormal(proj.weight, fanIn: stacked, fanOut: n * c, rng: rng)
        super.init()
        frozenParameter("codebooks", .float64(codebooks))
        registerChildren()
        proj.weight.requiresGrad = false
    }

    /// Time-major stacking [B, F, T] → [B, T/k, k·F] (frame 8j's F values first).
    public func stack(_ features: Tensor) -> Tensor {
        let (b, f, t) = (features.shape[0], features.shape[1], features.shape[2])
        let k = config.combineTimeSteps
        precondition(t % k == 0, "quantizer: \(t) frames is not a multiple of combine_time_steps \(k)")
        return withoutGrad { features.transposed(1, 2).reshaped([b, t / k, k * f]) }
    }

    /// Projected, per-book L2-normalised vectors [B, T/k, N·code_dim].
    public func projectNormalized(_ features: Tensor) -> Tensor {
        withoutGrad { proj(stack(features)).l2NormalizedGroups(width: config.codeDim) }
    }

    /// Target tokens [B·(T/k)·N] (book fastest), as floats on the features' device.
    public func tokens(_ features: Tensor) -> Tensor {
        let x = projectNormalized(features)
        if searchedCodebooks.map({ $0.tensor.device !== x.device || $0.version != codebooks.version }) ?? true {
            searchedCodebooks = (Tensor(doubles: codebooks.values, on: x.device), codebooks.version)
        }
        return x.nearestCodes(codebooks: searchedCodebooks!.tensor, books: config.numBooks, classes: config.numClasses, cosine: config.cosineDistance)
    }
}
