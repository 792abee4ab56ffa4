import VeneerCore

extension RegularExpression {
    enum Assertion: Sendable, Equatable {
        case beginText, endText, beginLine, endLine, wordBoundary, notWordBoundary

        func holds(previous: UInt32?, here: UInt32?) -> Bool {
            switch self {
            case .beginText: return previous == nil
            case .endText: return here == nil
            case .beginLine: return previous == nil || previous == 0x0A
            case .endLine: return here == nil || here == 0x0A
            case .wordBoundary: return Self.isWord(previous) != Self.isWord(here)
            case .notWordBoundary: return Self.isWord(previous) == Self.isWord(here)
            }
        }

        private static func isWord(_ value: UInt32?) -> Bool {
            guard let value else { return false }
            return ScalarSet.word.ranges.contains { $0.contains(value) }
        }
    }

    /// A set of scalars, as sorted, disjoint ranges.
    struct ScalarSet: Sendable, Equatable {
        var ranges: [ClosedRange<UInt32>]
        var negated = false
        var foldsCase = false

        static let maxScalar: UInt32 = 0x10FFFF
        static let digit = ScalarSet(ranges: [0x30...0x39])
        static let word = ScalarSet(ranges: [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A])
        static let space = ScalarSet(ranges: [0x09...0x0A, 0x0C...0x0D, 0x20...0x20])

        static func single(_ value: UInt32) -> ScalarSet { ScalarSet(ranges: [value...value]) }

        /// The ranges, sorted and merged.
        static func normalized(_ ranges: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
            var merged: [ClosedRange<UInt32>] = []
            for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
                if let last = merged.last, range.lowerBound <= last.upperBound &+ 1 {
                    merged[merged.count - 1] = last.lowerBound...max(last.upperBound, range.upperBound)
                } else {
                    merged.append(range)
                }
            }
            return merged
        }

        /// Every scalar value not in `ranges` (which must be normalized).
        static func complement(_ ranges: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
            var result: [ClosedRange<UInt32>] = []
            var next: UInt32 = 0
            for range in ranges {
                if range.lowerBound > next { result.append(next...(range.lowerBound - 1)) }
                if range.upperBound >= maxScalar { return result }
                next = range.upperBound + 1
            }
            result.append(next...maxScalar)
            return result
        }

        private func contains(_ value: UInt32) -> Bool {
            var low = 0
            var high = ranges.count
            while low < high {
                let middle = (low + high) / 2
                if ranges[middle].upperBound < value {
                    low = middle + 1
                } else if ranges[middle].lowerBound > value {
                    high = middle
                } else {
                    return true
                }
            }
            return false
        }

        /// Whether the set holds `value`, or, when it folds case, one of the scalars of
        /// `orbit`, the others of its case orbit.
        func matches(_ value: UInt32, orbit: [UInt32]) -> Bool {
            let found = contains(value) || (foldsCase && orbit.contains { contains($0) })
            return found != negated
        }
    }

    enum Instruction: Sendable {
        case scalar(ScalarSet)
        case split(Int, Int)
        case jump(Int)
        case assertion(Assertion)
        case match
    }

    indirect enum Node {
        case empty
        case scalar(ScalarSet)
        case concatenation([Node])
        case alternation([Node])
        /// `braces`: written `{n}`, `{n,}` or `{n,m}`, whose counts multiply along a
        /// nesting (at most ``RegularExpression/maxRepeatCount`` in all, as in RE2).
        case repetition(Node, min: Int, max: Int?, braces: Bool)
        case assertion(Assertion)

        /// Whether the counts of nested brace repetitions multiply to at most `budget`
        /// along every path (RE2's rule; `{0}` and `{0,0}` end the path).
        func repeatCountsFit(_ budget: Int) -> Bool {
            switch self {
            case .empty, .scalar, .assertion:
                return true
            case .concatenation(let nodes), .alternation(let nodes):
                return nodes.allSatisfy { $0.repeatCountsFit(budget) }
            case .repetition(let node, let min, let max, let braces):
                guard braces else { return node.repeatCountsFit(budget) }
                let count = max ?? min
                if count == 0 { return true }
                if count > budget { return false }
                return node.repeatCountsFit(budget / count)
            }
        }
    }
}
