import Foundation
import Tensor

/// The frozen-feature probe of the NEST model card: the layers' features combined with learned
/// softmax weights, then a linear softmax classifier, trained with AdamW on features extracted
/// once. Every item is [L][D] (L layers of width D, e.g. mean-pooled utterances or single
/// frames). Features are standardised per layer and dimension with the training set's mean and
/// deviation. Deterministic from `seed`.
public enum LinearProbe {
    public struct Result {
        public let accuracy: Double
        /// Accuracy of always predicting the most frequent training label.
        public let majorityAccuracy: Double
        /// softmax of the learned layer weights (they sum to 1).
        public let layerWeights: [Double]
        public let classes: Int, trainItems: Int, testItems: Int, epochs: Int
    }

    public struct Settings {
        public var epochs = 100
        public var learningRate = 1e-2
        public var weightDecay = 1e-4
        public var batchSize = 256
        public var seed: UInt64 = 1
        public init() {}
    }

    public static func fit(train: [[[Float]]], trainLabels: [Int], test: [[[Float]]], testLabels: [Int], classes: Int,
                           settings: Settings = Settings()) -> Result {
        precondition(!train.isEmpty && train.count == trainLabels.count && test.count == testLabels.count, "items and labels must pair")
        let (layers, width) = (train[0].count, train[0][0].count)
        // Per layer and dimension: mean and deviation over the training items.
        var mean = [Float](repeating: 0, count: layers * width), std = [Float](repeating: 0, count: layers * width)
        for item in train { for l in 0..<layers { for d in 0..<width { mean[l * width + d] += item[l][d] } } }
        for i in mean.indices { mean[i] /= Float(train.count) }
        for item in train { for l in 0..<layers { for d in 0..<width { let x = item[l][d] - mean[l * width + d]; std[l * width + d] += x * x } } }
        for i in std.indices { std[i] = max((std[i] / Float(train.count)).squareRoot(), 1e-6) }
        /// [L, N·D] for a set of items, standardised.
        func stack(_ items: [[[Float]]]) -> Tensor {
            var values = [Float](repeating: 0, count: layers * items.count * width)
            for (n, item) in items.enumerated() {
                for l in 0..<layers { for d in 0..<width { values[(l * items.count + n) * width + d] = (item[l][d] - mean[l * width + d]) / std[l * width + d] } }
            }
            return Tensor(values, shape: [layers, items.count * width])
        }
        let rng = RandomGenerator(seed: settings.seed)
        let layerLogits = Tensor(zeros: [1, layers], requiresGrad: true)
        let weight = Tensor(zeros: [classes, width], requiresGrad: true)
        rng.fillUniform(weight, -1 / Float(width).squareRoot(), 1 / Float(width).squareRoot())
        let bias = Tensor(zeros: [classes], requiresGrad: true)
        let optimizer = AdamW(parameters: [("layer_weights", layerLogits), ("weight", weight), ("bias", bias)],
                              settings: .init(betas: (0.9, 0.999), eps: 1e-8, weightDecay: settings.weightDecay))
        func logits(_ features: Tensor, count: Int) -> Tensor {
            let combined = Tensor.matmul(layerLogits.softmax(), features).reshaped([count, width])   // Σ_l softmax(w)_l · X_l
            return Tensor.linear(combined, weight: weight, bias: bias)
        }
        for _ in 0..<settings.epochs {
            let order = rng.permutation(train.count)
            for start in stride(from: 0, to: order.count, by: settings.batchSize) {
                let batch = Array(order[start..<min(order.count, start + settings.batchSize)])
                let x = stack(batch.map { train[$0] })
                let loss = logits(x, count: batch.count).logSoftmax().nllLoss(targets: batch.map { trainLabels[$0] })
                loss.backward()
                _ = optimizer.step(lr: settings.learningRate)
            }
        }
        let predicted = withoutGrad { () -> [Int] in
            logits(stack(test), count: test.count).rowArgmax().array.map { Int($0) }
        }
        var counts = [Int](repeating: 0, count: classes)
        for l in trainLabels { counts[l] += 1 }
        let majority = counts.indices.max { counts[$0] < counts[$1] || (counts[$0] == counts[$1] && $0 > $1) } ?? 0
        let n = Double(max(test.count, 1))
        let weights = withoutGrad { layerLogits.softmax().array.map(Double.init) }
        return Result(accuracy: Double(zip(predicted, testLabels).filter { $0 == $1 }.count) / n,
                      majorityAccuracy: Double(testLabels.filter { $0 == majority }.count) / n,
                      layerWeights: weights, classes: classes, trainItems: train.count, testItems: test.count, epochs: settings.epochs)
    }
}
