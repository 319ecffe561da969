import Audio
import Model
import Tensor

/// Builds the NEST model with the front end's window and filterbank as its preprocessor
/// buffers, so that the state dict is NeMo's complete one.
public enum ModelFactory {
    public static func make(_ config: RunConfig) -> (NESTModel, FilterbankFeatures) {
        let frontEnd = FilterbankFeatures(settings: config.frontEnd)
        let window = Tensor(frontEnd.window, shape: [frontEnd.window.count])
        let bins = config.frontEnd.nFFT / 2 + 1
        let filterbank = Tensor(frontEnd.filterbank, shape: [1, config.frontEnd.features, bins])
        return (NESTModel(config: config.model, window: window, filterbank: filterbank, seed: config.seed), frontEnd)
    }
}
