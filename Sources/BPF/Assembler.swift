// The text form of programs, in the conformance suite's syntax:
//
//     mov32 %r0, 0                  ldxw %r0, [%r1+4]          lock fetch add [%r10-8], %r1
//     jeq %r1, 0, +3                jne %r0, 15, failed        call local func1
//     lddw %r0, 0x1122334455667788  call 5                     call %r2
//
// One statement per line; `#` starts a comment; `name:` defines a label. Jump targets are
// `+N`/`-N` slots or a label; `exit` names the first `exit` unless a label says otherwise.
// Registers may be written with or without `%`. The disassembler prints this syntax back.

/// Turns program text into a program.
public enum Assembler {
    /// Assembles `text`.
    /// - Throws: `AssemblyError` with the line of the first problem: an unknown mnemonic,
    ///   a bad operand, a number out of range, an undefined or duplicate label, or a
    ///   program longer than `Limits.programSlotsMax`.
    public static func assemble(_ text: String) throws(AssemblyError) -> Program {
        var builder = ProgramBuilder()
        var labels: [String: Label] = [:]
        var defined = Set<String>()
        var firstExit: Label?
        var firstUse: [String: Int] = [:]
        func label(_ name: String) -> Label {
            if let l = labels[name] { return l }
            let l = builder.makeLabel()
            labels[name] = l
            return l
        }
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            var tokens = tokenize(rawLine)
            // Labels: `name:` (possibly followed by a statement).
            while let first = tokens.first, first.hasSuffix(":") {
                let name = String(first.dropLast())
                guard isIdentifier(name) else { throw AssemblyError(line: lineNumber, message: "'\(name)' is not a label name") }
                guard !defined.contains(name) else { throw AssemblyError(line: lineNumber, message: "label '\(name)' is defined twice") }
                defined.insert(name)
                builder.bind(label(name))
                tokens.removeFirst()
            }
            guard !tokens.isEmpty else { continue }
            var line = Line(tokens: tokens, number: lineNumber)
            let statement = try line.statement()
            if statement == .exit && firstExit == nil {
                let l = builder.makeLabel()
                builder.bind(l)
                firstExit = l
            }
            if case .label(let name) = line.target {
                if firstUse[name] == nil { firstUse[name] = lineNumber }
                builder.emit(statement, to: label(name), line: lineNumber)
            } else {
                builder.emit(statement)
            }
            guard builder.slotCount <= Limits.programSlotsMax else {
                throw AssemblyError(line: lineNumber, message: ProgramFormatError.tooLong(slots: builder.slotCount).description)
            }
        }
        for (name, line) in firstUse.sorted(by: { $0.value < $1.value }) where name != "exit" && !defined.contains(name) {
            throw AssemblyError(line: line, message: "label '\(name)' is never defined")
        }
        // `exit` as a target means the first exit statement unless a label took the name.
        if let exitLabel = labels["exit"], !defined.contains("exit") {
            guard let first = firstExit else { throw AssemblyError(line: 0, message: "jump to 'exit' but the program has no exit") }
            builder.bind(exitLabel, sameAs: first)
        }
        guard builder.slotCount > 0 else { throw AssemblyError(line: 0, message: "the program has no instructions") }
        return try builder.build()
    }

    /// Splits a line into tokens: words, with `[...]` kept whole and commas dropped.
    private static func tokenize(_ line: Substring) -> [String] {
        var tokens: [String] = []
        var current: [UInt8] = []
        var inBracket = false
        for byte in line.utf8 {
            if byte == UInt8(ascii: "#") && !inBracket { break }
            switch byte {
            case UInt8(ascii: "["): inBracket = true; current.append(byte)
            case UInt8(ascii: "]"): inBracket = false; current.append(byte)
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"):
                if !inBracket && !current.isEmpty { tokens.append(String(decoding: current, as: UTF8.self)); current = [] }
            case UInt8(ascii: ","):
                if !current.isEmpty { tokens.append(String(decoding: current, as: UTF8.self)); current = [] }
            default: current.append(byte)
            }
        }
        if !current.isEmpty { tokens.append(String(decoding: current, as: UTF8.self)) }
        return tokens
    }

    static func isIdentifier(_ s: String) -> Bool {
        guard let first = s.utf8.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { return false }
        return s.utf8.allSatisfy { b in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) || b == UInt8(ascii: "_") || b == UInt8(ascii: ".")
        }
    }
}

/// Where a jump written in text goes.
private enum Target {
    case relative
    case label(String)
}

/// One line's tokens, parsed into a statement.
private struct Line {
    var tokens: [String]
    var number: Int
    /// Set when the statement's target is a label to resolve.
    var target: Target?

    init(tokens: [String], number: Int) {
        self.tokens = tokens
        self.number = number
    }

    func fail(_ message: String) -> AssemblyError { AssemblyError(line: number, message: message) }

    mutating func statement() throws(AssemblyError) -> Statement {
        var mnemonic = tokens[0]
        var operands = Array(tokens.dropFirst())
        func expect(_ n: Int) throws(AssemblyError) {
            guard operands.count == n else { throw fail("\(mnemonic) takes \(n) operand\(n == 1 ? "" : "s"), not \(operands.count)") }
        }

        // Widths: a trailing 32 selects the 32-bit form of ALU and jumps.
        func split32(_ name: String) -> (String, Width) {
            name.hasSuffix("32") ? (String(name.dropLast(2)), .bits32) : (name, .bits64)
        }

        if mnemonic == "exit" { try expect(0); return .exit }
        if mnemonic == "lock" {
            var fetch = false
            if operands.first == "fetch" { fetch = true; operands.removeFirst() }
            guard !operands.isEmpty else { throw fail("lock needs an operation") }
            mnemonic = operands.removeFirst()
            try expect(2)
            let (name, width) = split32(mnemonic)
            let operation: AtomicOperation
            switch (name, fetch) {
            case ("add", false): operation = .add
            case ("or", false): operation = .or
            case ("and", false): operation = .and
            case ("xor", false): operation = .xor
            case ("add", true): operation = .fetchAdd
            case ("or", true): operation = .fetchOr
            case ("and", true): operation = .fetchAnd
            case ("xor", true): operation = .fetchXor
            case ("xchg", _): operation = .exchange
            case ("cmpxchg", _): operation = .compareExchange
            default: throw fail("unknown atomic operation '\(mnemonic)'")
            }
            let (base, offset) = try memory(operands[0])
            return .atomic(operation, width, base: base, offset: offset, source: try register(operands[1]))
        }
        if mnemonic == "call" || mnemonic == "callx" {
            if operands.count == 2 {
                let mode = operands.removeFirst()
                if mode == "local" {
                    try expect(1)
                    return .callLocal(offset: try jumpTarget(operands[0], wide: true))
                }
                guard mode == "helper" else { throw fail("unknown call mode '\(mode)'") }
            }
            try expect(1)
            if let r = try? register(operands[0]) { return .callRegister(r) }
            guard mnemonic == "call" else { throw fail("callx takes a register") }
            return .callHelper(try immediate32(operands[0]))
        }
        if mnemonic == "ja" || mnemonic == "ja32" {
            try expect(1)
            let wide = mnemonic == "ja32"
            return .jump(offset: try jumpTarget(operands[0], wide: wide), wide: wide)
        }
        if mnemonic == "lddw" {
            try expect(2)
            return .loadImmediate64(try register(operands[0]), try immediate64(operands[1]))
        }
        if mnemonic.hasPrefix("ldx") {
            try expect(2)
            var name = String(mnemonic.dropFirst(3))
            let signExtend = name.hasPrefix("s")
            if signExtend { name.removeFirst() }
            guard let size = accessSize(name), !(signExtend && size == .double) else { throw fail("unknown mnemonic '\(mnemonic)'") }
            let (base, offset) = try memory(operands[1])
            return .load(size, try register(operands[0]), base: base, offset: offset, signExtend: signExtend)
        }
        if mnemonic.hasPrefix("stx") || mnemonic.hasPrefix("st") {
            try expect(2)
            let fromRegister = mnemonic.hasPrefix("stx")
            guard let size = accessSize(String(mnemonic.dropFirst(fromRegister ? 3 : 2))) else { throw fail("unknown mnemonic '\(mnemonic)'") }
            let (base, offset) = try memory(operands[0])
            let value: Operand = fromRegister ? .register(try register(operands[1])) : .immediate(try immediate32(operands[1]))
            return .store(size, base: base, offset: offset, value: value)
        }
        for (prefix, order) in [("le", ByteOrder.toLittle), ("be", .toBig), ("bswap", .swap), ("swap", .swap)] {
            if mnemonic.hasPrefix(prefix), let bits = UInt8(mnemonic.dropFirst(prefix.count)), [16, 32, 64].contains(bits) {
                try expect(1)
                return .byteOrder(order, try register(operands[0]), bits: bits)
            }
        }
        if mnemonic.hasPrefix("movsx") {
            try expect(2)
            let widths: [String: (UInt8, Width)] = ["864": (8, .bits64), "1664": (16, .bits64), "3264": (32, .bits64),
                                                     "832": (8, .bits32), "1632": (16, .bits32)]
            guard let (bits, width) = widths[String(mnemonic.dropFirst(5))] else { throw fail("unknown mnemonic '\(mnemonic)'") }
            return .moveSignExtend(width, try register(operands[0]), try register(operands[1]), fromBits: bits)
        }
        let (name, width) = split32(mnemonic)
        if name == "neg" {
            try expect(1)
            return .negate(width, try register(operands[0]))
        }
        if let operation = AluOperation.named(name) {
            try expect(2)
            return .alu(operation, width, try register(operands[0]), try operand(operands[1]))
        }
        if name.hasPrefix("j"), let condition = JumpCondition.named(String(name.dropFirst())) {
            try expect(3)
            let offset = try jumpTarget(operands[2], wide: false)
            return .branch(condition, width, try register(operands[0]), try operand(operands[1]), offset: Int16(offset))
        }
        throw fail("unknown mnemonic '\(mnemonic)'")
    }

    func register(_ token: String) throws(AssemblyError) -> Register {
        let name = token.hasPrefix("%") ? String(token.dropFirst()) : token
        guard name.hasPrefix("r"), let n = UInt8(name.dropFirst()), let r = Register(rawValue: n) else {
            throw fail("'\(token)' is not a register")
        }
        return r
    }

    func operand(_ token: String) throws(AssemblyError) -> Operand {
        if token.hasPrefix("%") || token.hasPrefix("r") { return .register(try register(token)) }
        return .immediate(try immediate32(token))
    }

    /// A number: decimal or `0x` hex, optionally negative, within `min...max`.
    func number(_ token: String, min: Int64, max: UInt64) throws(AssemblyError) -> UInt64 {
        var digits = Substring(token)
        var negative = false
        if digits.hasPrefix("-") { negative = true; digits = digits.dropFirst() } else if digits.hasPrefix("+") { digits = digits.dropFirst() }
        var radix: UInt64 = 10
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") { radix = 16; digits = digits.dropFirst(2) }
        guard !digits.isEmpty else { throw fail("'\(token)' is not a number") }
        var value: UInt64 = 0
        for byte in digits.utf8 {
            let digit: UInt64
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt64(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f") where radix == 16: digit = UInt64(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F") where radix == 16: digit = UInt64(byte - UInt8(ascii: "A") + 10)
            default: throw fail("'\(token)' is not a number")
            }
            let (shifted, o1) = value.multipliedReportingOverflow(by: radix)
            let (sum, o2) = shifted.addingReportingOverflow(digit)
            guard !o1 && !o2 else { throw fail("'\(token)' is too large") }
            value = sum
        }
        if negative {
            guard value <= UInt64(bitPattern: 0 &- min) else { throw fail("'\(token)' is too small") }
            return 0 &- value
        }
        guard value <= max else { throw fail("'\(token)' is too large") }
        return value
    }

    /// A 32-bit immediate, written signed or as its unsigned bit pattern.
    func immediate32(_ token: String) throws(AssemblyError) -> Int32 {
        Int32(truncatingIfNeeded: try number(token, min: Int64(Int32.min), max: UInt64(UInt32.max)))
    }

    func immediate64(_ token: String) throws(AssemblyError) -> UInt64 {
        try number(token, min: Int64.min, max: .max)
    }

    /// `[%rN]`, `[%rN+off]` or `[%rN-off]`.
    func memory(_ token: String) throws(AssemblyError) -> (Register, Int16) {
        guard token.hasPrefix("["), token.hasSuffix("]") else { throw fail("'\(token)' is not a memory operand like [%r1+4]") }
        let inner = String(token.dropFirst().dropLast().filter { $0 != " " })
        guard let sign = inner.firstIndex(where: { $0 == "+" || $0 == "-" }) else { return (try register(inner), 0) }
        let base = try register(String(inner[..<sign]))
        let offset = try number(String(inner[sign...]), min: Int64(Int16.min), max: UInt64(Int16.max))
        return (base, Int16(truncatingIfNeeded: offset))
    }

    /// `+N`/`-N`, or a label (recorded in `target`; the offset is filled in later).
    mutating func jumpTarget(_ token: String, wide: Bool) throws(AssemblyError) -> Int32 {
        if token.hasPrefix("+") || token.hasPrefix("-") {
            target = .relative
            let bound: (Int64, UInt64) = wide ? (Int64(Int32.min), UInt64(Int32.max)) : (Int64(Int16.min), UInt64(Int16.max))
            return Int32(truncatingIfNeeded: try number(token, min: bound.0, max: bound.1))
        }
        guard Assembler.isIdentifier(token) else { throw fail("'\(token)' is not a jump target") }
        target = .label(token)
        return 0
    }

    func accessSize(_ name: String) -> AccessSize? {
        switch name {
        case "b": .byte
        case "h": .half
        case "w": .word
        case "dw": .double
        default: nil
        }
    }
}

extension AluOperation {
    /// The operation's mnemonic (without a width suffix).
    public var mnemonic: String {
        switch self {
        case .add: "add"
        case .sub: "sub"
        case .mul: "mul"
        case .div: "div"
        case .sdiv: "sdiv"
        case .or: "or"
        case .and: "and"
        case .lsh: "lsh"
        case .rsh: "rsh"
        case .mod: "mod"
        case .smod: "smod"
        case .xor: "xor"
        case .mov: "mov"
        case .arsh: "arsh"
        }
    }

    static func named(_ name: String) -> AluOperation? { allCases.first { $0.mnemonic == name } }
}

extension JumpCondition {
    /// The condition's mnemonic without the leading `j` (`eq`, `sgt`, …).
    public var mnemonic: String {
        switch self {
        case .eq: "eq"
        case .gt: "gt"
        case .ge: "ge"
        case .set: "set"
        case .ne: "ne"
        case .sgt: "sgt"
        case .sge: "sge"
        case .lt: "lt"
        case .le: "le"
        case .slt: "slt"
        case .sle: "sle"
        }
    }

    static func named(_ name: String) -> JumpCondition? { allCases.first { $0.mnemonic == name } }
}
