/// Depthwise 1-D convolution over time with channels last: x [B, T, C], weight [C, 1, K]
/// (PyTorch's Conv1d layout with groups = C), zero padding `left`/`right`.
///
/// out[b, t, c] = bias[c] + Σ_k W[c, 0, k]·x[b, t + k − left, c] (cross-correlation, as PyTorch).
/// Channels-last keeps the Conformer's [B, T, D] layout and makes the inner loop contiguous.
extension Tensor {
    public func depthwiseConv1d(weight: Tensor, bias: Tensor?, left: Int, right: Int) -> Tensor {
        precondition(rank == 3 && weight.rank == 3 && weight.shape[0] == shape[2] && weight.shape[1] == 1,
                     "depthwiseConv1d: input \(shape) [B, T, C], weight \(weight.shape) [C, 1, K]")
        let (batch, t, c) = (shape[0], shape[1], shape[2])
        let k = weight.shape[2]
        let to = t + left + right - k + 1
        let device = Device.common("depthwiseConv1d", [self, weight, bias])
        let out = Tensor(uninitializedShape: [batch, to, c], on: device)
        device.backend.depthwiseConv1dForward(self, weight: weight, bias: bias, left: left, into: out)
        let inputs = bias.map { [self, weight, $0] } ?? [self, weight]
        let (ex, ew, eb) = (tapeEntry, weight.tapeEntry, bias?.tapeEntry)
        // dW reads the input; dx reads only the weights.
        let input = ew == nil ? nil : detached(), weightValues = weight.detached()
        return out.recording(inputs) { g in
            let gx = ex.map { Tensor(zeros: $0.shape, on: device) }
            let gw = ew.map { Tensor(uninitializedShape: $0.shape, on: device) }
            device.backend.depthwiseConv1dBackward(input, weight: weightValues, left: left, g, dx: gx, dw: gw)
            if let gx { ex?.accumulate(gx, owned: true) }
            if let gw { ew?.accumulate(gw, owned: true) }
            if let eb {
                eb.accumulate(withoutGrad { g.reshaped([batch * to, c]).summed(toShape: [1, c]) }.reshaped(eb.shape), owned: true)
            }
        }
    }
}
