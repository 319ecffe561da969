import Tensor

/// `nn.LayerNorm(d)` over the last dimension, eps 1e-5, weight 1, bias 0.
public final class LayerNorm: Module {
    public let weight: Tensor
    public let bias: Tensor
    public let eps: Float

    public init(_ features: Int, eps: Float = 1e-5) {
        weight = Tensor(repeating: 1, shape: [features])
        bias = Tensor(zeros: [features])
        self.eps = eps
        super.init()
        parameter("weight", weight)
        parameter("bias", bias)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { x.layerNorm(weight: weight, bias: bias, eps: eps) }
}

/// `nn.GroupNorm(G, C)` applied to channels-last input [B, …, C] (see `Tensor.groupNorm`);
/// without `affine`, `nn.InstanceNorm1d(C)` (G = C, no parameters, no running statistics).
public final class GroupNorm: Module {
    public let groups: Int
    public let weight: Tensor, bias: Tensor
    public let eps: Float

    public init(groups: Int, channels: Int, eps: Float = 1e-5, affine: Bool = true) {
        self.groups = groups
        weight = Tensor(repeating: 1, shape: [channels])
        bias = Tensor(zeros: [channels])
        self.eps = eps
        super.init()
        if affine {
            parameter("weight", weight)
            parameter("bias", bias)
        }
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { x.groupNorm(groups: groups, weight: weight, bias: bias, eps: eps) }
}

/// `nn.BatchNorm1d(C)` applied to channels-last input [.., C]: batch statistics and a momentum
/// update of the running statistics in training, running statistics in evaluation.
public final class BatchNorm1d: Module {
    public let weight: Tensor, bias: Tensor
    public let runningMean: Tensor, runningVar: Tensor
    public let batchesTracked: Int64Tensor
    public let momentum: Float, eps: Float
    /// Set when several processes share the batch (SyncBatchNorm); nil for one process.
    public var sync: BatchNormSync?

    public init(_ channels: Int, momentum: Float = 0.1, eps: Float = 1e-5) {
        weight = Tensor(repeating: 1, shape: [channels])
        bias = Tensor(zeros: [channels])
        runningMean = Tensor(zeros: [channels])
        runningVar = Tensor(repeating: 1, shape: [channels])
        batchesTracked = Int64Tensor([0], shape: [])
        self.momentum = momentum
        self.eps = eps
        super.init()
        parameter("weight", weight)
        parameter("bias", bias)
        buffer("running_mean", .float32(runningMean))
        buffer("running_var", .float32(runningVar))
        buffer("num_batches_tracked", .int64(batchesTracked))
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        if isTraining { batchesTracked.values[0] += 1 }
        return x.batchNorm(weight: weight, bias: bias, runningMean: runningMean, runningVar: runningVar,
                           training: isTraining, momentum: momentum, eps: eps, sync: sync)
    }

    /// The training forward of a process with no rows of the batch (see `BatchNormSync`).
    public func joinWithoutRows() {
        guard let sync else { return }
        batchesTracked.values[0] += 1
        Tensor.batchNormWithoutRows(runningMean: runningMean, runningVar: runningVar, momentum: momentum, sync: sync)
    }

    /// Joins the backward sums this BatchNorm still owes the other processes.
    public func joinOwedBackwards() { sync?.joinOwedBackwards(channels: weight.count) }
}
