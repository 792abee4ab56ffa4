// Pure formatting for the CLI's output meant for people. Nothing here does I/O.

import VeneerCore
import VeneerWire

enum Format {
    /// A key or label as shown in tables and lines: verbatim, unless it is empty or holds
    /// control characters (which would break the layout), then quoted and escaped.
    static func display(_ text: String) -> String {
        let plain = !text.isEmpty && text.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7F }
        return plain ? text : quoted(text)
    }

    /// Labels as `name=value` pairs sorted by name, joined with commas.
    static func labels(_ labels: [String: String]) -> String {
        labels.sorted { $0.key < $1.key }.map { display($0.key) + "=" + display($0.value) }
            .joined(separator: ",")
    }

    /// A timestamp to the second: `2026-11-22T10:11:12Z`.
    static func seconds(_ time: Timestamp) -> String {
        let text = time.rfc3339
        guard let dot = text.firstIndex(of: ".") else { return text }
        return String(text[..<dot]) + "Z"
    }

    /// Columns separated by three spaces, each as wide as its widest cell; the last column
    /// is not padded. Returns one line per row, header first, without trailing newline.
    static func table(header: [String], rows: [[String]]) -> String {
        let all = [header] + rows
        let columns = all.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: columns)
        for row in all {
            for (index, cell) in row.enumerated() {
                widths[index] = max(widths[index], cell.count)
            }
        }
        return all.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[index] - cell.count)
            }.joined(separator: "   ")
        }.joined(separator: "\n")
    }

    /// `Name:  value` lines with the values aligned. A pair with several values continues
    /// on the following lines, aligned under the first.
    static func fields(_ pairs: [(String, [String])]) -> String {
        let width = (pairs.map { $0.0.count }.max() ?? 0) + 2
        var lines: [String] = []
        for (name, values) in pairs {
            let head = name + ":" + String(repeating: " ", count: width - name.count - 1)
            let indent = String(repeating: " ", count: width)
            if values.isEmpty {
                lines.append(head + "-")
            }
            for (index, value) in values.enumerated() {
                lines.append((index == 0 ? head : indent) + value)
            }
        }
        return lines.joined(separator: "\n")
    }

    static func fields(_ pairs: [(String, String)]) -> String {
        fields(pairs.map { ($0.0, [$0.1]) })
    }

    /// The list of snapshots as a table.
    static func snapshotTable(_ snapshots: [SnapshotInfo]) -> String {
        table(
            header: ["KEY", "KIND", "PARENT", "CREATED", "LABELS"],
            rows: snapshots.map { info in
                [
                    display(info.key), info.kind.rawValue, info.parent.map(display) ?? "-",
                    seconds(info.created), labels(info.labels),
                ]
            })
    }

    /// One snapshot as `Name: value` lines.
    static func snapshot(_ info: SnapshotInfo) -> String {
        fields([
            ("Key", [display(info.key)]),
            ("Kind", [info.kind.rawValue]),
            ("Parent", info.parent.map { [display($0)] } ?? []),
            ("Created", [info.created.rfc3339]),
            ("Updated", [info.updated.rfc3339]),
            (
                "Labels",
                info.labels.sorted { $0.key < $1.key }.map { display($0.key) + "=" + display($0.value) }
            ),
        ])
    }

    /// `12 (3 active, 1 view, 8 committed)`.
    static func kinds(_ counts: KindCounts) -> String {
        "\(counts.total) (\(counts.active) active, \(counts.view) view, \(counts.committed) committed)"
    }

    static func status(_ status: StatusResponse) -> String {
        let counts = status.snapshots
        let overlay = status.overlay
        func yes(_ flag: Bool) -> String { flag ? "yes" : "no" }
        func on(_ flag: Bool) -> String { flag ? "on" : "off" }
        return fields([
            ("Version", [status.version]),
            ("Socket", [status.socket]),
            ("gRPC socket", [status.grpcSocket ?? "off"]),
            ("Root", [status.root]),
            ("Root file system", [status.rootFilesystem]),
            ("Snapshots", [kinds(counts)]),
            (
                "Namespaces",
                status.namespaces.isEmpty
                    ? ["none"] : status.namespaces.sorted { $0.key < $1.key }.map { "\(display($0.key)): \(kinds($0.value))" }
            ),
            ("Mounts", [String(status.mounts)]),
            ("Max depth", [String(status.maxDepth)]),
            ("Deepest chain", [status.deepestChain == 1 ? "1 layer" : "\(status.deepestChain) layers"]),
            (
                "Overlay",
                [
                    "new mount API (lowerdir+): \(yes(overlay.newMountAPI))",
                    "index: \(on(overlay.index)) by default",
                    "metacopy: \(on(overlay.metacopy)) by default",
                    "redirect_dir: \(on(overlay.redirectDir)) by default",
                    "userxattr: \(yes(overlay.userxattr))",
                    "d_type on the root: \(yes(overlay.dType))",
                ]
            ),
            ("Uptime", [duration(status.uptimeSeconds)]),
        ])
    }

    /// A mount the daemon made, as `Name: value` lines.
    static func liveMount(_ live: LiveMount) -> String {
        fields([
            ("Target", [display(live.target)]),
            ("Key", [display(live.key)]),
            ("Mode", [live.readonly ? "ro" : "rw"]),
            ("Mounted", live.mounts.map(mountSummary)),
            ("Mounted at", [live.mountedAt.rfc3339]),
        ])
    }

    /// The daemon's live mounts as a table.
    static func liveMountTable(_ mounts: [LiveMount]) -> String {
        table(
            header: ["TARGET", "KEY", "MODE", "MOUNTED AT"],
            rows: mounts.map { live in
                [display(live.target), display(live.key), live.readonly ? "ro" : "rw", seconds(live.mountedAt)]
            })
    }

    /// What a mount puts in place, in a few words: `bind of /r/snapshots/1/fs`, or
    /// `overlay of 3 lower layers, upper /r/snapshots/4/fs` (with extra options, if any).
    static func mountSummary(_ mount: Mount) -> String {
        guard mount.type == "overlay" else {
            return "\(mount.type) of \(display(mount.source))"
        }
        var lowers = 0
        var upper: String?
        var extra: [String] = []
        for option in mount.options {
            if option.hasPrefix("lowerdir=") {
                lowers = option.dropFirst("lowerdir=".count).split(separator: ":").count
            } else if option.hasPrefix("upperdir=") {
                upper = String(option.dropFirst("upperdir=".count))
            } else if !option.hasPrefix("workdir=") {
                extra.append(option)
            }
        }
        var text = "overlay of " + (lowers == 1 ? "1 lower layer" : "\(lowers) lower layers")
        if let upper { text += ", upper " + display(upper) }
        if !extra.isEmpty { text += ", options " + extra.joined(separator: ",") }
        return text
    }

    static func usage(_ usage: Usage) -> String {
        fields([
            ("Size", "\(size(usage.size)) (\(usage.size) bytes)"),
            ("Inodes", String(usage.inodes)),
        ])
    }

    static func applied(_ applied: LayerAppliedResponse, key: String) -> String {
        fields([
            ("Snapshot", key),
            ("Digest", applied.digest),
            ("Diff ID", applied.diffID),
            ("Size", "\(size(applied.size)) (\(applied.size) bytes)"),
            ("Uncompressed", "\(size(applied.uncompressedSize)) (\(applied.uncompressedSize) bytes)"),
            ("Entries", String(applied.entries)),
        ])
    }

    /// `KIND      TYPE       PATH` lines; nothing when there are no changes.
    static func changes(_ changes: [LayerChange]) -> String {
        if changes.isEmpty { return "" }
        let rows = changes.map { [$0.kind.rawValue, $0.type.rawValue, $0.path] }
        return table(header: ["KIND", "TYPE", "PATH"], rows: rows)
    }

    /// `KEY: 12.0 MiB of 40.0 MiB (30%), 8.1 MiB/s`.
    static func progress(label: String, bytes: Int64, total: Int64?, seconds: Double) -> String {
        var line = "\(label): \(size(bytes))"
        if let total, total > 0 {
            line += " of \(size(total)) (\(min(100, bytes * 100 / total))%)"
        }
        if seconds > 0 {
            line += ", \(size(Int64(Double(bytes) / seconds)))/s"
        }
        return line
    }

    static func cleanup(_ answer: CleanupResponse) -> String {
        fields([
            ("Removed", answer.removed == 1 ? "1 directory" : "\(answer.removed) directories"),
            ("Reclaimed", "\(size(answer.reclaimedBytes)) (\(answer.reclaimedBytes) bytes)"),
        ])
    }

    /// A mount as the mount(8) command that performs it on `target`.
    static func mountCommand(_ mount: Mount, target: String) -> String {
        var words = ["mount"]
        // mount(8) makes a bind mount from the `bind`/`rbind` option; it knows no `bind` type.
        if mount.type != "bind" {
            words += ["-t", mount.type]
        }
        words.append(mount.source)
        if !mount.options.isEmpty {
            words += ["-o", mount.options.joined(separator: ",")]
        }
        words.append(target)
        return words.enumerated().map { $0.offset == 0 ? $0.element : shellQuoted($0.element) }
            .joined(separator: " ")
    }

    /// A word as the shell reads it back: verbatim when it only has safe characters,
    /// otherwise in single quotes.
    static func shellQuoted(_ word: String) -> String {
        let safe = !word.isEmpty
            && word.unicodeScalars.allSatisfy { scalar in
                switch scalar {
                case "a"..."z", "A"..."Z", "0"..."9", "_", "-", ".", "/", ",", "=", ":", "+", "@", "%":
                    return true
                default:
                    return false
                }
            }
        if safe { return word }
        return "'" + word.replacingAll("'", with: "'\\''") + "'"
    }

    /// Bytes in binary units with one decimal: `512 B`, `1.5 KiB`, `20.0 GiB`.
    static func size(_ bytes: Int64) -> String {
        let magnitude = Double(bytes.magnitude)
        if magnitude < 1024 { return "\(bytes) B" }
        let units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var value = magnitude / 1024
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        var tenths = Int64((value * 10).rounded())
        if tenths >= 10240, unit < units.count - 1 {
            // Rounding reached the next unit: 1023.96 KiB is shown as 1.0 MiB.
            tenths = 10
            unit += 1
        }
        return (bytes < 0 ? "-" : "") + "\(tenths / 10).\(tenths % 10) \(units[unit])"
    }

    /// A duration such as `3d 4h 5m 6s`, without the zero leading parts.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "\(seconds)s" }
        var rest = Int64(min(seconds, Double(Int64.max / 2)))
        let days = rest / 86_400
        rest %= 86_400
        let hours = rest / 3600
        rest %= 3600
        let minutes = rest / 60
        let secs = rest % 60
        var parts: [String] = []
        if days > 0 { parts.append("\(days)d") }
        if !parts.isEmpty || hours > 0 { parts.append("\(hours)h") }
        if !parts.isEmpty || minutes > 0 { parts.append("\(minutes)m") }
        parts.append("\(secs)s")
        return parts.joined(separator: " ")
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        for character in self {
            if character == target {
                out += replacement
            } else {
                out.append(character)
            }
        }
        return out
    }
}
