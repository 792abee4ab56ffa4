/// Limits and checks on client input that do not depend on stored state.
public enum Rules {
    /// Largest key, in UTF-8 bytes.
    public static let maxKeyBytes = 4096
    /// Largest label, key plus value, in UTF-8 bytes.
    public static let maxLabelBytes = 4096
    /// Largest total of one snapshot's labels: the UTF-8 bytes of every name and value.
    public static let maxTotalLabelBytes = 64 * 1024

    /// A key is 1 to 4096 bytes of UTF-8 with no NUL byte. Keys are never used as file names.
    public static func validateKey(_ key: String, role: String = "key") throws(VeneerError) {
        let count = key.utf8.count
        if count == 0 {
            throw .invalidArgument("\(role) must not be empty; give a key of 1 to \(maxKeyBytes) bytes")
        }
        if count > maxKeyBytes {
            throw .invalidArgument(
                "\(role) is \(count) bytes long; keys are limited to \(maxKeyBytes) bytes of UTF-8")
        }
        if key.utf8.contains(0) {
            throw .invalidArgument("\(role) \(quoted(key)) contains a NUL byte; keys cannot contain NUL")
        }
    }

    /// Each label must be valid, and all of them together at most ``maxTotalLabelBytes``.
    public static func validateLabels(_ labels: [String: String]) throws(VeneerError) {
        for (name, value) in labels {
            try validateLabel(name: name, value: value)
        }
        try validateTotal(labels)
    }

    /// The labels of one snapshot, names plus values, fit in ``maxTotalLabelBytes``.
    public static func validateTotal(_ labels: [String: String]) throws(VeneerError) {
        var total = 0
        for (name, value) in labels {
            total += name.utf8.count + value.utf8.count
        }
        if total > maxTotalLabelBytes {
            throw .invalidArgument(
                "the labels of a snapshot would total \(total) bytes (names plus values); the limit is \(maxTotalLabelBytes) bytes for all labels of one snapshot; use fewer or shorter labels")
        }
    }

    public static func validateLabel(name: String, value: String) throws(VeneerError) {
        if name.isEmpty {
            throw .invalidArgument("label names must not be empty")
        }
        if name.utf8.contains(0) || value.utf8.contains(0) {
            throw .invalidArgument("label \(quoted(name)) contains a NUL byte; labels cannot contain NUL")
        }
        let size = name.utf8.count + value.utf8.count
        if size > maxLabelBytes {
            throw .invalidArgument(
                "label \(quoted(String(name.prefix(64)))) is \(size) bytes (name plus value); the limit is \(maxLabelBytes) bytes")
        }
    }

    /// Applies an update to a snapshot's labels following containerd's field-path rules:
    /// no field paths (or `labels`) replaces all labels; `labels.K` sets K, or deletes it
    /// when the new value is empty or absent; anything else is rejected. The labels that
    /// result must fit in ``maxTotalLabelBytes``.
    public static func updatedLabels(
        current: [String: String], new: [String: String], fieldpaths: [String]
    ) throws(VeneerError) -> [String: String] {
        let result = try applyUpdate(current: current, new: new, fieldpaths: fieldpaths)
        try validateTotal(result)
        return result
    }

    private static func applyUpdate(
        current: [String: String], new: [String: String], fieldpaths: [String]
    ) throws(VeneerError) -> [String: String] {
        for (name, value) in new where !value.isEmpty {
            try validateLabel(name: name, value: value)
        }
        if fieldpaths.isEmpty {
            return new.filter { !$0.value.isEmpty }
        }
        var result = current
        for path in fieldpaths {
            if path == "labels" {
                result = new.filter { !$0.value.isEmpty }
            } else if path.utf8.starts(with: "labels.".utf8) {
                // Bytes, not characters: a combining mark after the dot joins it in one character.
                let name = String(decoding: path.utf8.dropFirst("labels.".utf8.count), as: UTF8.self)
                if name.isEmpty {
                    throw .invalidArgument("field path \(quoted(path)) names no label; use labels.NAME")
                }
                if let value = new[name], !value.isEmpty {
                    result[name] = value
                } else {
                    result[name] = nil
                }
            } else {
                throw .invalidArgument(
                    "cannot update field \(quoted(path)); only labels and labels.NAME can be changed")
            }
        }
        return result
    }
}
