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
