import Dispatch
import VeneerCore

/// Runs blocking file-system work on a dispatch queue, away from the small
/// cooperative thread pool that serves requests.
func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global(qos: .userInitiated).async {
            continuation.resume(with: Result { try body() })
        }
    }
}

/// ``blocking(_:)`` for work that throws only ``VeneerError``.
public func blockingOperation<T: Sendable>(
    _ body: @escaping @Sendable () throws(VeneerError) -> T
) async throws(VeneerError) -> T {
    let result: Result<T, VeneerError> = await withCheckedContinuation { continuation in
        DispatchQueue.global(qos: .userInitiated).async {
            continuation.resume(returning: Result { () throws(VeneerError) -> T in try body() })
        }
    }
    return try result.get()
}

/// A first-come, first-served async mutex for long operations that must not overlap.
public actor AsyncGate {
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    public init() {}

    public func enter() async {
        if !busy {
            busy = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    public func leave() {
        if waiters.isEmpty {
            busy = false
        } else {
            waiters.removeFirst().resume()
        }
    }
}

extension Optional {
    /// `flatMap` with an async transform.
    func asyncFlatMap<U, E: Error>(_ transform: (Wrapped) async throws(E) -> U?) async throws(E) -> U? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
