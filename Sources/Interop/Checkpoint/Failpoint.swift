import Foundation

/// Crash injection for the reliability tests: when `NEST_FAILPOINT` names a point, the process
/// kills itself with SIGKILL there, exactly as a preemption or OOM kill would, so tests can hit
/// the worst instants (half-written checkpoint, written but not renamed, one rank of a
/// data-parallel job after a given step) deterministically.
package enum Failpoint {
    static let active = ProcessInfo.processInfo.environment["NEST_FAILPOINT"]

    package static func hit(_ name: String) {
        if active == name { kill(getpid(), SIGKILL) }
    }
}
