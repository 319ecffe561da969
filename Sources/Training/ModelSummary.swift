import Foundation
import Model
import NN

/// Parameter counts as NeMo reports them (every nn.Parameter, frozen ones included) and an
/// estimate of training memory.
public struct ModelSummary {
    public let total: Int, trainable: Int, encoder: Int, decoder: Int, frozen: Int, buffers: Int
    /// State-dict entries (parameters and buffers), as NeMo's `state_dict()` lists them.
    public let entries: Int
    public let batch: Int, seconds: Double
    public let estimatedBytes: Int

    public init(model: NESTModel, config: NESTConfig, batch: Int, seconds: Double) {
        // Entries as the state dict lists them; counts over distinct storages, as NeMo counts.
        entries = model.stateDict().count
        let stateDict = model.uniqueStateDict()
        let params = stateDict.filter(\.isParameter)
        total = params.reduce(0) { $0 + $1.value.count }
        trainable = params.filter(\.isTrainable).reduce(0) { $0 + $1.value.count }
        encoder = params.filter { $0.key.hasPrefix("encoder.") }.reduce(0) { $0 + $1.value.count }
        decoder = params.filter { $0.key.hasPrefix("decoder.") }.reduce(0) { $0 + $1.value.count }
        frozen = total - trainable
        buffers = stateDict.filter { !$0.isParameter }.reduce(0) { $0 + $1.value.count }
        self.batch = batch
        self.seconds = seconds
        // Weights, gradients and two Adam moments (16 B per trainable parameter), the rest of
        // the state (4 B per value), ~150 MiB of process baseline, and what backward keeps plus
        // the pool's idle buffers: per layer about 30 [B, T′, D]-sized tensors (the 4·D
        // feed-forward hidden counts 4×) and 4 [B, H, T′, T′]-sized attention tensors, plus one
        // of the subsampling's first convolution maps. Calibrated on measured peaks
        // (nest-train bench): large 4 × 10 s 2464–2476 MiB, XL 1 × 10 s 10012–10031 MiB,
        // XL 4 × 10 s 11347 MiB.
        let e = config.encoder
        let tPrime = Double(Int(seconds * 100) / e.subsamplingFactor + 2)
        let perLayer = 30.0 * Double(batch) * tPrime * Double(e.dModel) + 4.0 * Double(batch * e.nHeads) * tPrime * tPrime
        let subsampling = Double(batch) * Double(e.subsamplingConvChannels) * (seconds * 100 / 2) * Double(e.featIn / 2)
        let activations = 4.0 * (Double(e.nLayers) * perLayer + subsampling)
        estimatedBytes = 16 * trainable + 4 * (total - trainable + buffers) + (150 << 20) + Int(activations)
    }

    public var text: String {
        func f(_ n: Int) -> String {
            let s = String(n)
            return String(s.reversed().enumerated().map { $0.offset > 0 && $0.offset % 3 == 0 ? ",\($0.element)" : "\($0.element)" }.joined().reversed())
        }
        return """
        parameters: \(f(total)) total, \(f(trainable)) trainable, \(f(frozen)) frozen
        encoder:    \(f(encoder))
        decoder:    \(f(decoder))
        buffers:    \(f(buffers)) values (BatchNorm statistics, preprocessor window and filterbank)
        state dict: \(entries) entries
        training memory estimate at batch \(batch) × \(seconds) s: \(String(format: "%.2f", Double(estimatedBytes) / Double(1 << 30))) GiB
        """
    }

    public var json: String {
        "{\"total\": \(total), \"trainable\": \(trainable), \"frozen\": \(frozen), \"encoder\": \(encoder), \"decoder\": \(decoder), "
            + "\"buffers\": \(buffers), \"state_dict_entries\": \(entries), \"batch\": \(batch), \"seconds\": \(seconds), \"estimated_training_bytes\": \(estimatedBytes)}"
    }
}
