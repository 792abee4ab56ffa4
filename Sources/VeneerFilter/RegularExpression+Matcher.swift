import VeneerCore

// The matcher: every state of the automaton at once over the input, one scalar at a time.

extension RegularExpression {
    /// Whether the expression matches anywhere in `text` (an unanchored search, as Go's
    /// `regexp.MatchString`).
    public func matches(_ text: String) -> Bool {
        // Two state sets (index and members, `size` each) and the closure's stack (at
        // most two pushes per state added, plus the start), in one temporary buffer.
        let size = program.count
        return withUnsafeTemporaryAllocation(of: Int.self, capacity: 6 * size + 2) { buffer -> Bool in
            guard let base = buffer.baseAddress else { return false }
            base.initialize(repeating: 0, count: 6 * size + 2)
            var current = StateSet(index: base, members: base + size)
            var next = StateSet(index: base + 2 * size, members: base + 3 * size)
            let stack = base + 4 * size
            return program.withUnsafeBufferPointer { program -> Bool in
                var scalars = text.unicodeScalars.makeIterator()
                var previous: UInt32? = nil
                var here: UInt32? = scalars.next()?.value
                var atStart = true
                while true {
                    if atStart || !anchoredAtStart {
                        if Self.addClosure(program, 0, to: &current, previous: previous, here: here, stack: stack) { return true }
                    }
                    guard let scalar = here, current.count > 0 else { return false }
                    let orbit = foldsCase ? Self.caseOrbit(scalar) : []
                    let following = scalars.next()?.value
                    next.count = 0
                    for i in 0..<current.count {
                        let pc = current.members[i]
                        guard case .scalar(let set) = program[pc], set.matches(scalar, orbit: orbit) else { continue }
                        if Self.addClosure(program, pc + 1, to: &next, previous: scalar, here: following, stack: stack) { return true }
                    }
                    swap(&current, &next)
                    previous = scalar
                    here = following
                    atStart = false
                }
            }
        }
    }

    /// Adds `start` and every state reachable from it without reading a scalar, at a
    /// position between `previous` and `here`; true when that reaches the match.
    private static func addClosure(
        _ program: UnsafeBufferPointer<Instruction>, _ start: Int, to set: inout StateSet, previous: UInt32?, here: UInt32?,
        stack: UnsafeMutablePointer<Int>
    ) -> Bool {
        var depth = 1
        stack[0] = start
        while depth > 0 {
            depth -= 1
            let pc = stack[depth]
            guard set.insert(pc) else { continue }
            switch program[pc] {
            case .match:
                return true
            case .jump(let target):
                stack[depth] = target
                depth += 1
            case .split(let first, let second):
                stack[depth] = second
                stack[depth + 1] = first
                depth += 2
            case .assertion(let assertion):
                if assertion.holds(previous: previous, here: here) {
                    stack[depth] = pc + 1
                    depth += 1
                }
            case .scalar:
                break
            }
        }
        return false
    }

    /// The scalars a case-insensitive match takes as equal to `value`, other than
    /// itself: the rest of its case orbit (k: K and the Kelvin sign; σ: Σ and ς).
    static func caseOrbit(_ value: UInt32) -> [UInt32] {
        caseOrbits[value] ?? []
    }

    /// Every cased scalar below U+20000 (where all cased scripts are), with the others
    /// of its orbit: the scalars that map to the same one through uppercase, then
    /// lowercase, mappings of one scalar. Dotless ı and dotted İ stay alone, as in the
    /// simple case folding RE2 uses. Built on first use, in a few milliseconds.
    private static let caseOrbits: [UInt32: [UInt32]] = {
        func single(_ mapped: String, else value: UInt32) -> UInt32 {
            let scalars = mapped.unicodeScalars
            return scalars.count == 1 ? scalars[scalars.startIndex].value : value
        }
        var groups: [UInt32: [UInt32]] = [:]
        for value in UInt32(0)..<0x20000 where value != 0x130 && value != 0x131 {
            guard let scalar = Unicode.Scalar(value) else { continue }
            let upper = single(scalar.properties.uppercaseMapping, else: value)
            let lower = single(scalar.properties.lowercaseMapping, else: value)
            guard upper != value || lower != value else { continue }
            let canonical = Unicode.Scalar(upper).map { single($0.properties.lowercaseMapping, else: upper) } ?? upper
            groups[canonical, default: []].append(value)
        }
        var orbits: [UInt32: [UInt32]] = [:]
        for (canonical, members) in groups {
            let orbit = Set(members + [canonical])
            for member in orbit { orbits[member] = orbit.filter { $0 != member }.sorted() }
        }
        return orbits
    }()
}

// MARK: - State sets

/// The states of the automaton active at one position: a sparse set over caller-owned
/// memory, cleared in constant time, that keeps the order of insertion.
private struct StateSet {
    let index: UnsafeMutablePointer<Int>
    let members: UnsafeMutablePointer<Int>
    var count = 0

    init(index: UnsafeMutablePointer<Int>, members: UnsafeMutablePointer<Int>) {
        self.index = index
        self.members = members
    }

    /// Inserts `state`; false when it was already there.
    mutating func insert(_ state: Int) -> Bool {
        let slot = index[state]
        if slot < count && members[slot] == state { return false }
        index[state] = count
        members[count] = state
        count += 1
        return true
    }
}
