import Foundation

/// An activation and its derivative as a type, so the CPU kernels specialise on it.
protocol Activation: UnaryFunction {
    /// f′ from the saved value: x, or y when `ActivationFunction.derivativeFromOutput`.
    func derivative(_ saved: Float) -> Float
}

enum Activations {
    public struct ReLU: Activation {
        @inline(__always) public func callAsFunction(_ x: Float) -> Float { max(x, 0) }
        @inline(__always) public func derivative(_ y: Float) -> Float { y > 0 ? 1 : 0 }
    }
    public struct Sigmoid: Activation {
        @inline(__always) public func callAsFunction(_ x: Float) -> Float { Vector.sigmoid(x) }
        @inline(__always) public func derivative(_ y: Float) -> Float { y * (1 - y) }
    }
    /// Swish x·σ(x); derivative σ(x)·(1 + x·(1 − σ(x))).
    public struct SiLU: Activation {
        @inline(__always) public func callAsFunction(_ x: Float) -> Float { x / (1 + Vector.exp(-x)) }
        @inline(__always) public func derivative(_ x: Float) -> Float { let s = Vector.sigmoid(x); return s * (1 + x * (1 - s)) }
    }
    /// torch's exact GELU x·Φ(x) = x·(1 + erf(x/√2))/2 (not the tanh approximation);
    /// derivative Φ(x) + x·φ(x).
    public struct GELU: Activation {
        @inline(__always) public func callAsFunction(_ x: Float) -> Float { 0.5 * x * (1 + erf(x * 0.70710678118654752)) }
        @inline(__always) public func derivative(_ x: Float) -> Float {
            0.5 * (1 + erf(x * 0.70710678118654752)) + x * 0.39894228040143268 * Vector.exp(-0.5 * x * x)
        }
    }
}

