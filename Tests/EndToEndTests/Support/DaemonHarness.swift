import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerTestSupport
import VeneerWire

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

/// Mounts what the daemon returns for `key` at a fresh target with `mount`, runs `body`
/// with the target, and unmounts even when the body fails.
func withMounted<T>(
    _ daemon: Daemon, _ key: String, using mount: ([Mount], String) throws -> Void = Mounts.mount,
    _ body: (String) async throws -> T
) async throws -> T {
    let target = try daemon.mountPoint()
    try mount(try await daemon.client.mounts(key), target)
    defer { Mounts.unmount(target) }
    return try await body(target)
}

/// `withDaemon`, with the daemon's API calls held against the contract.
func withAPI<T>(
    arguments: [String] = [], rootName: String = "root", _ body: (Daemon, CheckedAPI) async throws -> T
) async throws -> T {
    try await withDaemon(arguments: arguments, rootName: rootName) { daemon in
        try await body(daemon, CheckedAPI(daemon))
    }
}

/// `withAPI`, with the `/v1/mounts` calls too.
func withMountCalls<T>(
    arguments: [String] = [], rootName: String = "root", _ body: (Daemon, CheckedAPI, MountCalls) async throws -> T
) async throws -> T {
    try await withAPI(arguments: arguments, rootName: rootName) { daemon, api in
        try await body(daemon, api, MountCalls(daemon))
    }
}

/// `withMountCalls` on a daemon holding `CheckedAPI.containerOnALayer()`'s snapshots.
func withContainer<T>(_ body: (Daemon, CheckedAPI, MountCalls) async throws -> T) async throws -> T {
    try await withMountCalls { daemon, api, calls in
        try await api.containerOnALayer()
        return try await body(daemon, api, calls)
    }
}

/// Prepares `key` on `parent` and runs `body` with it mounted, as `withMounted` does.
func withPrepared<T>(
    _ daemon: Daemon, _ key: String, parent: String? = nil, kind: SnapshotKind? = nil,
    _ body: (String) async throws -> T
) async throws -> T {
    _ = try await daemon.client.prepare(PrepareRequest(key: key, parent: parent, kind: kind))
    return try await withMounted(daemon, key, body)
}

/// `withDaemon`, with the daemon's client.
func withClient<T>(
    arguments: [String] = [], rootName: String = "root", _ body: (Daemon, VeneerClient) async throws -> T
) async throws -> T {
    try await withDaemon(arguments: arguments, rootName: rootName) { daemon in try await body(daemon, daemon.client) }
}

/// Sleeps `interval` and checks `condition`, at most `attempts` times; whether it held.
func eventually(_ attempts: Int, every interval: Duration, _ condition: () -> Bool) async throws -> Bool {
    for _ in 0..<attempts {
        try await Task.sleep(for: interval)
        if condition() { return true }
    }
    return false
}
