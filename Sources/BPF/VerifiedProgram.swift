// A verified program, compiled once into the flat form the interpreter runs: one
// micro-operation per slot, immediates turned into read-only constant registers so every
// operation reads a register file, jump targets absolute, the run-time bounds checks the
// verifier asked for made explicit, and each jump carrying the budget it charges.

/// A program the verifier accepted for its kind. Only `Verifier.verify` makes one.
public struct VerifiedProgram: Sendable {
    /// The kind it was verified for.
    public let kind: ProgramKind
    /// The program as it was given.
    public let program: Program
    let statements: [Statement?]
    let facts: [SlotFacts]

    /// How many memory accesses the interpreter checks at run time (the verifier could
    /// not prove them in bounds for every input).
    public var guardedAccessCount: Int {
        facts.reduce(0) { count, fact in
            if case .guarded = fact.access { return count + 1 }
            return count
        }
    }
}


/// The interpreter's operations. Every source operand is a register-file index: r0-r10,
/// or a constant slot above them.
enum MicroCode: UInt8 {
    case add64, sub64, mul64, div64, sdiv64, or64, and64, lsh64, rsh64, mod64, smod64, xor64, mov64, arsh64
    case add32, sub32, mul32, div32, sdiv32, or32, and32, lsh32, rsh32, mod32, smod32, xor32, mov32, arsh32
    case neg64, neg32
    case movsx8to64, movsx16to64, movsx32to64, movsx8to32, movsx16to32
    case truncate16, truncate32, swap16, swap32, swap64, nop
    /// Loads and stores proved in bounds.
    case ldxb, ldxh, ldxw, ldxdw, ldxsb, ldxsh, ldxsw, stb, sth, stw, stdw
    /// Loads and stores checked against their region at run time.
    case ldxbChecked, ldxhChecked, ldxwChecked, ldxdwChecked, ldxsbChecked, ldxshChecked, ldxswChecked
    case stbChecked, sthChecked, stwChecked, stdwChecked
    /// An atomic operation; `aux` is the `AtomicOperation`, `region` the checked region or
    /// `MicroOp.unchecked`.
    case atomic32, atomic64
    case ja
    case jeq64, jgt64, jge64, jset64, jne64, jsgt64, jsge64, jlt64, jle64, jslt64, jsle64
    case jeq32, jgt32, jge32, jset32, jne32, jsgt32, jsge32, jlt32, jle32, jslt32, jsle32
    case callHelper, callLocal, exit
    /// A slot no path reaches.
    case unreachable

    static let alu64: [AluOperation: MicroCode] = [
        .add: .add64, .sub: .sub64, .mul: .mul64, .div: .div64, .sdiv: .sdiv64, .or: .or64, .and: .and64,
        .lsh: .lsh64, .rsh: .rsh64, .mod: .mod64, .smod: .smod64, .xor: .xor64, .mov: .mov64, .arsh: .arsh64,
    ]
    static let alu32: [AluOperation: MicroCode] = [
        .add: .add32, .sub: .sub32, .mul: .mul32, .div: .div32, .sdiv: .sdiv32, .or: .or32, .and: .and32,
        .lsh: .lsh32, .rsh: .rsh32, .mod: .mod32, .smod: .smod32, .xor: .xor32, .mov: .mov32, .arsh: .arsh32,
    ]
    static let jump64: [JumpCondition: MicroCode] = [
        .eq: .jeq64, .gt: .jgt64, .ge: .jge64, .set: .jset64, .ne: .jne64, .sgt: .jsgt64, .sge: .jsge64,
        .lt: .jlt64, .le: .jle64, .slt: .jslt64, .sle: .jsle64,
    ]
    static let jump32: [JumpCondition: MicroCode] = [
        .eq: .jeq32, .gt: .jgt32, .ge: .jge32, .set: .jset32, .ne: .jne32, .sgt: .jsgt32, .sge: .jsge32,
        .lt: .jlt32, .le: .jle32, .slt: .jslt32, .sle: .jsle32,
    ]

    /// The load for `size`, `signExtend`, `checked`.
    static func load(_ size: AccessSize, signExtend: Bool, checked: Bool) -> MicroCode {
        switch (size, signExtend, checked) {
        case (.byte, false, false): .ldxb
        case (.half, false, false): .ldxh
        case (.word, false, false): .ldxw
        case (.double, _, false): .ldxdw
        case (.byte, true, false): .ldxsb
        case (.half, true, false): .ldxsh
        case (.word, true, false): .ldxsw
        case (.byte, false, true): .ldxbChecked
        case (.half, false, true): .ldxhChecked
        case (.word, false, true): .ldxwChecked
        case (.double, _, true): .ldxdwChecked
        case (.byte, true, true): .ldxsbChecked
        case (.half, true, true): .ldxshChecked
        case (.word, true, true): .ldxswChecked
        }
    }

    static func store(_ size: AccessSize, checked: Bool) -> MicroCode {
        switch (size, checked) {
        case (.byte, false): .stb
        case (.half, false): .sth
        case (.word, false): .stw
        case (.double, false): .stdw
        case (.byte, true): .stbChecked
        case (.half, true): .sthChecked
        case (.word, true): .stwChecked
        case (.double, true): .stdwChecked
        }
    }
}

/// One compiled slot (20 bytes).
struct MicroOp {
    var code: MicroCode
    /// The region a checked access is checked against (`Region.rawValue`), or `unchecked`.
    var region: UInt8 = MicroOp.unchecked
    var dst: UInt16 = 0
    var src: UInt16 = 0
    /// Helper id, or atomic operation.
    var aux: Int32 = 0
    /// Memory offset, or absolute target slot of a jump or call.
    var offset: Int32 = 0
    /// Budget charged on jumping to the target.
    var costTaken: Int32 = 0
    /// Budget charged on going on at the next slot (after a branch not taken, or a return).
    var costNext: Int32 = 0

    static let unchecked: UInt8 = 0xff
}

/// What the verifier proved about one memory access, for audited runs: the region and
/// the offsets from its start (the stack: from r10) the first byte may lie at.
struct AuditedAccess {
    var region: UInt8 = MicroOp.unchecked
    var lo: Int64 = 0
    var hi: Int64 = 0
    var isBounded = false
}

/// The compiled form: micro-operations, constants, and the cost of entering slot 0.
struct CompiledProgram {
    var ops: [MicroOp]
    /// Per slot, what an audited run holds its access to.
    var audits: [AuditedAccess]
    /// Values of the constant registers, which follow r0-r10 in the register file.
    var constants: [UInt64]
    var entryCost: Int

    init(_ verified: VerifiedProgram) {
        let statements = verified.statements, facts = verified.facts
        let n = statements.count
        var constants: [UInt64] = []
        var constantIndex: [UInt64: UInt16] = [:]
        func constant(_ v: UInt64) -> UInt16 {
            if let i = constantIndex[v] { return i }
            let i = UInt16(Register.allCases.count + constants.count)
            constants.append(v)
            constantIndex[v] = i
            return i
        }
        func source(_ operand: Operand) -> UInt16 {
            switch operand {
            case .register(let r): UInt16(r.rawValue)
            case .immediate(let v): constant(Semantics.immediate(v))
            }
        }
        func reg(_ r: Register) -> UInt16 { UInt16(r.rawValue) }

        // cost[s]: statements executed from s through the next control transfer.
        var cost = Array(repeating: 0, count: n + 1)
        for slot in stride(from: n - 1, through: 0, by: -1) {
            guard let statement = statements[slot] else { continue }
            let next = slot + statement.slotCount
            cost[slot] = 1 + (statement.transfersControl || next >= n ? 0 : cost[next])
        }
        func budget(_ slot: Int) -> Int32 { slot < n ? Int32(cost[slot]) : 0 }

        var ops: [MicroOp] = []
        ops.reserveCapacity(n)
        var audits = Array(repeating: AuditedAccess(), count: n)
        for slot in 0..<n {
            guard let statement = statements[slot], facts[slot].reached else {
                // The second slot of a reached lddw is stepped over on the way to the next.
                let stepOver = slot > 0 && statements[slot] == nil && facts[slot - 1].reached
                ops.append(MicroOp(code: stepOver ? .nop : .unreachable))
                continue
            }
            let accessed: Region?, checkedRegion: UInt8?
            switch facts[slot].access {
            case .none: (accessed, checkedRegion) = (nil, nil)
            case .direct(let region): (accessed, checkedRegion) = (region, nil)
            case .guarded(let region): (accessed, checkedRegion) = (region, region.rawValue)
            }
            if let region = accessed {
                let offsets = facts[slot].offsets
                audits[slot] = AuditedAccess(region: region.rawValue, lo: offsets.lo, hi: offsets.hi, isBounded: offsets.isBounded)
            }
            let checked = checkedRegion != nil
            var op: MicroOp
            switch statement {
            case .alu(let operation, let width, let dst, let operand):
                op = MicroOp(code: (width == .bits64 ? MicroCode.alu64 : MicroCode.alu32)[operation]!, dst: reg(dst), src: source(operand))
            case .negate(let width, let dst):
                op = MicroOp(code: width == .bits64 ? .neg64 : .neg32, dst: reg(dst))
            case .moveSignExtend(let width, let dst, let src, let bits):
                let code: MicroCode = switch (width, bits) {
                case (.bits64, 8): .movsx8to64
                case (.bits64, 16): .movsx16to64
                case (.bits64, _): .movsx32to64
                case (.bits32, 8): .movsx8to32
                case (.bits32, _): .movsx16to32
                }
                op = MicroOp(code: code, dst: reg(dst), src: reg(src))
            case .byteOrder(let order, let dst, let bits):
                let code: MicroCode = switch (order, bits) {
                case (.toLittle, 16): .truncate16
                case (.toLittle, 32): .truncate32
                case (.toLittle, _): .nop
                case (_, 16): .swap16
                case (_, 32): .swap32
                default: .swap64
                }
                op = MicroOp(code: code, dst: reg(dst))
            case .loadImmediate64(let dst, let value):
                op = MicroOp(code: .mov64, dst: reg(dst), src: constant(value))
            case .load(let size, let dst, let base, let offset, let signExtend):
                op = MicroOp(code: .load(size, signExtend: signExtend, checked: checked), dst: reg(dst), src: reg(base), offset: Int32(offset))
            case .store(let size, let base, let offset, let value):
                op = MicroOp(code: .store(size, checked: checked), dst: reg(base), src: source(value), offset: Int32(offset))
            case .atomic(let operation, let width, let base, let offset, let src):
                op = MicroOp(code: width == .bits64 ? .atomic64 : .atomic32, dst: reg(base), src: reg(src), aux: operation.rawValue, offset: Int32(offset))
            case .jump(let offset, _):
                let target = slot + 1 + Int(offset)
                op = MicroOp(code: .ja, offset: Int32(target), costTaken: budget(target))
            case .branch(let condition, let width, let dst, let operand, let offset):
                let target = slot + 1 + Int(offset)
                let code = (width == .bits64 ? MicroCode.jump64 : MicroCode.jump32)[condition]!
                // A 32-bit comparison uses only the low half of the constant.
                op = MicroOp(code: code, dst: reg(dst), src: source(operand), offset: Int32(target),
                             costTaken: budget(target), costNext: budget(slot + 1))
            case .callHelper(let id):
                op = MicroOp(code: .callHelper, aux: id)
            case .callRegister:
                op = MicroOp(code: .callHelper, aux: facts[slot].helper!.rawValue)
            case .callLocal(let offset):
                let target = slot + 1 + Int(offset)
                op = MicroOp(code: .callLocal, offset: Int32(target), costTaken: budget(target), costNext: budget(slot + 1))
            case .exit:
                op = MicroOp(code: .exit)
            }
            if let region = checkedRegion { op.region = region }
            ops.append(op)
        }
        self.ops = ops
        self.audits = audits
        self.constants = constants
        self.entryCost = cost[0]
    }
}

extension Statement {
    /// Whether control may go anywhere but the next statement.
    var transfersControl: Bool {
        switch self {
        case .jump, .branch, .callLocal, .exit: true
        default: false
        }
    }
}
