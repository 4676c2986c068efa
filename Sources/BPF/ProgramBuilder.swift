// Writing programs in Swift: a builder with labels, so code such as C-FFS's UDFs names
// its jump targets instead of counting offsets by hand. The text assembler is built on it.
//
//     var b = ProgramBuilder()
//     let done = b.makeLabel()
//     b.mov(.r0, 0)
//     b.branch(.eq, .r2, 0, to: done)
//     b.load(.word, .r0, from: .r1, offset: 0)
//     b.bind(done)
//     b.exit()
//     let program = try b.build()

/// A jump or call target in a `ProgramBuilder`.
public struct Label: Hashable, Sendable {
    fileprivate let id: Int
}

/// A problem in a program's text or its labels.
public struct AssemblyError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Line of the text (from 1), or 0 for programs built in Swift.
    public var line: Int
    public var message: String

    public init(line: Int, message: String) {
        self.line = line
        self.message = message
    }

    public var description: String { line > 0 ? "line \(line): \(message)" : message }
}

extension Operand: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int32) { self = .immediate(value) }

    /// Registers as operands, so `b.add(.r0, .r1)` reads naturally.
    public static let r0 = Operand.register(.r0), r1 = Operand.register(.r1), r2 = Operand.register(.r2)
    public static let r3 = Operand.register(.r3), r4 = Operand.register(.r4), r5 = Operand.register(.r5)
    public static let r6 = Operand.register(.r6), r7 = Operand.register(.r7), r8 = Operand.register(.r8)
    public static let r9 = Operand.register(.r9), r10 = Operand.register(.r10)
}

/// Builds a program statement by statement, resolving labels in `build()`.
public struct ProgramBuilder {
    private var statements: [Statement] = []
    /// Statements whose offset is filled in from a label: index, label, line.
    private var fixups: [(index: Int, label: Label, line: Int)] = []
    /// The slot each label is bound to.
    private var bound: [Int?] = []
    /// Slot where the next statement goes.
    public private(set) var slotCount = 0

    /// An empty program.
    public init() {}

    /// A new label, bound later with `bind`.
    public mutating func makeLabel() -> Label {
        bound.append(nil)
        return Label(id: bound.count - 1)
    }

    /// Binds `label` to the next statement. A label is bound once.
    public mutating func bind(_ label: Label) {
        precondition(bound[label.id] == nil, "a label is bound once")
        bound[label.id] = slotCount
    }

    /// Binds `alias` to wherever `label` is bound.
    public mutating func bind(_ alias: Label, sameAs label: Label) {
        precondition(bound[alias.id] == nil && bound[label.id] != nil, "an alias is bound once, to a bound label")
        bound[alias.id] = bound[label.id]
    }

    /// Whether `label` is bound yet.
    public func isBound(_ label: Label) -> Bool { bound[label.id] != nil }

    /// Appends a statement as it is.
    public mutating func emit(_ statement: Statement) {
        statements.append(statement)
        slotCount += statement.slotCount
    }

    /// Appends a jump, branch or local call whose offset comes from `label`.
    public mutating func emit(_ statement: Statement, to label: Label, line: Int = 0) {
        fixups.append((statements.count, label, line))
        emit(statement)
    }

    // MARK: Conveniences

    /// `dst = dst op src`, 64-bit.
    public mutating func alu(_ operation: AluOperation, _ dst: Register, _ src: Operand) { emit(.alu(operation, .bits64, dst, src)) }
    /// `dst = dst op src` on the low halves, zero-extended.
    public mutating func alu32(_ operation: AluOperation, _ dst: Register, _ src: Operand) { emit(.alu(operation, .bits32, dst, src)) }
    /// `dst = src`.
    public mutating func mov(_ dst: Register, _ src: Operand) { alu(.mov, dst, src) }
    /// `dst += src`.
    public mutating func add(_ dst: Register, _ src: Operand) { alu(.add, dst, src) }
    /// `dst = value` (`lddw`, two slots).
    public mutating func loadImmediate(_ dst: Register, _ value: UInt64) { emit(.loadImmediate64(dst, value)) }

    /// `dst = *(size *)(base + offset)`.
    public mutating func load(_ size: AccessSize, _ dst: Register, from base: Register, offset: Int16 = 0) {
        emit(.load(size, dst, base: base, offset: offset, signExtend: false))
    }

    /// `*(size *)(base + offset) = value`.
    public mutating func store(_ size: AccessSize, to base: Register, offset: Int16 = 0, _ value: Operand) {
        emit(.store(size, base: base, offset: offset, value: value))
    }

    /// Jumps to `label`.
    public mutating func jump(to label: Label) { emit(.jump(offset: 0, wide: false), to: label) }

    /// Jumps to `label` when `dst condition src` (64-bit).
    public mutating func branch(_ condition: JumpCondition, _ dst: Register, _ src: Operand, to label: Label) {
        emit(.branch(condition, .bits64, dst, src, offset: 0), to: label)
    }

    /// Jumps to `label` when `dst condition src` on the low halves.
    public mutating func branch32(_ condition: JumpCondition, _ dst: Register, _ src: Operand, to label: Label) {
        emit(.branch(condition, .bits32, dst, src, offset: 0), to: label)
    }

    /// Calls a helper.
    public mutating func call(_ helper: Helper) { emit(.callHelper(helper.rawValue)) }
    /// Calls the program-local function at `function`.
    public mutating func call(_ function: Label) { emit(.callLocal(offset: 0), to: function) }
    /// Returns from the function (ends the program in the entry function).
    public mutating func exit() { emit(.exit) }

    /// The program, with every label's offset filled in.
    /// - Throws: `AssemblyError` for a label never bound, an offset that does not fit its
    ///   field, or a program longer than `Limits.programSlotsMax`.
    public func build() throws(AssemblyError) -> Program {
        var statements = self.statements
        var slotOf: [Int] = []
        var slot = 0
        for statement in statements {
            slotOf.append(slot)
            slot += statement.slotCount
        }
        for fixup in fixups {
            guard let target = bound[fixup.label.id] else {
                throw AssemblyError(line: fixup.line, message: "label is never defined")
            }
            let offset = target - slotOf[fixup.index] - 1
            switch statements[fixup.index] {
            case .jump(_, let wide):
                guard wide || Int(Int16.min)...Int(Int16.max) ~= offset else {
                    throw AssemblyError(line: fixup.line, message: "jump of \(offset) does not fit 16 bits")
                }
                statements[fixup.index] = .jump(offset: Int32(offset), wide: wide)
            case .branch(let condition, let width, let dst, let src, _):
                guard let offset16 = Int16(exactly: offset) else {
                    throw AssemblyError(line: fixup.line, message: "jump of \(offset) does not fit 16 bits")
                }
                statements[fixup.index] = .branch(condition, width, dst, src, offset: offset16)
            case .callLocal:
                statements[fixup.index] = .callLocal(offset: Int32(offset))
            default:
                preconditionFailure("only jumps and calls take labels")
            }
        }
        guard slot <= Limits.programSlotsMax else {
            throw AssemblyError(line: 0, message: ProgramFormatError.tooLong(slots: slot).description)
        }
        var instructions: [Instruction] = []
        instructions.reserveCapacity(slot)
        for statement in statements { instructions.append(contentsOf: statement.encoded) }
        return Program(instructions)
    }
}
