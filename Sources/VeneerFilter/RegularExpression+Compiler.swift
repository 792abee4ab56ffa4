import VeneerCore

extension RegularExpression {
    /// Thompson's construction: one instruction per scalar set and assertion, splits
    /// and jumps for alternation and repetition.
    struct Compiler {
        var program: [Instruction] = []

        mutating func append(_ instruction: Instruction) throws(SyntaxError) {
            if program.count >= RegularExpression.maxProgramSize {
                throw SyntaxError(
                    message: "the expression is too large: more than \(RegularExpression.maxProgramSize) steps once its repetitions are expanded; use smaller repeat counts")
            }
            program.append(instruction)
        }

        mutating func emit(_ node: Node) throws(SyntaxError) {
            switch node {
            case .empty:
                break
            case .scalar(let set):
                try append(.scalar(set))
            case .assertion(let assertion):
                try append(.assertion(assertion))
            case .concatenation(let nodes):
                for node in nodes { try emit(node) }
            case .alternation(let branches):
                var jumpsToEnd: [Int] = []
                for (index, branch) in branches.enumerated() {
                    if index < branches.count - 1 {
                        let split = program.count
                        try append(.split(split + 1, 0))
                        try emit(branch)
                        jumpsToEnd.append(program.count)
                        try append(.jump(0))
                        program[split] = .split(split + 1, program.count)
                    } else {
                        try emit(branch)
                    }
                }
                for jump in jumpsToEnd { program[jump] = .jump(program.count) }
            case .repetition(let node, let min, let max, _):
                for _ in 0..<min { try emit(node) }
                if let max {
                    // x{min,max}: max − min optional copies, each of which may end the run.
                    var splitsToEnd: [Int] = []
                    for _ in min..<max {
                        splitsToEnd.append(program.count)
                        try append(.split(program.count + 1, 0))
                        try emit(node)
                    }
                    for split in splitsToEnd { program[split] = .split(split + 1, program.count) }
                } else {
                    // x*: try x, then come back; or leave.
                    let loop = program.count
                    try append(.split(loop + 1, 0))
                    try emit(node)
                    try append(.jump(loop))
                    program[loop] = .split(loop + 1, program.count)
                }
            }
        }
    }
}
