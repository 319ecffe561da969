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
        // Weights transposed to [K, C] so each tap is a contiguous channel vector.
        var taps = [Float](repeating: 0, count: k * c)
        for ch in 0..<c { for j in 0..<k { taps[j * c + ch] = weight.data[ch * k + j] } }
        let out = Tensor(uninitializedShape: [batch, to, c])
        let x = data, y = out.data
        taps.withUnsafeBufferPointer { tp in
            let tp = tp.baseAddress!
            Parallel.forRanges(batch * to, grain: max(1, 4096 / c)) { r in
                for bt in r {
                    let b = bt / to, i = bt % to
                    let yr = y + bt * c
                    if let bias { yr.update(from: bias.data, count: c) } else { yr.update(repeating: 0, count: c) }
                    for j in 0..<k {
                        let src = i + j - left
                        if src < 0 || src >= t { continue }
                        let xr = x + (b * t + src) * c, wr = tp + j * c
                        for ch in 0..<c { yr[ch] += wr[ch] * xr[ch] }
                    }
                }
            }
        }
        let inputs = bias.map { [self, weight, $0] } ?? [self, weight]
        let (ex, ew, eb) = (tapeEntry, weight.tapeEntry, bias?.tapeEntry)
        // dW reads the input; dx reads only the (copied) taps.
        let input = ew == nil ? nil : detached()
        return out.recording(inputs) { g in
            let gp = g.data
            if let ex {
                let gx = Tensor(zeros: ex.shape)
                taps.withUnsafeBufferPointer { tp in
                    let tp = tp.baseAddress!
                    // Each input row gathers from the outputs that read it: no write conflicts.
                    Parallel.forRanges(batch * t, grain: max(1, 4096 / c)) { r in
                        for bs in r {
                            let b = bs / t, s = bs % t
                            let dr = gx.data + bs * c
                            for j in 0..<k {
                                let i = s - j + left
                                if i < 0 || i >= to { continue }
                                let gr = gp + (b * to + i) * c, wr = tp + j * c
                                for ch in 0..<c { dr[ch] += wr[ch] * gr[ch] }
                            }
                        }
                    }
                }
                ex.accumulate(gx, owned: true)
            }
            if let ew, let x = input?.data {
                var gt = [Float](repeating: 0, count: k * c)
                gt.withUnsafeMutableBufferPointer { gtp in
                    let gtp = gtp.baseAddress!
                    // Channel ranges own their taps: parallel without write conflicts.
                    Parallel.forRanges(c, grain: 64) { channels in
                        for b in 0..<batch {
                            for i in 0..<to {
                                let gr = gp + (b * to + i) * c
                                for j in 0..<k {
                                    let src = i + j - left
                                    if src < 0 || src >= t { continue }
                                    let xr = x + (b * t + src) * c, row = gtp + j * c
                                    for ch in channels { row[ch] += gr[ch] * xr[ch] }
                                }
                            }
                        }
                    }
                }
                let gw = Tensor(uninitializedShape: ew.shape)
                for ch in 0..<c { for j in 0..<k { gw.data[ch * k + j] = gt[j * c + ch] } }
                ew.accumulate(gw, owned: true)
            }
            if let eb {
                eb.accumulate(withoutGrad { g.reshaped([batch * to, c]).summed(toShape: [1, c]) }.reshaped(eb.shape), owned: true)
            }
        }
    }
}
