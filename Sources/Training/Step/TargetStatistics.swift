import Distributed
import Foundation

/// What a model that ignores its input could score on a set of masked targets, beside what the
/// model scored, each with its standard error: the baselines a validation figure needs before
/// it says anything (the majority target is often digital silence, which "always predict
/// silence" gets right without skill).
public struct TargetStatistics {
    /// Predictions counted (masked tokens × codebooks), their NLL sum and sum of squares.
    public var count = 0
    var nllSum = 0.0, nllSquares = 0.0
    /// Per code: how often it is the target, how often it is predicted, how often it is a
    /// correctly predicted target.
    var targets: [Int: Int] = [:], predicted: [Int: Int] = [:], correctByTarget: [Int: Int] = [:]

    public init() {}

    public mutating func add(target: Int, prediction: Int, nll: Double) {
        count += 1
        nllSum += nll
        nllSquares += nll * nll
        targets[target, default: 0] += 1
        predicted[prediction, default: 0] += 1
        if prediction == target { correctByTarget[target, default: 0] += 1 }
    }

    public static func += (a: inout TargetStatistics, b: TargetStatistics) {
        a.count += b.count
        a.nllSum += b.nllSum
        a.nllSquares += b.nllSquares
        a.targets.merge(b.targets, uniquingKeysWith: +)
        a.predicted.merge(b.predicted, uniquingKeysWith: +)
        a.correctByTarget.merge(b.correctByTarget, uniquingKeysWith: +)
    }

    /// The statistics of all processes (codes are below `classes`).
    func summed(over group: ProcessGroup, classes: Int) -> TargetStatistics {
        guard group.isDistributed else { return self }
        let tables = [targets, predicted, correctByTarget]
        var dense = [Double](repeating: 0, count: 3 + 3 * classes)
        dense[0] = Double(count)
        dense[1] = nllSum
        dense[2] = nllSquares
        for (t, table) in tables.enumerated() { for (code, n) in table { dense[3 + t * classes + code] += Double(n) } }
        dense = group.sum(dense)
        var out = TargetStatistics()
        out.count = Int(dense[0])
        out.nllSum = dense[1]
        out.nllSquares = dense[2]
        var summed: [[Int: Int]] = [[:], [:], [:]]
        for t in 0..<3 {
            for code in 0..<classes where dense[3 + t * classes + code] > 0 { summed[t][code] = Int(dense[3 + t * classes + code]) }
        }
        (out.targets, out.predicted, out.correctByTarget) = (summed[0], summed[1], summed[2])
        return out
    }

    var n: Double { Double(max(count, 1)) }
    /// The most frequent target (the smallest code on ties, so the choice is reproducible).
    public var majority: Int? { targets.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }?.key }

    public var loss: Double { nllSum / n }
    public var lossError: Double { ((nllSquares / n - loss * loss).magnitude / n).squareRoot() }
    public var accuracy: Double { Double(correctByTarget.values.reduce(0, +)) / n }
    public var accuracyError: Double { Self.binomialError(accuracy, n) }
    /// Accuracy of always predicting the majority target.
    public var priorAccuracy: Double { Double(majority.map { targets[$0]! } ?? 0) / n }
    public var priorAccuracyError: Double { Self.binomialError(priorAccuracy, n) }
    /// Unigram entropy of the targets (nats): the loss a model that ignores its input cannot beat.
    public var entropy: Double { -targets.values.reduce(0.0) { h, c in let p = Double(c) / n; return h + p * log(p) } }
    /// Delta-method standard error of the plug-in entropy: √((Σ p ln²p − H²)/N).
    public var entropyError: Double {
        let second = targets.values.reduce(0.0) { s, c in let p = Double(c) / n; return s + p * log(p) * log(p) }
        return ((second - entropy * entropy).magnitude / n).squareRoot()
    }
    /// Entropy − loss: what the model knows beyond the target frequencies (errors added in
    /// quadrature; the two estimates share their tokens, so this is conservative).
    public var informationGain: Double { entropy - loss }
    public var informationGainError: Double { (entropyError * entropyError + lossError * lossError).squareRoot() }
    /// Accuracy on targets other than the majority code (the silence code on speech corpora).
    public var nonMajorityAccuracy: Double {
        guard let m = majority else { return 0 }
        let others = count - targets[m]!
        return others > 0 ? Double(correctByTarget.filter { $0.key != m }.values.reduce(0, +)) / Double(others) : 0
    }
    /// Share of predictions equal to the majority target: near 1 when the model collapsed onto it.
    public var majorityShare: Double { Double(majority.flatMap { predicted[$0] } ?? 0) / n }
    /// Distinct target codes over `classes`.
    public func codebookUsage(classes: Int) -> Double { Double(targets.count) / Double(max(classes, 1)) }

    static func binomialError(_ p: Double, _ n: Double) -> Double { (p * (1 - p) / n).squareRoot() }
}
