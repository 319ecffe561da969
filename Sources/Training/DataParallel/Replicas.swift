import Interop
import Distributed
import Foundation
import Model
import NN
import Tensor

/// Makes every process's replica rank 0's: weights, buffers, optimizer moments and step, and
/// the training state. Run once at start, after rank 0 alone has restored a checkpoint (or
/// initialised from a `.nemo`): the checkpoint is read once, by the process that chose it,
/// and needs to be on rank 0's file system only.
enum Replicas {
    static func broadcast(model: NESTModel, optimizer: AdamW, state: inout TrainingState, group: ProcessGroup) {
        guard group.isDistributed else { return }
        // The others sleep while rank 0 reads (a broadcast's receivers would spin on its cores).
        group.barrier()
        for entry in model.stateDict() {
            switch entry.value {
            case .float32(let t): t.withMutableHostValues { group.broadcast(UnsafeMutableRawPointer($0.baseAddress!), bytes: $0.count * 4) }
            case .float64(let t): t.values.withUnsafeMutableBytes { if let p = $0.baseAddress { group.broadcast(p, bytes: $0.count) } }
            case .int64(let t): t.values.withUnsafeMutableBytes { if let p = $0.baseAddress { group.broadcast(p, bytes: $0.count) } }
            }
        }
        for (name, _) in optimizer.parameters {
            guard let (m, v) = optimizer.moments[name] else { continue }
            for t in [m, v] { t.withMutableHostValues { group.broadcast(UnsafeMutableRawPointer($0.baseAddress!), bytes: $0.count * 4) } }
        }
        var words = [Double(optimizer.step)] + state.encoded
        words.withUnsafeMutableBytes { group.broadcast($0.baseAddress!, bytes: $0.count) }
        optimizer.step = Int(words[0])
        state = TrainingState(encoded: Array(words.dropFirst()))
    }

    /// A checksum of the weights (a hash of every parameter's bits, parameters hashed in
    /// parallel and combined in order): replicas that drifted apart differ in it.
    static func checksum(_ model: NESTModel) -> UInt64 {
        let parameters = model.trainableParameters().map(\.tensor)
        var hashes = [UInt64](repeating: 0, count: parameters.count)
        hashes.withUnsafeMutableBufferPointer { out in
            Parallel.forRanges(parameters.count, grain: 1) { r in
                for p in r {
                    out[p] = parameters[p].withHostValues { values in
                        var h: UInt64 = 0
                        for (i, value) in values.enumerated() { h = h &+ (UInt64(value.bitPattern) ^ UInt64(i)) &* 0x9E37_79B9_7F4A_7C15 }
                        return h
                    }
                }
            }
        }
        return hashes.reduce(0xCBF2_9CE4_8422_2325) { ($0 ^ $1) &* 0x100_0000_01B3 }
    }
}
