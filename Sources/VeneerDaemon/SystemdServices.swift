import Foundation
import Logging
import ServiceLifecycle
import UnixSignals
import VeneerAPI
import VeneerCore
import VeneerOS
import VeneerService

/// Sends STOPPING=1 when graceful shutdown starts. Listed last in the service group,
/// so it is the first service told to shut down.
struct StoppingNotifier: Service {
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        logger.info("stopping")
        Systemd.stopping()
    }
}

/// Keeps systemd's STATUS= line current: `142 snapshots (12 active, 3 views),
/// 4 mounts, deepest chain 37/500`, sent only when it changes.
struct StatusReporter: Service {
    let snapshotter: Snapshotter
    /// Appended to the line when set (a rejected reload).
    let note: @Sendable () -> String?

    /// The STATUS= line: the summary, then the note when there is one. A summary that
    /// cannot be read leaves the note alone (or nil without one).
    static func line(snapshotter: Snapshotter, note: String?) async -> String? {
        let summary = try? await snapshotter.status().summary
        switch (summary, note) {
        case (let summary?, let note?): return summary + "; " + note
        case (let summary?, nil): return summary
        case (nil, let note): return note
        }
    }

    func run() async throws {
        guard Systemd.isNotifySocketSet else { return }
        try? await cancelWhenGracefulShutdown {
            var last = ""
            while true {
                if let line = await Self.line(snapshotter: snapshotter, note: note()), line != last {
                    Systemd.status(line)
                    last = line
                }
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }
}

/// Sends WATCHDOG=1 at half the period systemd asks for, and only while the daemon is
/// healthy: the database answers a query and the API answers a request through its
/// own socket. A wedged daemon stops pinging and systemd restarts it.
struct WatchdogPinger: Service {
    let snapshotter: Snapshotter
    let socket: String
    let logger: Logger

    func run() async throws {
        guard let interval = Systemd.watchdogInterval() else { return }
        let socket = self.socket
        try? await cancelWhenGracefulShutdown {
            while true {
                do {
                    try await snapshotter.ping()
                    try await Self.probeAPI(socket: socket)
                    Systemd.watchdog()
                } catch {
                    logger.error("health check failed; not pinging the watchdog", metadata: ["error": "\(error)"])
                }
                try await Task.sleep(for: interval / 2)
            }
        }
    }

    /// One `GET /v1/status` through the socket, on a thread of its own.
    static func probeAPI(socket: String) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            Thread.detachNewThread {
                continuation.resume(with: Result {
                    let connection = try UnixStreamConnection(path: socket)
                    try connection.writeAll(Array("GET /v1/status HTTP/1.1\r\nHost: veneerd\r\nConnection: close\r\n\r\n".utf8))
                    var answer: [UInt8] = []
                    while answer.count < 12 {
                        let before = answer.count
                        try connection.read(into: &answer)
                        if answer.count == before { break }
                    }
                    guard answer.starts(with: Array("HTTP/1.1 200".utf8)) else {
                        throw VeneerError.unavailable("the API did not answer its own health check")
                    }
                })
            }
        }
    }
}

/// SIGHUP: a ``ConfigurationReload`` (whose outcome is logged and put in the status).
struct Reloader: Service {
    let signals: UnixSignalsSequence
    let reload: @Sendable () async -> Void

    func run() async throws {
        let signals = self.signals
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                await reload()
            }
        }
    }
}

/// Sends EXTEND_TIMEOUT_USEC every few seconds while `body` runs, so that a long
/// start-up recovery is not mistaken for a hung start.
func withExtendedStartTimeout<T: Sendable>(_ body: () async throws -> T) async throws -> T {
    guard Systemd.isNotifySocketSet else { return try await body() }
    let extender = Task {
        while !Task.isCancelled {
            Systemd.extendTimeout(microseconds: 30_000_000)
            try? await Task.sleep(for: .seconds(10))
        }
    }
    defer { extender.cancel() }
    return try await body()
}
