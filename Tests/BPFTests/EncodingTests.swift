// Instruction encoding: every statement form round-trips, decoding is canonical, and
// malformed slots are refused with the slot and the reason.

import BPF
import Testing
import XokSimulation

@Suite struct Encoding {
    /// One statement of every form (and every operation within a form).
    static let statements: [Statement] = {
        var all: [Statement] = []
        for op in AluOperation.allCases {
            for width in [Width.bits32, .bits64] {
                all.append(.alu(op, width, .r3, .register(.r7)))
                all.append(.alu(op, width, .r9, .immediate(-77)))
            }
        }
        all += [.negate(.bits64, .r1), .negate(.bits32, .r2)]
        all += [.moveSignExtend(.bits64, .r1, .r2, fromBits: 8), .moveSignExtend(.bits64, .r1, .r2, fromBits: 16),
                .moveSignExtend(.bits64, .r1, .r2, fromBits: 32), .moveSignExtend(.bits32, .r1, .r2, fromBits: 8),
                .moveSignExtend(.bits32, .r1, .r2, fromBits: 16)]
        for order in [ByteOrder.toLittle, .toBig, .swap] {
            for bits: UInt8 in [16, 32, 64] { all.append(.byteOrder(order, .r4, bits: bits)) }
        }
        all.append(.loadImmediate64(.r5, 0x1122_3344_5566_7788))
        for size in AccessSize.allCases {
            all.append(.load(size, .r0, base: .r1, offset: -3, signExtend: false))
            if size != .double { all.append(.load(size, .r0, base: .r10, offset: 12, signExtend: true)) }
            all.append(.store(size, base: .r10, offset: -8, value: .immediate(-1)))
            all.append(.store(size, base: .r2, offset: 7, value: .register(.r6)))
        }
        for op in AtomicOperation.allCases {
            all.append(.atomic(op, .bits32, base: .r10, offset: -4, source: .r1))
            all.append(.atomic(op, .bits64, base: .r1, offset: 8, source: .r2))
        }
        all += [.jump(offset: -5, wide: false), .jump(offset: 70_000, wide: true)]
        for condition in JumpCondition.allCases {
            all.append(.branch(condition, .bits64, .r1, .immediate(0x7fff_ffff), offset: 3))
            all.append(.branch(condition, .bits32, .r1, .register(.r2), offset: -3))
        }
        all += [.callHelper(5), .callLocal(offset: 4), .callRegister(.r2), .exit]
        return all
    }()

    @Test(arguments: statements)
    func everyStatementRoundTripsThroughItsEncoding(_ statement: Statement) throws {
        let slots = statement.encoded
        #expect(slots.count == statement.slotCount)
        #expect(try Statement.decode(slots, at: 0) == statement)
        // And through bytes and back.
        let program = Program(slots)
        #expect(try Program(bytes: program.bytes) == program)
        #expect(program.instructions.map { Instruction(word: $0.word) } == program.instructions)
    }

    @Test func anySlotThatDecodesReEncodesToTheSameBits() {
        var rng = SeededRandom(seed: 0x5107)
        var decoded = 0
        for i in 0..<200_000 {
            // Every opcode appears often; fields are random or zero half the time each.
            let opcode = UInt8(truncatingIfNeeded: i)
            func maybe<T: FixedWidthInteger>(_ v: T) -> T { rng.next() & 1 == 0 ? 0 : v }
            let slot = Instruction(opcode: opcode, dst: maybe(UInt8.random(in: 0...15, using: &rng)),
                                   src: maybe(UInt8.random(in: 0...15, using: &rng)),
                                   offset: maybe([1, 8, 16, 32, -1, Int16.random(in: .min ... .max, using: &rng)].randomElement(using: &rng)!),
                                   imm: maybe([16, 32, 64, 1, 0xe1, 0xf1, Int32.random(in: .min ... .max, using: &rng)].randomElement(using: &rng)!))
            let slots = [slot, Instruction(opcode: 0, imm: maybe(Int32(bitPattern: UInt32(truncatingIfNeeded: rng.next()))))]
            guard let statement = try? Statement.decode(slots, at: 0) else { continue }
            decoded += 1
            #expect(statement.encoded == Array(slots.prefix(statement.slotCount)), "\(statement)")
        }
        #expect(decoded > 10_000, "the generator reaches many valid forms")
    }

    static let malformed: [(String, [Instruction], Int, String)] = [
        ("unknown ALU code", [Instruction(opcode: 0xe7)], 0, "unknown ALU operation"),
        ("register 11", [Instruction(opcode: 0xb7, dst: 11)], 0, "r11 does not exist"),
        ("source register in an immediate form", [Instruction(opcode: 0x07, src: 1, imm: 1)], 0, "unused source"),
        ("immediate in a register form", [Instruction(opcode: 0x0f, src: 1, imm: 1)], 0, "unused immediate"),
        ("nonzero offset on add", [Instruction(opcode: 0x07, offset: 1)], 0, "unused offset"),
        ("movsx from 32 bits in a 32-bit move", [Instruction(opcode: 0xbc, src: 1, offset: 32)], 0, "movsx offset"),
        ("byte order of 8 bits", [Instruction(opcode: 0xd4, imm: 8)], 0, "byte-order width"),
        ("lddw without its second slot", [Instruction(opcode: 0x18, imm: 1)], 0, "missing its second slot"),
        ("lddw with a dirty second slot", [Instruction(opcode: 0x18), Instruction(opcode: 0x95)], 1, "second slot"),
        ("lddw of a map", [Instruction(opcode: 0x18, src: 1), Instruction(opcode: 0)], 0, "map"),
        ("legacy packet access", [Instruction(opcode: 0x20)], 0, "legacy packet access"),
        ("sign-extending 64-bit load", [Instruction(opcode: 0x99)], 0, "unknown load"),
        ("atomic byte", [Instruction(opcode: 0xd3)], 0, "unknown store"),
        ("unknown atomic operation", [Instruction(opcode: 0xdb, imm: 0x10)], 0, "unknown atomic"),
        ("call by BTF id", [Instruction(opcode: 0x85, src: 2, imm: 1)], 0, "BTF"),
        ("exit with a register", [Instruction(opcode: 0x95, dst: 1)], 0, "unused destination"),
        ("exit in JMP32", [Instruction(opcode: 0x96)], 0, "unknown jump"),
        ("jump code 0xe", [Instruction(opcode: 0xe5)], 0, "unknown jump"),
    ]

    @Test(arguments: malformed.indices)
    func malformedSlotsAreRefusedWithTheSlotAndReason(_ index: Int) {
        let (name, slots, slot, reason) = Self.malformed[index]
        do {
            _ = try Statement.decode(slots, at: 0)
            Issue.record("\(name) decoded")
        } catch {
            #expect(error.slot == slot, "\(name)")
            #expect(error.reason.contains(reason), "\(name): \(error.reason)")
        }
        // The verifier reports the same slot as a malformed instruction.
        #expect(rejection(Program(slots), .udfSize)?.rule == .malformed)
    }

    @Test func byteStringsThatAreNotProgramsAreRefused() {
        #expect(throws: ProgramFormatError.empty) { try Program(bytes: []) }
        #expect(throws: ProgramFormatError.partialSlot(byteCount: 12)) { try Program(bytes: [UInt8](repeating: 0, count: 12)) }
        let million = [UInt8](repeating: 0, count: 8_000_000)
        #expect(throws: ProgramFormatError.tooLong(slots: 1_000_000)) { try Program(bytes: million) }
        // The verifier turns each into a clean rejection.
        for bytes in [[], [1, 2, 3], million] {
            do {
                _ = try Verifier.verify(bytes: bytes, kind: .udfOwns)
                Issue.record("accepted \(bytes.count) bytes")
            } catch {
                #expect(error.rule == .format)
                #expect(error.description.hasPrefix("rejected at instruction 0: not a program"))
            }
        }
    }
}
