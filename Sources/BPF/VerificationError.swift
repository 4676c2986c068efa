// Why the verifier refused a program: the instruction, the rule it broke, and the register
// state on the path that reached it (DESIGN.md §4: "a rejection says which instruction,
// why, and the register state on that path").

/// The rules the verifier enforces, one case per rule.
public enum VerificationRule: String, CaseIterable, Sendable {
    /// The bytes are not a program (empty, partial slot, too long).
    case format
    /// An instruction is not well formed (unknown opcode, nonzero unused field, bad register).
    case malformed
    /// A jump or call leaves the program.
    case jumpOutOfProgram
    /// A jump or call lands on the second slot of a `lddw`.
    case jumpIntoWideInstruction
    /// A jump leaves the function it is in.
    case jumpOutOfFunction
    /// A path runs past the last instruction of its function without `exit`.
    case fallsOffEnd
    /// A register is read before it is written on some path.
    case uninitializedRegister
    /// A stack byte is read before it is written on some path.
    case uninitializedStack
    /// r10, the frame pointer, is written.
    case frameRegisterWritten
    /// A memory access is outside the context, the stack and the output area.
    case outOfBounds
    /// Memory is accessed through a register that does not hold an address.
    case notAnAddress
    /// The program writes a context its kind makes read-only.
    case readOnlyContext
    /// A helper that the program's kind does not offer is called.
    case helperNotAllowed
    /// A program of a deterministic kind (a UDF) calls a non-deterministic helper.
    case nondeterministic
    /// A `callx` whose register does not hold one known helper id.
    case unknownCallTarget
    /// A backward jump in a kind with no instruction budget.
    case loopWithoutBudget
    /// In a loop-free kind, a path (calls counted at their longest) runs more instructions
    /// than the kind's proved bound.
    case pathTooLong
    /// A function calls itself, directly or through others.
    case recursion
    /// Program-local calls nest deeper than `Limits.callDepthMax`.
    case callDepth
    /// A stack address is passed to a program-local function (each frame's stack is its own).
    case stackAddressPassed
    /// An address would become a number the program can see, store or return.
    case addressLeak
    /// Arithmetic on an address other than adding or subtracting a number.
    case addressArithmetic
    /// The analysis needs more than `Limits.verifierStepsMax` steps.
    case tooComplex

    /// The rule in words, as rejections print it.
    public var summary: String {
        switch self {
        case .format: "not a program"
        case .malformed: "malformed instruction"
        case .jumpOutOfProgram: "jump outside the program"
        case .jumpIntoWideInstruction: "jump into the middle of lddw"
        case .jumpOutOfFunction: "jump outside its function"
        case .fallsOffEnd: "path falls off the end without exit"
        case .uninitializedRegister: "register read before it is written"
        case .uninitializedStack: "stack read before it is written"
        case .frameRegisterWritten: "r10 is read-only"
        case .outOfBounds: "memory access out of bounds"
        case .notAnAddress: "memory access through a register that holds no address"
        case .readOnlyContext: "context is read-only"
        case .helperNotAllowed: "helper not allowed"
        case .nondeterministic: "non-deterministic operation"
        case .unknownCallTarget: "callx target is not one known helper"
        case .loopWithoutBudget: "loop in a kind without an instruction budget"
        case .pathTooLong: "a path runs too many instructions"
        case .recursion: "recursive call"
        case .callDepth: "calls nest too deep"
        case .stackAddressPassed: "stack address passed to a function"
        case .addressLeak: "address would leak"
        case .addressArithmetic: "arithmetic on an address"
        case .tooComplex: "program too complex to verify"
        }
    }
}

/// A rejection.
public struct VerificationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Slot index of the offending instruction.
    public var instruction: Int
    public var rule: VerificationRule
    /// What exactly went wrong, in words.
    public var detail: String
    /// The registers on the failing path (empty for structural rules).
    public var registers: String

    public init(instruction: Int, rule: VerificationRule, detail: String, registers: String = "") {
        self.instruction = instruction
        self.rule = rule
        self.detail = detail
        self.registers = registers
    }

    /// The reason, without the instruction number.
    public var reason: String {
        var text = rule.summary + ": " + detail
        if !registers.isEmpty { text += " [" + registers + "]" }
        return text
    }

    /// `rejected at instruction N: REASON`, as `xok bpf verify` prints it.
    public var description: String { "rejected at instruction \(instruction): \(reason)" }
}
