// Programs from a real compiler: an ELF relocatable object as `clang -O2 -target bpf -c`
// writes it. A section's name picks the program; its calls into `.text` are resolved the
// way libbpf resolves them (the `.text` functions appended after the program, each call's
// offset rewritten), and `lddw` of an absolute symbol takes the symbol's value. Everything
// else a loader might do — maps, global data, externs, BTF relocations — is refused with
// the reason, never guessed at. The bytes are untrusted: every offset and size is checked.

/// Why an object could not be turned into a program.
public struct ELFError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// An ELF64 little-endian relocatable object for the BPF machine.
public struct ELFObject: Sendable {
    struct Section {
        var name: String
        var type: UInt32
        var flags: UInt64
        var offset: Int
        var size: Int
        var link: Int
        var info: Int
    }

    struct Symbol {
        var name: String
        var section: Int
        var value: UInt64
    }

    struct Relocation {
        /// Byte offset in the section it applies to.
        var offset: Int
        var type: UInt32
        var symbol: Int
    }

    private let bytes: [UInt8]
    private let sections: [Section]
    private let symbols: [Symbol]

    // ELF constants (the System V ABI; EM_BPF from the Linux headers).
    private static let machineBPF: UInt16 = 247
    private static let typeRelocatable: UInt16 = 1
    private static let sectionProgramBits: UInt32 = 1, sectionSymbols: UInt32 = 2
    private static let sectionRela: UInt32 = 4, sectionRel: UInt32 = 9
    private static let flagExecutable: UInt64 = 0x4
    private static let symbolIndexAbsolute = 0xfff1, symbolIndexUndefined = 0
    /// `R_BPF_64_64`: the 64-bit immediate of `lddw`.
    private static let relocationLoad64: UInt32 = 1
    /// `R_BPF_64_32`: the immediate of a call.
    private static let relocationCall: UInt32 = 10
    /// Sections with at most this many headers, symbols or relocations: far above what a
    /// compiled program has, and a bound on the work a hostile header can ask for.
    static let entriesMax = 1 << 16

    /// Whether `bytes` begin like an ELF file (so a caller can tell it from text).
    public static func isELF(_ bytes: [UInt8]) -> Bool { bytes.starts(with: [0x7f, 0x45, 0x4c, 0x46]) }

    /// Parses the object's headers, sections and symbols.
    /// - Throws: `ELFError` when the bytes are not a 64-bit little-endian relocatable BPF
    ///   object or any header points outside the file.
    public init(bytes: [UInt8]) throws(ELFError) {
        self.bytes = bytes
        guard Self.isELF(bytes) else { throw ELFError("not an ELF file") }
        guard bytes.count >= 64 else { throw ELFError("the ELF header is cut short") }
        guard bytes[4] == 2, bytes[5] == 1 else { throw ELFError("not a 64-bit little-endian ELF object") }
        let reader = Reader(bytes: bytes)
        guard try reader.u16(18) == Self.machineBPF else {
            throw ELFError("built for machine \(try reader.u16(18)), not BPF (247): compile with clang -target bpf")
        }
        guard try reader.u16(16) == Self.typeRelocatable else { throw ELFError("not a relocatable object (compile with -c)") }
        let headerOffset = try reader.offset(0x28)
        let headerSize = Int(try reader.u16(0x3a)), count = Int(try reader.u16(0x3c)), namesIndex = Int(try reader.u16(0x3e))
        guard headerSize == 64, count > 0, count <= Self.entriesMax else { throw ELFError("section headers of an unexpected size or number") }
        guard namesIndex < count else { throw ELFError("the section-name table is not one of the sections") }
        var raw: [(name: Int, section: Section)] = []
        for i in 0..<count {
            let at = try reader.index(headerOffset, plus: i * 64, length: 64)
            let section = Section(name: "", type: try reader.u32(at + 4), flags: try reader.u64(at + 8),
                                  offset: try reader.offset(at + 24), size: try reader.offset(at + 32),
                                  link: Int(try reader.u32(at + 40)), info: Int(try reader.u32(at + 44)))
            if section.type != 8 /* NOBITS */ { _ = try reader.index(section.offset, plus: 0, length: section.size) }
            raw.append((Int(try reader.u32(at)), section))
        }
        let names = raw[namesIndex].section
        var sections: [Section] = []
        for (name, section) in raw {
            var named = section
            named.name = try reader.string(in: names, at: name)
            sections.append(named)
        }
        self.sections = sections

        var symbols: [Symbol] = []
        if let table = sections.first(where: { $0.type == Self.sectionSymbols }) {
            guard table.link < sections.count else { throw ELFError("the symbol table's names are not one of the sections") }
            let strings = sections[table.link]
            let entries = table.size / 24
            guard entries <= Self.entriesMax else { throw ELFError("too many symbols (\(entries))") }
            for i in 0..<entries {
                let at = table.offset + i * 24
                symbols.append(Symbol(name: try reader.string(in: strings, at: Int(try reader.u32(at))),
                                      section: Int(try reader.u16(at + 6)), value: try reader.u64(at + 8)))
            }
        }
        self.symbols = symbols
    }

    /// The names of the sections that hold code, in file order.
    public var programSections: [String] {
        sections.filter(isCode).map { $0.name }
    }

    private func isCode(_ section: Section) -> Bool {
        section.type == Self.sectionProgramBits && section.flags & Self.flagExecutable != 0 && section.size > 0
    }

    /// The program in `section`, or the object's only program when `section` is nil (a
    /// lone code section, or the one besides `.text`).
    /// - Throws: `ELFError` naming the section or instruction and what is not supported.
    public func program(section name: String? = nil) throws(ELFError) -> Program {
        let code = sections.indices.filter { isCode(sections[$0]) }
        let chosen: Int
        if let name {
            guard let index = code.first(where: { sections[$0].name == name }) else {
                throw ELFError("no code section '\(name)'; the object has: \(programSections.joined(separator: ", "))")
            }
            chosen = index
        } else {
            let candidates = code.count == 1 ? code : code.filter { sections[$0].name != ".text" }
            guard candidates.count == 1 else {
                throw ELFError(code.isEmpty ? "the object holds no code"
                    : "the object holds several programs; name one with --section: \(programSections.joined(separator: ", "))")
            }
            chosen = candidates[0]
        }

        var instructions = try decode(sections[chosen])
        // Where each section whose code makes up the program begins in it.
        var baseOf: [Int: Int] = [chosen: 0]
        var pending = [chosen]
        while let section = pending.popLast() {
            let base = baseOf[section, default: 0]
            for relocation in try relocations(of: section) {
                let at = base + relocation.offset / 8
                switch relocation.type {
                case 0: continue
                case Self.relocationCall:
                    guard instructions[at].opcode == 0x85, instructions[at].src == 1 else {
                        throw ELFError("instruction \(at): a call relocation on an instruction that is not a local call")
                    }
                    let symbol = try self.symbol(relocation.symbol)
                    let home = symbol.section
                    guard home == chosen || (home < sections.count && sections[home].name == ".text" && isCode(sections[home])) else {
                        throw ELFError("instruction \(at) calls '\(symbol.name)' in another program's section; only .text functions can be shared")
                    }
                    let targetBase: Int
                    if let known = baseOf[home] {
                        targetBase = known
                    } else {
                        // libbpf appends the `.text` functions a program calls after it.
                        targetBase = instructions.count
                        instructions += try decode(sections[home])
                        baseOf[home] = targetBase
                        pending.append(home)
                    }
                    let slot = Int64(bitPattern: symbol.value / 8) + Int64(instructions[at].imm) + 1
                    let end = Int64(targetBase) + Int64(sections[home].size / 8)
                    guard symbol.value % 8 == 0, slot >= 0, Int64(targetBase) + slot < end else {
                        throw ELFError("instruction \(at) calls outside '\(sections[home].name)'")
                    }
                    instructions[at].imm = Int32(Int64(targetBase) + slot - Int64(at) - 1)
                case Self.relocationLoad64:
                    guard instructions[at].opcode == 0x18, at + 1 < instructions.count else {
                        throw ELFError("instruction \(at): a 64-bit relocation on an instruction that is not lddw")
                    }
                    let symbol = try self.symbol(relocation.symbol)
                    switch symbol.section {
                    case Self.symbolIndexAbsolute:
                        let addend = UInt64(UInt32(bitPattern: instructions[at].imm)) | UInt64(UInt32(bitPattern: instructions[at + 1].imm)) << 32
                        let value = symbol.value &+ addend
                        instructions[at].imm = Int32(bitPattern: UInt32(truncatingIfNeeded: value))
                        instructions[at + 1].imm = Int32(bitPattern: UInt32(truncatingIfNeeded: value >> 32))
                    case Self.symbolIndexUndefined:
                        throw ELFError("instruction \(at) loads the address of '\(symbol.name)', which the object does not define: maps and externs are not supported")
                    default:
                        let home = symbol.section < sections.count ? sections[symbol.section].name : "section \(symbol.section)"
                        let what = symbol.name.isEmpty || symbol.name == home ? "data" : "'\(symbol.name)'"
                        throw ELFError("instruction \(at) loads the address of \(what) in \(home): global data and maps are not supported; keep constants in code (switch, or values computed in registers)")
                    }
                default:
                    throw ELFError("instruction \(at): relocation type \(relocation.type) is not supported")
                }
            }
        }
        return Program(instructions)
    }

    private func decode(_ section: Section) throws(ELFError) -> [Instruction] {
        guard section.size % 8 == 0 else { throw ELFError("section '\(section.name)' is not a whole number of instructions") }
        guard section.size / 8 <= Limits.programSlotsMax else {
            throw ELFError("section '\(section.name)' has \(section.size / 8) instructions; at most \(Limits.programSlotsMax) are allowed")
        }
        var instructions: [Instruction] = []
        var at = section.offset
        while at < section.offset + section.size {
            instructions.append(Instruction(slot: (bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3],
                                                   bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7])))
            at += 8
        }
        return instructions
    }

    /// The relocations that apply to section `index`.
    private func relocations(of index: Int) throws(ELFError) -> [Relocation] {
        let reader = Reader(bytes: bytes)
        var result: [Relocation] = []
        for table in sections where table.info == index && (table.type == Self.sectionRel || table.type == Self.sectionRela) {
            guard table.type == Self.sectionRel else { throw ELFError("section '\(table.name)': RELA relocations are not used for BPF") }
            let entries = table.size / 16
            guard entries <= Self.entriesMax else { throw ELFError("too many relocations in '\(table.name)'") }
            for i in 0..<entries {
                let at = table.offset + i * 16
                let offset = try reader.offset(at), info = try reader.u64(at + 8)
                guard offset % 8 == 0, offset < sections[index].size else {
                    throw ELFError("a relocation in '\(table.name)' points outside the code (byte \(offset))")
                }
                result.append(Relocation(offset: offset, type: UInt32(truncatingIfNeeded: info), symbol: Int(info >> 32)))
            }
        }
        return result
    }

    private func symbol(_ index: Int) throws(ELFError) -> Symbol {
        guard index > 0, index < symbols.count else { throw ELFError("a relocation names symbol \(index), which does not exist") }
        return symbols[index]
    }

    /// Little-endian fields of the file, each checked to lie inside it.
    private struct Reader {
        let bytes: [UInt8]

        func index(_ base: Int, plus offset: Int, length: Int) throws(ELFError) -> Int {
            let (start, o1) = base.addingReportingOverflow(offset)
            let (end, o2) = start.addingReportingOverflow(length)
            guard !o1, !o2, start >= 0, length >= 0, end <= bytes.count else { throw ELFError("a header points outside the file") }
            return start
        }

        func value(_ at: Int, _ width: Int) throws(ELFError) -> UInt64 {
            let start = try index(at, plus: 0, length: width)
            var v: UInt64 = 0
            for i in (0..<width).reversed() { v = v << 8 | UInt64(bytes[start + i]) }
            return v
        }

        func u16(_ at: Int) throws(ELFError) -> UInt16 { UInt16(try value(at, 2)) }
        func u32(_ at: Int) throws(ELFError) -> UInt32 { UInt32(try value(at, 4)) }
        func u64(_ at: Int) throws(ELFError) -> UInt64 { try value(at, 8) }

        /// A 64-bit file offset or size, which must fit the file.
        func offset(_ at: Int) throws(ELFError) -> Int {
            let v = try u64(at)
            guard v <= UInt64(bytes.count) else { throw ELFError("a header points outside the file") }
            return Int(v)
        }

        /// The NUL-terminated name at `offset` in a string table section.
        func string(in table: Section, at offset: Int) throws(ELFError) -> String {
            guard offset < table.size else { throw ELFError("a name lies outside its string table") }
            // The table must lie in the file whatever its header says it is (a NOBITS
            // section's extent is not checked when it is parsed).
            let start = try index(table.offset, plus: offset, length: 0), end = try index(table.offset, plus: table.size, length: 0)
            var stop = start
            while stop < end && bytes[stop] != 0 { stop += 1 }
            return String(decoding: bytes[start..<stop], as: UTF8.self)
        }
    }
}
