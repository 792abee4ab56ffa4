import Dispatch
import VeneerCore

extension Optional {
    /// `flatMap` with an async transform.
    func asyncFlatMap<U, E: Error>(_ transform: (Wrapped) async throws(E) -> U?) async throws(E) -> U? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
