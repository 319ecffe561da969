import Dispatch

/// Seconds on the monotonic clock (system uptime): the one reading every duration nest-train
/// measures is taken from.
public enum MonotonicClock {
    public static var seconds: Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}
