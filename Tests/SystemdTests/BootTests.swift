import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("A Debian machine boots under systemd")
struct BootTests {
    /// Proves the harness: systemd is PID 1 and finishes booting, a unit starts and
    /// runs, the project's units pass systemd-analyze verify, and the machine powers
    /// off and leaves nothing behind.
    @Test func bootsRunsAUnitAndPowersOff() async throws {
        let started = ContinuousClock.now
        let machine = try await SystemdMachine.boot()
        let booted = ContinuousClock.now
        let directory = machine.directory
        do {
            let state = try await machine.exec(["systemctl", "is-system-running"])
            #expect(["running", "degraded"].contains(state.output), "\(state)")
            #expect(try await machine.run(["cat", "/proc/1/comm"]).output == "systemd")
            #expect(try await machine.run(["systemd-detect-virt", "--container"]).output == "container-other")

            try machine.writeFile(
                "/etc/systemd/system/veneer-hello.service",
                """
                [Service]
                Type=oneshot
                RemainAfterExit=yes
                ExecStart=/bin/sh -c 'echo "hello from $$" > /run/veneer-hello'
                """)
            try await machine.run(["systemctl", "daemon-reload"])
            try await machine.run(["systemctl", "start", "veneer-hello.service"])
            #expect(try await machine.exec(["systemctl", "is-active", "veneer-hello.service"]).output == "active")
            let written = try String(contentsOfFile: machine.hostPath("/run/veneer-hello"), encoding: .utf8)
            #expect(written.hasPrefix("hello from "))
            let journal = try await machine.journal(unit: "veneer-hello.service")
            #expect(journal.contains("Finished veneer-hello.service"), "\(journal)")

            // The project's units and binary, checked by this systemd.
            try await machine.installVeneer()
            let verify = try await machine.exec([
                "systemd-analyze", "verify", "/etc/systemd/system/veneerd.socket",
                "/etc/systemd/system/veneerd-grpc.socket", "/etc/systemd/system/veneerd.service",
            ])
            #expect(verify.succeeded && verify.stderr.isEmpty, "\(verify)")
        } catch {
            await machine.destroy()
            throw error
        }

        try await machine.poweroff()
        let stopped = ContinuousClock.now
        #expect(!FileManager.default.fileExists(atPath: directory))
        #expect(kill(machine.pid, 0) != 0)
        print("systemd machine: boot \(booted - started), run and power-off \(stopped - booted)")
    }
}
