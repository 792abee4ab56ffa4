import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` with a started daemon and always tears it down, even when the body fails.
func withDaemon<T>(
    arguments: [String] = [], rootName: String = "root", _ body: (Daemon) async throws -> T
) async throws -> T {
    let daemon = try await Daemon(arguments: arguments, rootName: rootName)
    do {
        let result = try await body(daemon)
        await daemon.destroy()
        return result
    } catch {
        let log = daemon.log
        await daemon.destroy()
        Issue.record("veneerd log:\n\(log.suffix(4000))")
        throw error
    }
}

/// Mounts what the daemon returns for `key` at a fresh target, runs `body` with the
/// target, and unmounts even when the body fails.
func withMounted<T>(
    _ daemon: Daemon, _ key: String, _ body: (String) async throws -> T
) async throws -> T {
    let target = try daemon.mountPoint()
    try Mounts.mount(try await daemon.client.mounts(key), at: target)
    defer { Mounts.unmount(target) }
    return try await body(target)
}
