import Tensor

/// Which feature frames of a batch are masked: [B, T], 1 = masked. It is drawn on the host and
/// stays there: the token mask and the masked positions are host decisions, so a device never
/// reads a mask back; the one op that edits frames with it uploads it.
public struct FrameMask: Equatable, Sendable {
    /// B·T values, 0 or 1, utterance-major.
    public let values: [Float]
    public let batch: Int
    public let frames: Int

    public init(_ values: [Float], batch: Int, frames: Int) {
        precondition(values.count == batch * frames, "frame mask: \(values.count) values for [\(batch), \(frames)]")
        (self.values, self.batch, self.frames) = (values, batch, frames)
    }

    /// The mask in a [B, T] tensor (a fixture's), read once.
    public init(_ tensor: Tensor) {
        precondition(tensor.rank == 2, "frame mask: expected [B, T], got \(tensor.shape)")
        self.init(tensor.array, batch: tensor.shape[0], frames: tensor.shape[1])
    }

    public var maskedFrames: Int { values.reduce(0) { $1 != 0 ? $0 + 1 : $0 } }

    /// The same mask over `n` frames, each row's frames first (unmasked frames appended).
    public func padded(toFrames n: Int) -> FrameMask {
        precondition(n >= frames, "frame mask: cannot pad \(frames) frames to \(n)")
        guard n > frames else { return self }
        var out = [Float](repeating: 0, count: batch * n)
        for b in 0..<batch { out.replaceSubrange((b * n)..<(b * n + frames), with: values[(b * frames)..<((b + 1) * frames)]) }
        return FrameMask(out, batch: batch, frames: n)
    }

    /// Means of consecutive blocks of `k` frames per utterance, [B·(T/k)] (a trailing partial
    /// block left out), summed in frame order.
    public func blockMeans(_ k: Int) -> [Float] {
        precondition(k > 0, "blockMeans: block of \(k) frames")
        let blocks = frames / k
        var means = [Float](repeating: 0, count: batch * blocks)
        for b in 0..<batch {
            for j in 0..<blocks {
                var s: Float = 0
                for i in 0..<k { s += values[b * frames + j * k + i] }
                means[b * blocks + j] = s / Float(k)
            }
        }
        return means
    }
}
