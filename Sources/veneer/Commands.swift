import ArgumentParser
import VeneerClient
import VeneerCore
import VeneerWire

private let labelHelp = ArgumentHelp("Set a label on the snapshot (repeatable).", valueName: "name=value")
private let targetHelp = ArgumentHelp(
    "The mount point written in the printed mount commands.", valueName: "dir")

/// What `prepare` and `view` take: the new snapshot, its parent, labels, and the target
/// the printed mount commands name.
struct NewSnapshotOptions: ParsableArguments {
    @Argument(help: "Key of the new snapshot.") var key: String
    @Argument(help: "Committed snapshot to build on (prepare) or to show (view).") var parent: String?
    @Option(name: .customLong("label"), help: labelHelp) var labels: [String] = []
    @Option(help: targetHelp) var target = "TARGET"

    func validate() throws {
        _ = try LabelAssignment.dictionary(labels, option: "--label")
    }

    /// Creates an active snapshot or a view and prints its mounts.
    func run(_ kind: SnapshotKind, global: GlobalOptions) async throws {
        let labels = try LabelAssignment.dictionary(labels, option: "--label")
        try await global.perform { () async throws(VeneerError) in
            let client = global.client()
            let parent = try await Self.resolve(parent, client: client)
            let answer = try await client.prepare(
                PrepareRequest(key: key, parent: parent, kind: kind, labels: labels.isEmpty ? nil : labels))
            try global.emit(
                answer,
                text: answer.mounts.map { Format.mountCommand($0, target: target) }.joined(separator: "\n"))
        }
    }
}

extension NewSnapshotOptions {
    /// The snapshot `parent` names: itself when a snapshot has that key, else the
    /// committed snapshot that `veneer import` labelled with it as an image reference.
    static func resolve(_ parent: String?, client: VeneerClient) async throws(VeneerError) -> String? {
        guard let parent else { return nil }
        do {
            _ = try await client.stat(parent)
            return parent
        } catch where error.code == .notFound || error.code == .invalidArgument {
            let label = ImportCommand.labelPrefix + parent
            let escaped = label.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"")
            let images = (try? await client.list(filters: ["kind==committed,labels.\"\(escaped)\""])) ?? []
            guard let image = images.first else { return parent }
            return image.key
        }
    }
}

struct PrepareCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare",
        abstract: "Create a writable (active) snapshot and print the mounts that give its file system.",
        discussion: "Without PARENT the snapshot starts empty. The parent must be a committed snapshot, or the reference of an image `veneer import` imported.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var snapshot: NewSnapshotOptions

    func run() async throws { try await snapshot.run(.active, global: global) }
}

struct ViewCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "view",
        abstract: "Create a read-only view of a committed snapshot and print its mounts.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var snapshot: NewSnapshotOptions

    func run() async throws { try await snapshot.run(.view, global: global) }
}

struct CommitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "commit",
        abstract: "Commit an active snapshot as an immutable layer named NAME.",
        discussion: "The active snapshot KEY is gone afterwards; NAME can be the parent of new snapshots.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Name of the committed snapshot.") var name: String
    @Argument(help: "Key of the active snapshot to commit.") var key: String
    @Option(name: .customLong("label"), help: labelHelp) var labels: [String] = []

    func validate() throws {
        _ = try LabelAssignment.dictionary(labels, option: "--label")
    }

    func run() async throws {
        let labels = try LabelAssignment.dictionary(labels, option: "--label")
        try await global.perform { () async throws(VeneerError) in
            let info = try await global.client().commit(
                key, CommitRequest(name: name, labels: labels.isEmpty ? nil : labels))
            try global.emit(info, text: "")
        }
    }
}

struct RemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm",
        abstract: "Remove snapshots.",
        discussion: "Each key is removed on its own; failures are reported and make the command exit with 1.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Keys of the snapshots to remove.") var keys: [String]

    func validate() throws {
        if keys.isEmpty {
            throw ValidationError("give at least one snapshot key to remove")
        }
    }

    func run() async throws {
        let client = global.client()
        var failed = false
        for key in keys {
            do {
                try await client.remove(key)
            } catch {
                Output.report(error)
                failed = true
            }
        }
        if failed { throw ExitCode.failure }
    }
}

struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "List snapshots.",
        discussion: """
            Filters use containerd's syntax: selectors such as kind==committed, parent==base, \
            labels.team (label present), labels.team!=db or key~=^app (~= takes an RE2 \
            regular expression, unanchored). Within one filter, comma-separated selectors must \
            all match; with several --filter options a snapshot is listed when it matches any \
            of them.
            """)

    @OptionGroup var global: GlobalOptions
    @Option(name: .customLong("filter"), help: ArgumentHelp("Only list matching snapshots (repeatable).", valueName: "filter"))
    var filters: [String] = []

    func run() async throws {
        try await global.perform { () async throws(VeneerError) in
            let snapshots = try await global.client().list(filters: filters)
            try global.emit(ListResponse(snapshots: snapshots), text: Format.snapshotTable(snapshots))
        }
    }
}

struct InfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Show one snapshot.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Key of the snapshot.") var key: String

    func run() async throws {
        try await global.perform { () async throws(VeneerError) in
            let info = try await global.client().stat(key)
            try global.emit(info, text: Format.snapshot(info))
        }
    }
}

struct LabelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "label",
        abstract: "Set or remove labels of a snapshot.",
        discussion: "name=value sets a label, name= removes it; labels not named are kept.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Key of the snapshot.") var key: String
    @Argument(help: ArgumentHelp("Labels to set, or to remove with an empty value.", valueName: "name=value"))
    var assignments: [String] = []

    func validate() throws {
        if assignments.isEmpty {
            throw ValidationError("give at least one label: name=value to set it, name= to remove it")
        }
        _ = try LabelAssignment.dictionary(assignments, option: "label")
    }

    func run() async throws {
        let labels = try LabelAssignment.dictionary(assignments, option: "label")
        let request = UpdateRequest(labels: labels, fieldpaths: labels.keys.sorted().map { "labels." + $0 })
        try await global.perform { () async throws(VeneerError) in
            let info = try await global.client().update(key, request)
            try global.emit(info, text: "")
        }
    }
}

struct MountsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mounts",
        abstract: "List the daemon's live mounts, or print the mount commands of a snapshot.",
        discussion: """
            Without KEY: the mounts veneerd made (veneer mount) and still keeps, one line each. \
            With KEY: the mount(8) commands that give the file system of that active snapshot or \
            view, to run by hand; nothing is mounted.
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Key of the snapshot whose mount commands to print.") var key: String?
    @Option(help: targetHelp) var target: String?

    func validate() throws {
        if key == nil, target != nil {
            throw ValidationError("--target needs a KEY: it sets the mount point of the printed mount commands")
        }
    }

    func run() async throws {
        try await global.perform { () async throws(VeneerError) in
            guard let key else {
                let mounts = try await global.client().liveMounts()
                try global.emit(LiveMountsResponse(mounts: mounts), text: Format.liveMountTable(mounts))
                return
            }
            let mounts = try await global.client().mounts(key)
            let target = self.target ?? "TARGET"
            try global.emit(
                MountsResponse(mounts: mounts),
                text: mounts.map { Format.mountCommand($0, target: target) }.joined(separator: "\n"))
        }
    }
}

struct MountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Have veneerd mount the file system of an active snapshot or a view at TARGET.",
        discussion: """
            TARGET must be an absolute, normalized path of an existing directory, with no \
            symbolic link in it, outside veneerd's state root. The mount stays until \
            veneer umount, also when veneerd stops. Views are always mounted read-only.
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Key of the active snapshot or view.") var key: String
    @Argument(help: "Absolute path of the directory to mount it on.") var target: String
    @Flag(help: "Mount an active snapshot read-only.") var readonly = false

    func run() async throws {
        try await global.perform { () async throws(VeneerError) in
            let live = try await global.client().mount(
                MountRequest(key: key, target: target, readonly: readonly ? true : nil))
            try global.emit(live, text: Format.liveMount(live))
        }
    }
}

struct UnmountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "umount",
        abstract: "Unmount a target that veneerd mounted.",
        discussion: """
            Only targets listed by veneer mounts can be unmounted this way. A busy target \
            (open files, working directories, mounts beneath it) is refused unless --lazy is \
            given, which detaches it at once and lets the kernel finish when it is no longer used.
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The mount target, as veneer mounts lists it.") var target: String
    @Flag(help: "Detach the mount even while it is busy (umount -l).") var lazy = false

    func run() async throws {
        try await global.perform { () async throws(VeneerError) in
            try await global.client().unmount(target: target, lazy: lazy)
        }
    }
}

struct UsageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage", abstract: "Show the disk space used by a snapshot's own layer.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Key of the snapshot.") var key: String

    func run() async throws {
        try await global.perform { () async throws(VeneerError) in
            let usage = try await global.client().usage(key)
            try global.emit(usage, text: Format.usage(usage))
        }
    }
}

struct CleanupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cleanup", abstract: "Remove directories that no snapshot owns any more.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await global.perform { () async throws(VeneerError) in
            let answer = try await global.client().cleanup()
            try global.emit(answer, text: Format.cleanup(answer))
        }
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the daemon's version, paths, snapshot and mount counts, depth limit and overlay features.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await global.perform { () async throws(VeneerError) in
            let status = try await global.client().status()
            try global.emit(status, text: Format.status(status))
        }
    }
}
