// The interpreter: runs verified programs only, decoded once (VerifiedProgram.swift), with
// no allocation per run or per instruction. Every check the verifier could not discharge
// is kept: accesses it could not prove in bounds are checked here, and the instruction
// budget is charged at each control transfer for the whole run of instructions up to the
// next one, so running out happens at the same point on every run of the same input.

/// Why a run of a verified program ended without a result.
public enum ExecutionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The program would have executed more than its kind's instruction budget.
    case budgetExhausted(budget: Int)
    /// A memory access the verifier had the interpreter check fell outside its region.
    case outOfBounds(instruction: Int)
    /// The context or output memory given to the run does not have the kind's size.
    case memorySize(String)
    /// An access the verifier proved in bounds was not, or an instruction it found
    /// unreachable ran: a verifier bug, caught only by audited runs (and unreachable
    /// instructions always).
    case verifierBreach(instruction: Int)

    public var description: String {
        switch self {
        case .budgetExhausted(let budget): "ran out of its budget of \(budget) instructions"
        case .outOfBounds(let i): "memory access out of bounds at instruction \(i)"
        case .memorySize(let why): why
        case .verifierBreach(let i): "verifier breach at instruction \(i)"
        }
    }
}

/// How a run treats memory accesses the verifier proved in bounds.
public protocol ExecutionMode {
    /// Whether every access is checked anyway, to catch a verifier that proved too much.
    static var auditsEveryAccess: Bool { get }
}

/// Trust the verifier's proofs (the normal mode).
public enum TrustedExecution: ExecutionMode { public static var auditsEveryAccess: Bool { false } }

/// Check every access, and report a proved one that is out of bounds as a breach.
public enum AuditedExecution: ExecutionMode { public static var auditsEveryAccess: Bool { true } }

/// Runs one verified program; holds its registers, stack and call frames between runs.
/// Not safe to share between threads: give each thread its own.
public final class Interpreter {
    /// The program this interpreter runs.
    public let program: VerifiedProgram
    private let compiled: CompiledProgram
    private let ops: UnsafeMutablePointer<MicroOp>
    /// r0-r10, then the constants.
    private let registers: UnsafeMutablePointer<UInt64>
    private let stack: UnsafeMutableRawPointer
    private let frames: UnsafeMutablePointer<CallFrame>
    private let stackBytesTotal = Limits.stackBytes * Limits.stackFramesMax

    /// Instructions the last run executed (counted a run of instructions at a time; a run
    /// cut short by a helper or an error counts in full).
    public private(set) var instructionsExecuted = 0

    private struct CallFrame {
        var returnSlot: Int
        var returnCost: Int
        var saved: (UInt64, UInt64, UInt64, UInt64)
    }

    /// Compiles `program` once and reserves its registers, stack and call frames.
    public init(_ program: VerifiedProgram) {
        self.program = program
        compiled = CompiledProgram(program)
        ops = .allocate(capacity: compiled.ops.count)
        ops.initialize(from: compiled.ops, count: compiled.ops.count)
        let registerCount = Register.allCases.count + compiled.constants.count
        registers = .allocate(capacity: registerCount)
        registers.initialize(repeating: 0, count: Register.allCases.count)
        (registers + Register.allCases.count).initialize(from: compiled.constants, count: compiled.constants.count)
        stack = .allocate(byteCount: stackBytesTotal, alignment: 16)
        stack.initializeMemory(as: UInt8.self, repeating: 0, count: stackBytesTotal)
        frames = .allocate(capacity: Limits.callDepthMax)
    }

    deinit {
        ops.deallocate()
        registers.deallocate()
        stack.deallocate()
        frames.deallocate()
    }

    /// Runs the program on `context` (r1, length in r2) with `output` (r3) zeroed first.
    /// - Parameter clockTicks: what the `clockTicks` helper returns during this run.
    /// - Returns: r0 at the final `exit`.
    /// - Throws: `ExecutionError` when the memory does not fit the kind, the budget runs
    ///   out, or a checked access is out of bounds. The outcome is the same on every run
    ///   with the same input.
    public func run<Mode: ExecutionMode>(
        context: UnsafeMutableRawBufferPointer, output: UnsafeMutableRawBufferPointer = UnsafeMutableRawBufferPointer(start: nil, count: 0),
        clockTicks: UInt64 = 0, mode: Mode.Type = TrustedExecution.self
    ) throws(ExecutionError) -> UInt64 {
        let kind = program.kind
        switch kind.context {
        case .fixed(let n) where context.count != n:
            throw .memorySize("\(kind.name) programs take a \(n)-byte context, not \(context.count) bytes")
        case .variable(let max) where context.count > max:
            throw .memorySize("\(kind.name) programs take at most \(max) bytes of context, not \(context.count)")
        default: break
        }
        guard output.count == kind.outputBytes else {
            throw .memorySize("\(kind.name) programs take \(kind.outputBytes) bytes of output, not \(output.count)")
        }
        if let base = output.baseAddress { base.initializeMemory(as: UInt8.self, repeating: 0, count: output.count) }
        if kind.startsZeroed { stack.initializeMemory(as: UInt8.self, repeating: 0, count: stackBytesTotal) }
        for r in 0..<Register.allCases.count { registers[r] = 0 }
        // A context of no bytes still gets an address of its own, never 0.
        let contextBase = UInt64(UInt(bitPattern: context.baseAddress ?? UnsafeMutableRawPointer(stack)))
        let outputBase = UInt64(UInt(bitPattern: output.baseAddress ?? UnsafeMutableRawPointer(stack)))
        registers[1] = contextBase
        registers[2] = UInt64(context.count)
        if kind.outputBytes > 0 { registers[3] = outputBase }
        registers[10] = UInt64(UInt(bitPattern: stack)) + UInt64(stackBytesTotal)
        let budget = kind.termination.instructionsMax
        let memory = Memory(contextBase: contextBase, contextBytes: UInt64(context.count),
                            outputBase: outputBase, outputBytes: UInt64(output.count),
                            stackBottom: UInt64(UInt(bitPattern: stack)), stackTop: registers[10])
        guard compiled.entryCost <= budget else {
            instructionsExecuted = 0
            throw .budgetExhausted(budget: budget)
        }
        var remaining = budget - compiled.entryCost
        defer { instructionsExecuted = budget - remaining }
        // Call the dispatch loop with a concrete mode, so it is specialized here whatever
        // module calls `run`: an unspecialized loop would ask the mode on every access.
        if Mode.auditsEveryAccess {
            return try execute(memory: memory, budget: budget, remaining: &remaining, clockTicks: clockTicks, mode: AuditedExecution.self)
        }
        return try execute(memory: memory, budget: budget, remaining: &remaining, clockTicks: clockTicks, mode: TrustedExecution.self)
    }

    /// Runs the program on a copy of `context`; returns r0 and the context afterwards.
    public func run<Mode: ExecutionMode>(context: [UInt8], clockTicks: UInt64 = 0, mode: Mode.Type = TrustedExecution.self)
        throws(ExecutionError) -> (result: UInt64, context: [UInt8], output: [UInt8]) {
        var context = context
        var output = [UInt8](repeating: 0, count: program.kind.outputBytes)
        var outcome: Result<UInt64, ExecutionError> = .success(0)
        context.withUnsafeMutableBytes { c in
            output.withUnsafeMutableBytes { o in
                do throws(ExecutionError) { outcome = .success(try run(context: c, output: o, clockTicks: clockTicks, mode: mode)) } catch { outcome = .failure(error) }
            }
        }
        return (try outcome.get(), context, output)
    }

    /// The regions of one run, for checked accesses.
    private struct Memory {
        var contextBase: UInt64, contextBytes: UInt64
        var outputBase: UInt64, outputBytes: UInt64
        /// The whole stack, all frames; the current frame is `[r10 - 512, r10)`.
        var stackBottom: UInt64, stackTop: UInt64

        /// Whether `bytes` at `address` lie inside `region` (the stack: the current frame).
        @inline(__always) func contains(_ address: UInt64, _ bytes: UInt64, region: UInt8, frame: UInt64) -> Bool {
            let base: UInt64, length: UInt64
            switch region {
            case Region.context.rawValue: (base, length) = (contextBase, contextBytes)
            case Region.stack.rawValue: (base, length) = (frame &- UInt64(Limits.stackBytes), UInt64(Limits.stackBytes))
            default: (base, length) = (outputBase, outputBytes)
            }
            let relative = address &- base
            return relative <= length && length - relative >= bytes
        }

        /// Whether `bytes` at `address` lie where the verifier said the access would: inside
        /// its region, with its first byte in the proved range of offsets.
        func matches(_ audit: AuditedAccess, _ address: UInt64, _ bytes: UInt64, frame: UInt64) -> Bool {
            guard audit.region != MicroOp.unchecked, contains(address, bytes, region: audit.region, frame: frame) else { return false }
            guard audit.isBounded else { return true }
            let base = switch audit.region {
            case Region.context.rawValue: contextBase
            case Region.stack.rawValue: frame
            default: outputBase
            }
            let offset = Int64(bitPattern: address &- base)
            return offset >= audit.lo && offset <= audit.hi
        }
    }

    @inline(__always)
    private static func pointer(_ address: UInt64) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(bitPattern: UInt(address)).unsafelyUnwrapped
    }

    // The dispatch loop. Everything it touches is in locals or behind unsafe pointers the
    // verifier's proofs make safe, so the optimizer keeps the switch a jump table.
    private func execute<Mode: ExecutionMode>(
        memory: Memory, budget: Int, remaining: inout Int, clockTicks: UInt64, mode: Mode.Type
    ) throws(ExecutionError) -> UInt64 {
        let r = registers
        let ops = self.ops
        var pc = 0
        var depth = 0
        var left = remaining
        defer { remaining = left }

        /// Charges the run of instructions about to start; stops before it when the budget
        /// cannot pay for all of it.
        @inline(__always) func charge(_ cost: Int) throws(ExecutionError) {
            left &-= cost
            if left < 0 {
                left &+= cost
                throw .budgetExhausted(budget: budget)
            }
        }
        @inline(__always) func follow(_ taken: Bool, _ op: MicroOp) throws(ExecutionError) {
            if taken {
                pc = Int(op.offset)
                try charge(Int(op.costTaken))
            } else {
                pc &+= 1
                try charge(Int(op.costNext))
            }
        }
        /// The address of a proved access. An audited run holds it to the region and range
        /// the verifier proved; landing anywhere else is a breach.
        @inline(__always) func address(_ op: MicroOp, _ base: UInt16, _ bytes: UInt64) throws(ExecutionError) -> UnsafeMutableRawPointer {
            let a = r[Int(base)] &+ UInt64(bitPattern: Int64(op.offset))
            if Mode.auditsEveryAccess {
                guard memory.matches(compiled.audits[pc], a, bytes, frame: r[10]) else { throw .verifierBreach(instruction: pc) }
            }
            return Self.pointer(a)
        }
        /// The address of an access the verifier could not prove, checked against its region.
        /// An audited run also holds it to the range the verifier found it may lie in.
        @inline(__always) func checked(_ op: MicroOp, _ base: UInt16, _ bytes: UInt64) throws(ExecutionError) -> UnsafeMutableRawPointer {
            let a = r[Int(base)] &+ UInt64(bitPattern: Int64(op.offset))
            guard memory.contains(a, bytes, region: op.region, frame: r[10]) else { throw .outOfBounds(instruction: pc) }
            if Mode.auditsEveryAccess {
                guard memory.matches(compiled.audits[pc], a, bytes, frame: r[10]) else { throw .verifierBreach(instruction: pc) }
            }
            return Self.pointer(a)
        }
        /// An atomic's address: checked when the verifier asked for it.
        @inline(__always) func atomicAddress(_ op: MicroOp, _ bytes: UInt64) throws(ExecutionError) -> UnsafeMutableRawPointer {
            op.region != MicroOp.unchecked ? try checked(op, op.dst, bytes) : try address(op, op.dst, bytes)
        }

        while true {
            let op = ops[pc]
            let d = Int(op.dst), s = Int(op.src)
            switch op.code {
            case .add64: r[d] = r[d] &+ r[s]
            case .sub64: r[d] = r[d] &- r[s]
            case .mul64: r[d] = r[d] &* r[s]
            case .div64: r[d] = Semantics.alu64(.div, r[d], r[s])
            case .sdiv64: r[d] = Semantics.sdiv64(r[d], r[s])
            case .or64: r[d] = r[d] | r[s]
            case .and64: r[d] = r[d] & r[s]
            case .lsh64: r[d] = r[d] << (r[s] & 63)
            case .rsh64: r[d] = r[d] >> (r[s] & 63)
            case .mod64: r[d] = Semantics.alu64(.mod, r[d], r[s])
            case .smod64: r[d] = Semantics.smod64(r[d], r[s])
            case .xor64: r[d] = r[d] ^ r[s]
            case .mov64: r[d] = r[s]
            case .arsh64: r[d] = Semantics.alu64(.arsh, r[d], r[s])
            case .add32: r[d] = Semantics.alu32(.add, r[d], r[s])
            case .sub32: r[d] = Semantics.alu32(.sub, r[d], r[s])
            case .mul32: r[d] = Semantics.alu32(.mul, r[d], r[s])
            case .div32: r[d] = Semantics.alu32(.div, r[d], r[s])
            case .sdiv32: r[d] = Semantics.alu32(.sdiv, r[d], r[s])
            case .or32: r[d] = Semantics.alu32(.or, r[d], r[s])
            case .and32: r[d] = Semantics.alu32(.and, r[d], r[s])
            case .lsh32: r[d] = Semantics.alu32(.lsh, r[d], r[s])
            case .rsh32: r[d] = Semantics.alu32(.rsh, r[d], r[s])
            case .mod32: r[d] = Semantics.alu32(.mod, r[d], r[s])
            case .smod32: r[d] = Semantics.alu32(.smod, r[d], r[s])
            case .xor32: r[d] = Semantics.alu32(.xor, r[d], r[s])
            case .mov32: r[d] = r[s] & 0xffff_ffff
            case .arsh32: r[d] = Semantics.alu32(.arsh, r[d], r[s])
            case .neg64: r[d] = Semantics.negate(.bits64, r[d])
            case .neg32: r[d] = Semantics.negate(.bits32, r[d])
            case .movsx8to64: r[d] = Semantics.signExtend(.bits64, r[s], fromBits: 8)
            case .movsx16to64: r[d] = Semantics.signExtend(.bits64, r[s], fromBits: 16)
            case .movsx32to64: r[d] = Semantics.signExtend(.bits64, r[s], fromBits: 32)
            case .movsx8to32: r[d] = Semantics.signExtend(.bits32, r[s], fromBits: 8)
            case .movsx16to32: r[d] = Semantics.signExtend(.bits32, r[s], fromBits: 16)
            case .truncate16: r[d] = r[d] & 0xffff
            case .truncate32: r[d] = r[d] & 0xffff_ffff
            case .swap16: r[d] = UInt64(UInt16(truncatingIfNeeded: r[d]).byteSwapped)
            case .swap32: r[d] = UInt64(UInt32(truncatingIfNeeded: r[d]).byteSwapped)
            case .swap64: r[d] = r[d].byteSwapped
            case .nop: break

            case .ldxb: r[d] = UInt64(try address(op, op.src, 1).load(as: UInt8.self))
            case .ldxh: r[d] = UInt64(try address(op, op.src, 2).loadUnaligned(as: UInt16.self))
            case .ldxw: r[d] = UInt64(try address(op, op.src, 4).loadUnaligned(as: UInt32.self))
            case .ldxdw: r[d] = try address(op, op.src, 8).loadUnaligned(as: UInt64.self)
            case .ldxsb: r[d] = UInt64(bitPattern: Int64(try address(op, op.src, 1).load(as: Int8.self)))
            case .ldxsh: r[d] = UInt64(bitPattern: Int64(try address(op, op.src, 2).loadUnaligned(as: Int16.self)))
            case .ldxsw: r[d] = UInt64(bitPattern: Int64(try address(op, op.src, 4).loadUnaligned(as: Int32.self)))
            case .stb: try address(op, op.dst, 1).storeBytes(of: UInt8(truncatingIfNeeded: r[s]), as: UInt8.self)
            case .sth: try address(op, op.dst, 2).storeBytes(of: UInt16(truncatingIfNeeded: r[s]), as: UInt16.self)
            case .stw: try address(op, op.dst, 4).storeBytes(of: UInt32(truncatingIfNeeded: r[s]), as: UInt32.self)
            case .stdw: try address(op, op.dst, 8).storeBytes(of: r[s], as: UInt64.self)
            case .ldxbChecked: r[d] = UInt64(try checked(op, op.src, 1).load(as: UInt8.self))
            case .ldxhChecked: r[d] = UInt64(try checked(op, op.src, 2).loadUnaligned(as: UInt16.self))
            case .ldxwChecked: r[d] = UInt64(try checked(op, op.src, 4).loadUnaligned(as: UInt32.self))
            case .ldxdwChecked: r[d] = try checked(op, op.src, 8).loadUnaligned(as: UInt64.self)
            case .ldxsbChecked: r[d] = UInt64(bitPattern: Int64(try checked(op, op.src, 1).load(as: Int8.self)))
            case .ldxshChecked: r[d] = UInt64(bitPattern: Int64(try checked(op, op.src, 2).loadUnaligned(as: Int16.self)))
            case .ldxswChecked: r[d] = UInt64(bitPattern: Int64(try checked(op, op.src, 4).loadUnaligned(as: Int32.self)))
            case .stbChecked: try checked(op, op.dst, 1).storeBytes(of: UInt8(truncatingIfNeeded: r[s]), as: UInt8.self)
            case .sthChecked: try checked(op, op.dst, 2).storeBytes(of: UInt16(truncatingIfNeeded: r[s]), as: UInt16.self)
            case .stwChecked: try checked(op, op.dst, 4).storeBytes(of: UInt32(truncatingIfNeeded: r[s]), as: UInt32.self)
            case .stdwChecked: try checked(op, op.dst, 8).storeBytes(of: r[s], as: UInt64.self)
            case .atomic32:
                let p = try atomicAddress(op, 4)
                let old = UInt64(p.loadUnaligned(as: UInt32.self))
                if let new = Self.atomicResult(op.aux, old: old, source: r[s], r0: r[0] & 0xffff_ffff) {
                    p.storeBytes(of: UInt32(truncatingIfNeeded: new), as: UInt32.self)
                }
                Self.atomicFetch(op.aux, old: old, into: r, source: s)
            case .atomic64:
                let p = try atomicAddress(op, 8)
                let old = p.loadUnaligned(as: UInt64.self)
                if let new = Self.atomicResult(op.aux, old: old, source: r[s], r0: r[0]) {
                    p.storeBytes(of: new, as: UInt64.self)
                }
                Self.atomicFetch(op.aux, old: old, into: r, source: s)

            case .ja:
                try follow(true, op)
                continue
            case .jeq64: try follow(r[d] == r[s], op); continue
            case .jgt64: try follow(r[d] > r[s], op); continue
            case .jge64: try follow(r[d] >= r[s], op); continue
            case .jset64: try follow(r[d] & r[s] != 0, op); continue
            case .jne64: try follow(r[d] != r[s], op); continue
            case .jsgt64: try follow(Int64(bitPattern: r[d]) > Int64(bitPattern: r[s]), op); continue
            case .jsge64: try follow(Int64(bitPattern: r[d]) >= Int64(bitPattern: r[s]), op); continue
            case .jlt64: try follow(r[d] < r[s], op); continue
            case .jle64: try follow(r[d] <= r[s], op); continue
            case .jslt64: try follow(Int64(bitPattern: r[d]) < Int64(bitPattern: r[s]), op); continue
            case .jsle64: try follow(Int64(bitPattern: r[d]) <= Int64(bitPattern: r[s]), op); continue
            case .jeq32: try follow(Semantics.condition(.eq, .bits32, r[d], r[s]), op); continue
            case .jgt32: try follow(Semantics.condition(.gt, .bits32, r[d], r[s]), op); continue
            case .jge32: try follow(Semantics.condition(.ge, .bits32, r[d], r[s]), op); continue
            case .jset32: try follow(Semantics.condition(.set, .bits32, r[d], r[s]), op); continue
            case .jne32: try follow(Semantics.condition(.ne, .bits32, r[d], r[s]), op); continue
            case .jsgt32: try follow(Semantics.condition(.sgt, .bits32, r[d], r[s]), op); continue
            case .jsge32: try follow(Semantics.condition(.sge, .bits32, r[d], r[s]), op); continue
            case .jlt32: try follow(Semantics.condition(.lt, .bits32, r[d], r[s]), op); continue
            case .jle32: try follow(Semantics.condition(.le, .bits32, r[d], r[s]), op); continue
            case .jslt32: try follow(Semantics.condition(.slt, .bits32, r[d], r[s]), op); continue
            case .jsle32: try follow(Semantics.condition(.sle, .bits32, r[d], r[s]), op); continue

            case .callHelper:
                switch Helper(rawValue: op.aux).unsafelyUnwrapped {
                case .unwind:
                    r[0] = r[1]
                    if r[1] == 0 { return 0 }
                case .clockTicks:
                    r[0] = clockTicks
                }
            case .callLocal:
                frames[depth] = CallFrame(returnSlot: pc + 1, returnCost: Int(op.costNext), saved: (r[6], r[7], r[8], r[9]))
                depth += 1
                r[10] &-= UInt64(Limits.stackBytes)
                try follow(true, op)
                continue
            case .exit:
                if depth == 0 { return r[0] }
                depth -= 1
                let frame = frames[depth]
                (r[6], r[7], r[8], r[9]) = frame.saved
                r[10] &+= UInt64(Limits.stackBytes)
                pc = frame.returnSlot
                try charge(frame.returnCost)
                continue
            case .unreachable:
                throw .verifierBreach(instruction: pc)
            }
            pc &+= 1
        }
    }

    /// The value an atomic operation stores, or nil when it stores nothing (a failed
    /// compare-exchange).
    @inline(__always)
    private static func atomicResult(_ operation: Int32, old: UInt64, source: UInt64, r0: UInt64) -> UInt64? {
        switch AtomicOperation(rawValue: operation).unsafelyUnwrapped {
        case .add, .fetchAdd: old &+ source
        case .or, .fetchOr: old | source
        case .and, .fetchAnd: old & source
        case .xor, .fetchXor: old ^ source
        case .exchange: source
        case .compareExchange: old == r0 ? source : nil
        }
    }

    /// Writes the old value where a fetching operation returns it.
    @inline(__always)
    private static func atomicFetch(_ operation: Int32, old: UInt64, into r: UnsafeMutablePointer<UInt64>, source: Int) {
        let op = AtomicOperation(rawValue: operation).unsafelyUnwrapped
        if op == .compareExchange {
            r[0] = old
        } else if op.fetches {
            r[source] = old
        }
    }
}
