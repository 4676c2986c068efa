// The verifier (DESIGN.md §4): nothing runs until it has proved, for every path, that the
// program is well formed, stays inside its memory, reads nothing unwritten, calls only
// its kind's helpers, leaks no address, and terminates (no backward jumps, or a budget).
//
// It works in two passes. The structural pass decodes every slot and checks jumps,
// functions and calls. The dataflow pass interprets the program abstractly (Verifier+
// Domain.swift), once per function per call site, joining states where paths meet and
// widening at loops, and records for each memory access whether it was proved in bounds
// or needs the run-time check it inserts.

/// Checks programs against their kind's contract.
public enum Verifier {
    /// Verifies `program` for `kind`.
    /// - Returns: the program in the form the interpreter runs.
    /// - Throws: `VerificationError` naming the first instruction that breaks a rule, the
    ///   rule, and the registers on the path that reached it.
    public static func verify(_ program: Program, kind: ProgramKind) throws(VerificationError) -> VerifiedProgram {
        precondition(Limits.relationsHold)
        guard !program.instructions.isEmpty else {
            throw VerificationError(instruction: 0, rule: .format, detail: ProgramFormatError.empty.description)
        }
        guard program.instructions.count <= Limits.programSlotsMax else {
            throw VerificationError(instruction: Limits.programSlotsMax, rule: .format,
                                    detail: ProgramFormatError.tooLong(slots: program.instructions.count).description)
        }
        let analysis = try Analysis(program, kind: kind)
        try analysis.run()
        return VerifiedProgram(kind: kind, program: program, statements: analysis.statements, facts: analysis.facts)
    }

    /// Verifies a program given as bytes (what a library OS hands the kernel).
    public static func verify(bytes: [UInt8], kind: ProgramKind) throws(VerificationError) -> VerifiedProgram {
        let program: Program
        do { program = try Program(bytes: bytes) } catch {
            throw VerificationError(instruction: 0, rule: .format, detail: error.description)
        }
        return try verify(program, kind: kind)
    }
}

/// What the verifier learned about one slot, over every path and call site.
struct SlotFacts: Sendable {
    /// Whether any path reaches the slot.
    var reached = false
    /// How its memory access, if any, must be performed.
    var access: AccessFact = .none
    /// Where the first byte of that access may lie, from the start of its region (the
    /// stack: from r10), over every path: what an audited run holds the access to.
    var offsets: Offsets = .unbounded
    /// The helper a `callx` at this slot always calls.
    var helper: Helper?
}

enum AccessFact: Equatable, Sendable {
    case none
    /// Proved in bounds of the region: no run-time check.
    case direct(Region)
    /// In bounds on some values only: checked at run time against the region.
    case guarded(Region)
}

/// One verification: the program's structure, and the dataflow state while it runs.
final class Analysis {
    let kind: ProgramKind
    /// The statement starting at each slot; nil for the second slot of a `lddw`.
    private(set) var statements: [Statement?]
    var facts: [SlotFacts]
    /// Sorted first slots of the functions; function 0 is the entry.
    private var functionStarts: [Int] = [0]
    /// The function each slot belongs to.
    private var functionOf: [Int]
    /// Slots where paths may meet: function entries, jump targets, fall-throughs of branches.
    private var isJoinPoint: [Bool]
    /// Targets of backward jumps: every cycle passes through one, so widening there alone
    /// makes the analysis settle, and joins elsewhere stay precise.
    private var isLoopHead: [Bool]
    private var thresholds = Thresholds(constants: [])
    private var steps = 0

    init(_ program: Program, kind: ProgramKind) throws(VerificationError) {
        self.kind = kind
        let slots = program.instructions
        let n = slots.count
        statements = Array(repeating: nil, count: n)
        facts = Array(repeating: SlotFacts(), count: n)
        functionOf = Array(repeating: 0, count: n)
        isJoinPoint = Array(repeating: false, count: n)
        isLoopHead = Array(repeating: false, count: n)

        // Decode every slot.
        var constants: [UInt64] = []
        var index = 0
        while index < n {
            let statement: Statement
            do { statement = try Statement.decode(slots, at: index) } catch {
                throw VerificationError(instruction: error.slot, rule: .malformed, detail: error.reason)
            }
            statements[index] = statement
            constants.append(contentsOf: statement.constants)
            index += statement.slotCount
        }

        // Targets of jumps and calls must be statements of this program.
        func checkTarget(from slot: Int, offset: Int32) throws(VerificationError) -> Int {
            let target = slot + 1 + Int(offset)
            guard target >= 0 && target < n else {
                throw VerificationError(instruction: slot, rule: .jumpOutOfProgram,
                                        detail: "target \(target) is outside the program's \(n) slots")
            }
            guard statements[target] != nil else {
                throw VerificationError(instruction: slot, rule: .jumpIntoWideInstruction,
                                        detail: "target \(target) is the second slot of lddw at \(target - 1)")
            }
            return target
        }
        var starts: Set<Int> = [0]
        for slot in 0..<n {
            guard let statement = statements[slot] else { continue }
            if let offset = statement.jumpOffset {
                let target = try checkTarget(from: slot, offset: offset)
                isJoinPoint[target] = true
                if target <= slot { isLoopHead[target] = true }
                if target <= slot && !kind.termination.allowsLoops {
                    throw VerificationError(instruction: slot, rule: .loopWithoutBudget,
                                            detail: "jump back to \(target); \(kind.name) programs may not loop")
                }
                if case .branch = statement, slot + 1 < n { isJoinPoint[slot + 1] = true }
            } else if case .callLocal(let offset) = statement {
                starts.insert(try checkTarget(from: slot, offset: offset))
            }
        }
        functionStarts = starts.sorted()
        for (f, start) in functionStarts.enumerated() {
            isJoinPoint[start] = true
            for slot in start..<functionEnd(f) { functionOf[slot] = f }
        }
        for slot in 0..<n {
            guard let offset = statements[slot]?.jumpOffset else { continue }
            let target = slot + 1 + Int(offset)
            guard functionOf[target] == functionOf[slot] else {
                throw VerificationError(instruction: slot, rule: .jumpOutOfFunction,
                                        detail: "target \(target) is in the function at \(functionStarts[functionOf[target]])")
            }
        }

        // Control leaves a function only through exit (or a jump inside it): no branch,
        // call or other statement may run on past the function's last slot, whether into
        // the next function or off the program.
        for slot in 0..<n {
            guard let statement = statements[slot], statement.fallsThrough else { continue }
            let next = slot + statement.slotCount
            let end = functionEnd(functionOf[slot])
            guard next < end else {
                throw VerificationError(instruction: slot, rule: .fallsOffEnd,
                                        detail: end == n ? "control runs past the last instruction of the program"
                                            : "control runs into the function at \(end)")
            }
        }

        // Known constants and region sizes guide widening.
        constants.append(UInt64(kind.context.bounds.max))
        constants.append(UInt64(kind.outputBytes))
        constants.append(UInt64(bitPattern: Int64(-Limits.stackBytes)))
        thresholds = Thresholds(constants: constants)

        try checkCallGraph()
        if case .provedBound(let bound) = kind.termination { try checkLongestPath(within: bound) }
    }

    private func functionEnd(_ f: Int) -> Int {
        f + 1 < functionStarts.count ? functionStarts[f + 1] : statements.count
    }

    /// Calls form no cycle and nest at most `Limits.callDepthMax` deep.
    private func checkCallGraph() throws(VerificationError) {
        var callSites: [[(slot: Int, callee: Int)]] = Array(repeating: [], count: functionStarts.count)
        for slot in statements.indices {
            if case .callLocal(let offset) = statements[slot] {
                callSites[functionOf[slot]].append((slot, functionOf[slot + 1 + Int(offset)]))
            }
        }
        // Longest chain of calls below each function, depth-first; a function met again
        // while it is still on the path is a cycle.
        var height: [Int?] = Array(repeating: nil, count: functionStarts.count)
        var onPath = Array(repeating: false, count: functionStarts.count)
        func chain(below f: Int) throws(VerificationError) -> Int {
            if let h = height[f] { return h }
            onPath[f] = true
            var h = 0
            for site in callSites[f] {
                if onPath[site.callee] {
                    throw VerificationError(instruction: site.slot, rule: .recursion,
                                            detail: "the function at \(functionStarts[site.callee]) is already being called")
                }
                h = max(h, 1 + (try chain(below: site.callee)))
            }
            onPath[f] = false
            height[f] = h
            return h
        }
        for f in functionStarts.indices { _ = try chain(below: f) }
        // Follow the deepest chain from the entry to the call that nests too deep.
        var f = 0, depth = 0
        while let site = callSites[f].max(by: { height[$0.callee]! < height[$1.callee]! }) {
            depth += 1
            if depth > Limits.callDepthMax {
                throw VerificationError(instruction: site.slot, rule: .callDepth,
                                        detail: "this call would nest \(depth) deep; at most \(Limits.callDepthMax) is allowed")
            }
            f = site.callee
        }
    }

    /// For a loop-free kind: no path from the entry executes more than `bound`
    /// instructions, each call counted at its callee's longest path (so a short function
    /// called from many places counts at every place).
    private func checkLongestPath(within bound: Int) throws(VerificationError) {
        // Counts saturate just past the bound, so no sum can overflow.
        let cap = bound + 1
        func plus(_ a: Int, _ b: Int) -> Int { min(a + b, cap) }
        var longest: [Int?] = Array(repeating: nil, count: functionStarts.count)
        // Every jump goes forward (the loop check came first) and calls form a DAG no
        // deeper than `callDepthMax`, so one backward sweep per function settles it.
        func longestPath(of f: Int) -> Int {
            if let known = longest[f] { return known }
            let start = functionStarts[f], end = functionEnd(f)
            var fromSlot = Array(repeating: 0, count: end - start)
            for slot in stride(from: end - 1, through: start, by: -1) {
                guard let statement = statements[slot] else { continue }
                let next = slot + statement.slotCount - start
                let rest: Int = switch statement {
                case .exit: 0
                case .jump(let offset, _): fromSlot[slot + 1 + Int(offset) - start]
                case .branch(_, _, _, _, let offset): max(fromSlot[next], fromSlot[slot + 1 + Int(offset) - start])
                case .callLocal(let offset): plus(longestPath(of: functionOf[slot + 1 + Int(offset)]), fromSlot[next])
                default: fromSlot[next]
                }
                fromSlot[slot - start] = plus(1, rest)
            }
            longest[f] = fromSlot[0]
            return fromSlot[0]
        }
        let entry = longestPath(of: 0)
        guard entry <= bound else {
            throw VerificationError(instruction: 0, rule: .pathTooLong,
                                    detail: "a path from the entry, counting each call, runs more than \(bound) instructions; \(kind.name) programs may run at most \(bound)")
        }
    }

    /// The dataflow pass over the whole program from its entry state.
    func run() throws(VerificationError) {
        var entry = AbstractState(
            registers: Array(repeating: kind.startsZeroed ? .constant(0) : .uninitialized, count: Register.allCases.count),
            stack: StackFrame(allWritten: kind.startsZeroed),
            contextLength: Interval(lo: UInt64(kind.context.bounds.min), hi: UInt64(kind.context.bounds.max)))
        entry[.r1] = .pointer(.context, .exactly(0))
        if case .fixed(let n) = kind.context { entry[.r2] = .constant(UInt64(n)) } else { entry[.r2] = .contextLength }
        if kind.outputBytes > 0 { entry[.r3] = .pointer(.output, .exactly(0)) }
        entry[.r10] = .pointer(.stack, .exactly(0))
        _ = try analyze(function: 0, entry: entry, depth: 0)
    }

    /// Interprets function `f` abstractly from `entry` until every join point's state
    /// settles. Returns what r0 may hold at its exits, or nil when no exit is reachable.
    func analyze(function f: Int, entry: AbstractState, depth: Int) throws(VerificationError) -> Value? {
        let start = functionStarts[f], end = functionEnd(f)
        var states: [Int: AbstractState] = [start: entry]
        var joins: [Int: Int] = [:]
        var pending: Set<Int> = [start]
        var returned: Value?

        func merge(_ state: AbstractState, into target: Int) {
            if let old = states[target] {
                var joined = old.joined(with: state)
                if joined == old { return }
                let count = joins[target, default: 0] + 1
                joins[target] = count
                if count > Limits.verifierJoinsBeforeWidening && isLoopHead[target] { joined = thresholds.widen(old, joined) }
                states[target] = joined
            } else {
                states[target] = state
            }
            pending.insert(target)
        }

        while let first = pending.min() {
            pending.remove(first)
            var state = states[first]!
            var slot = first
            walk: while true {
                steps += 1
                guard steps <= Limits.verifierStepsMax else {
                    throw VerificationError(instruction: slot, rule: .tooComplex,
                                            detail: "more than \(Limits.verifierStepsMax) steps of analysis")
                }
                facts[slot].reached = true
                let statement = statements[slot]!
                switch try transfer(statement, at: slot, &state, depth: depth) {
                case .next:
                    let next = slot + statement.slotCount
                    guard next < end else {
                        throw VerificationError(instruction: slot, rule: .fallsOffEnd,
                                                detail: "the next instruction is past the end of the function", registers: state.rendered)
                    }
                    if isJoinPoint[next] {
                        merge(state, into: next)
                        break walk
                    }
                    slot = next
                case .goto(let successors):
                    for (target, successor) in successors { merge(successor, into: target) }
                    break walk
                case .exit(let value):
                    returned = returned.map { $0.joined(with: value) } ?? value
                    break walk
                case .stop:
                    break walk
                }
            }
        }
        return returned
    }

    /// Records how the access at `slot` must be made and where it may land; every path
    /// must agree on the region.
    func record(_ fact: AccessFact, offsets: Offsets, at slot: Int, state: AbstractState) throws(VerificationError) {
        facts[slot].offsets = facts[slot].access == .none ? offsets : facts[slot].offsets.hull(offsets)
        switch (facts[slot].access, fact) {
        case (.none, _):
            facts[slot].access = fact
        case (.direct(let r), .direct(let s)) where r == s:
            break
        case (.direct(let r), .guarded(let s)) where r == s, (.guarded(let r), .direct(let s)) where r == s,
             (.guarded(let r), .guarded(let s)) where r == s:
            facts[slot].access = .guarded(r)
        default:
            throw VerificationError(instruction: slot, rule: .notAnAddress,
                                    detail: "the address points into different regions on different paths", registers: state.rendered)
        }
    }

    func function(at slot: Int) -> Int { functionOf[slot] }
}

/// Where control goes after a statement.
enum Flow {
    /// To the next statement, with the state updated in place.
    case next
    /// To each target with its own state (a jump, or the feasible edges of a branch).
    case goto([(Int, AbstractState)])
    /// Out of the function, with what r0 holds.
    case exit(Value)
    /// Nowhere (a call to a function that never returns).
    case stop
}

extension Statement {
    /// Whether control may go on to the next statement (everything but exit and ja).
    var fallsThrough: Bool {
        switch self {
        case .exit, .jump: false
        default: true
        }
    }

    /// The offset of a jump or branch (relative to the next slot), if this is one.
    var jumpOffset: Int32? {
        switch self {
        case .jump(let offset, _): offset
        case .branch(_, _, _, _, let offset): Int32(offset)
        default: nil
        }
    }

    /// The numbers the statement mentions, as the 64-bit values they stand for.
    var constants: [UInt64] {
        switch self {
        case .alu(_, _, _, .immediate(let v)), .branch(_, _, _, .immediate(let v), _):
            [Semantics.immediate(v), UInt64(UInt32(bitPattern: v))]
        case .loadImmediate64(_, let v): [v]
        case .load(_, _, _, let offset, _), .store(_, _, let offset, _), .atomic(_, _, _, let offset, _):
            [Semantics.immediate(Int32(offset))]
        default: []
        }
    }
}
