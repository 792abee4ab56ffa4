import Synchronization
import VeneerCore

/// Locks by mount target, so that a mount and an unmount of one target (or two of
/// either) take turns instead of one of them being turned away. Striped: targets share
/// a fixed number of locks, so two targets may wait for each other for the length of
/// one mount, and nothing grows with the number of targets. Held only by threads that
/// may block.
final class TargetLocks: Sendable {
    private final class Stripe: Sendable {
        let lock = Mutex(())
    }

    private let stripes: [Stripe] = (0..<64).map { _ in Stripe() }

    func withLock<T>(_ target: String, _ body: () throws(VeneerError) -> T) throws(VeneerError) -> T {
        var hasher = Hasher()
        hasher.combine(target)
        let stripe = stripes[Int(UInt(bitPattern: hasher.finalize()) % UInt(stripes.count))]
        return try stripe.lock.withLock { _ throws(VeneerError) -> T in try body() }
    }
}
