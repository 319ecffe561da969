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
        // the state (4 B per value), the process baseline and the activations (`MemoryBudget`).
        estimatedBytes = 16 * trainable + 4 * (total - trainable + buffers) + Int(MemoryBudget.baseline)
            + Int(MemoryBudget.activations(config.encoder, batch: batch, seconds: seconds))
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
