/// Where a snapshot's directories live, as absolute paths.
public struct SnapshotDirectories: Sendable, Equatable {
    /// The snapshot's own layer (`<root>/snapshots/<id>/fs`).
    public var fs: String
    /// The overlay work directory (`<root>/snapshots/<id>/work`), for active snapshots.
    public var work: String

    public init(fs: String, work: String) {
        self.fs = fs
        self.work = work
    }
}

/// Plans the mounts that give a client the root file system of a snapshot.
public enum MountPlan {
    /// - Parameters:
    ///   - kind: the snapshot's kind; committed snapshots have no mounts.
    ///   - key: the snapshot's key, for messages.
    ///   - own: the snapshot's own directories.
    ///   - lowers: the `fs` directories of its committed ancestors, nearest parent first.
    ///   - overlayOptions: extra options appended to overlay mounts.
    public static func mounts(
        kind: SnapshotKind, key: String, own: SnapshotDirectories, lowers: [String],
        overlayOptions: [String] = []
    ) throws(VeneerError) -> [Mount] {
        switch kind {
        case .committed:
            throw .failedPrecondition(
                "snapshot \(quoted(key)) is committed and cannot be mounted; prepare an active snapshot or a view on it")
        case .active:
            if lowers.isEmpty {
                return [Mount(type: "bind", source: own.fs, options: ["rw", "rbind"])]
            }
            return [
                Mount(
                    type: "overlay", source: "overlay",
                    options: [
                        "workdir=\(own.work)",
                        "upperdir=\(own.fs)",
                        "lowerdir=\(lowers.joined(separator: ":"))",
                    ] + overlayOptions)
            ]
        case .view:
            if lowers.isEmpty {
                return [Mount(type: "bind", source: own.fs, options: ["ro", "rbind"])]
            }
            if lowers.count == 1 {
                return [Mount(type: "bind", source: lowers[0], options: ["ro", "rbind"])]
            }
            return [
                Mount(
                    type: "overlay", source: "overlay",
                    options: ["lowerdir=\(lowers.joined(separator: ":"))"] + overlayOptions)
            ]
        }
    }
}
