// Programs from a real compiler: every C program in examples/bpf, compiled during the test
// by the toolchain's `clang -target bpf` at -O1 and -O2, loaded from the ELF object,
// verified for its kind, and run on real input (Ethernet frames, exposed-state windows,
// directory and indirect blocks, acl contexts) with the result each input must give.

import BPF
import Foundation
import Testing

/// One input and what the program must return for it.
struct Run {
    var context: [UInt8]
    var result: UInt64
    var clockTicks: UInt64 = 0
    /// For owns UDFs: the (block, type) pairs the output area must start with.
    var owned: [(UInt64, UInt64)] = []
}

struct CorpusProgram: CustomTestStringConvertible, Sendable {
    var file: String
    var section: String
    var kind: ProgramKind
    var runs: @Sendable () -> [Run]
    var testDescription: String { section }
}

// MARK: Inputs

enum Frames {
    static func be16(_ v: Int) -> [UInt8] { [UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }

    static func ethernet(_ type: Int, _ payload: [UInt8]) -> [UInt8] {
        [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1] + be16(type) + payload
    }
    static func vlan(_ id: Int, _ type: Int, _ payload: [UInt8]) -> [UInt8] { ethernet(0x8100, be16(id) + be16(type) + payload) }

    static func ipv4(_ protocolNumber: UInt8, source: UInt32 = 0xc000_0209, fragment: Int = 0, options: Int = 0, _ payload: [UInt8]) -> [UInt8] {
        let headerBytes = 20 + 4 * options
        var header: [UInt8] = [UInt8(0x40 | (headerBytes / 4)), 0] + be16(headerBytes + payload.count) + [0, 1] + be16(fragment)
        header += [64, protocolNumber, 0, 0] + be32(source) + be32(0xc000_0201)
        return header + [UInt8](repeating: 1, count: 4 * options) + payload
    }
    static func ipv6(_ next: UInt8, _ payload: [UInt8]) -> [UInt8] {
        [0x60, 0, 0, 0] + be16(payload.count) + [next, 64] + [UInt8](repeating: 0xfe, count: 32) + payload
    }
    static func udp(_ port: Int, _ payload: [UInt8] = [1, 2, 3, 4]) -> [UInt8] { be16(40000) + be16(port) + be16(8 + payload.count) + [0, 0] + payload }
    static func tcp(_ port: Int, flags: UInt8) -> [UInt8] {
        be16(40000) + be16(port) + [0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]
    }
    static func arp(operation: Int, target: UInt32) -> [UInt8] {
        [0, 1, 8, 0, 6, 4] + be16(operation) + [2, 0, 0, 0, 0, 1] + be32(0xc000_0201) + [0, 0, 0, 0, 0, 0] + be32(target)
    }
}

enum Blocks {
    static let size = Limits.metadataBlockBytes

    static func put64(_ v: UInt64, _ bytes: inout [UInt8], at offset: Int) {
        for i in 0..<8 { bytes[offset + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
    }

    /// A directory block owned by `owner` with `entries` (index, block, type).
    static func directory(owner: UInt64, entries: [(Int, UInt64, UInt32)]) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: size)
        put64(0x3130_5249_444b_4f58, &block, at: 0)
        put64(owner, &block, at: 8)
        for (index, number, type) in entries {
            let at = 64 + 64 * index
            put64(number, &block, at: at)
            put64(UInt64(type), &block, at: at + 8)
            block[at + 12] = 1
            block[at + 13] = 4
        }
        return block
    }

    static func indirect(_ pointers: [(Int, UInt64)]) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: size)
        for (index, number) in pointers { put64(number, &block, at: 8 * index) }
        return block
    }

    /// An acl context: before, after, the change, and a credential naming `components`.
    static func acl(before: [UInt8], after: [UInt8], components: [UInt64]) -> [UInt8] {
        var context = before + after + [UInt8](repeating: 0, count: AclContext.bytes - 2 * size)
        put64(UInt64(components.count), &context, at: AclContext.credentialOffset + 8)
        for (i, c) in components.enumerated() { put64(c, &context, at: AclContext.credentialOffset + 16 + 8 * i) }
        return context
    }

    static func window(_ words: [(Int, UInt64)] = [], bytes: [(Int, UInt8)] = [], length: Int = 4096) -> [UInt8] {
        var window = [UInt8](repeating: 0, count: length)
        for (at, v) in words { put64(v, &window, at: at) }
        for (at, v) in bytes { window[at] = v }
        return window
    }
}

/// What `filter/many_fields` computes, written again in Swift.
func manyFieldsReference(_ f: [UInt8]) -> UInt64 {
    func be16(_ i: Int) -> UInt64 { UInt64(f[i]) << 8 | UInt64(f[i + 1]) }
    func be32(_ i: Int) -> UInt64 { be16(i) << 16 | be16(i + 2) }
    func mix(_ a: UInt64, _ b: UInt64) -> UInt64 { (a &* 31) ^ b }
    guard f.count >= 34 else { return 0 }
    var x = mix(be16(12), UInt64(f[14]))
    x = mix(x, UInt64(f[22]))
    x = mix(x, UInt64(f[23]))
    x = mix(x, be16(16)) &+ UInt64(f[f.count - 1])
    x = mix(x, be16(18))
    x = mix(x, be32(26))
    x = mix(x, be32(30))
    return x & 1 == 1 ? UInt64(f.count) : 0
}

// MARK: The corpus

enum Corpus {
    static func accepted(_ frame: [UInt8]) -> Run { Run(context: frame, result: UInt64(frame.count)) }
    static func rejected(_ frame: [UInt8]) -> Run { Run(context: frame, result: 0) }

    static let programs: [CorpusProgram] = {
        typealias F = Frames
        typealias B = Blocks
        let filter = ProgramKind.packetFilter, predicate = ProgramKind.wakeupPredicate
        @Sendable func dirBefore() -> [UInt8] { B.directory(owner: 7, entries: [(5, 105, 2)]) }
        return [
            CorpusProgram(file: "packet_filters.c", section: "filter/ipv4", kind: filter) {
                [accepted(F.ethernet(0x0800, F.ipv4(17, F.udp(53)))), rejected(F.ethernet(0x0806, F.arp(operation: 1, target: 1))),
                 rejected([UInt8](repeating: 8, count: 13)), rejected([])]
            },
            CorpusProgram(file: "packet_filters.c", section: "filter/arp_who_has", kind: filter) {
                [accepted(F.ethernet(0x0806, F.arp(operation: 1, target: 0xc000_0207))),
                 rejected(F.ethernet(0x0806, F.arp(operation: 1, target: 0xc000_0208))),
                 rejected(F.ethernet(0x0806, F.arp(operation: 2, target: 0xc000_0207))),
                 rejected(Array(F.ethernet(0x0806, F.arp(operation: 1, target: 0xc000_0207)).dropLast()))]
            },
            CorpusProgram(file: "packet_filters.c", section: "filter/dns", kind: filter) {
                [accepted(F.ethernet(0x0800, F.ipv4(17, F.udp(53)))), accepted(F.ethernet(0x0800, F.ipv4(17, options: 3, F.udp(53)))),
                 accepted(F.ethernet(0x0800, F.ipv4(17, options: 10, F.udp(53)))),
                 rejected(F.ethernet(0x0800, F.ipv4(17, F.udp(54)))), rejected(F.ethernet(0x0800, F.ipv4(6, F.tcp(53, flags: 2)))),
                 rejected(Array(F.ethernet(0x0800, F.ipv4(17, options: 10, F.udp(53, []))).prefix(14 + 60 + 7)))]
            },
            CorpusProgram(file: "packet_filters.c", section: "filter/http_syn", kind: filter) {
                [accepted(F.ethernet(0x0800, F.ipv4(6, F.tcp(80, flags: 0x02)))), accepted(F.ethernet(0x0800, F.ipv4(6, options: 2, F.tcp(80, flags: 0x02)))),
                 rejected(F.ethernet(0x0800, F.ipv4(6, F.tcp(80, flags: 0x12)))), rejected(F.ethernet(0x0800, F.ipv4(6, F.tcp(81, flags: 0x02))))]
            },
            CorpusProgram(file: "packet_filters.c", section: "filter/ipv6_mdns", kind: filter) {
                [accepted(F.ethernet(0x86dd, F.ipv6(17, F.udp(5353)))), rejected(F.ethernet(0x86dd, F.ipv6(17, F.udp(5354)))),
                 rejected(F.ethernet(0x0800, F.ipv4(17, F.udp(5353))))]
            },
            CorpusProgram(file: "packet_filters.c", section: "filter/ipv6_https_headers", kind: filter) {
                [Run(context: F.ethernet(0x86dd, F.ipv6(6, F.tcp(443, flags: 0x18) + [UInt8](repeating: 7, count: 500))), result: 74),
                 rejected(F.ethernet(0x86dd, F.ipv6(6, F.tcp(444, flags: 0x18))))]
            },
            CorpusProgram(file: "packet_filters.c", section: "filter/vlan42_ipv4", kind: filter) {
                [accepted(F.vlan(42, 0x0800, F.ipv4(17, F.udp(1)))), accepted(F.vlan(0x2000 | 42, 0x0800, F.ipv4(17, F.udp(1)))),
                 rejected(F.vlan(43, 0x0800, F.ipv4(17, F.udp(1)))), rejected(F.vlan(42, 0x86dd, F.ipv6(17, F.udp(1))))]
            },
            CorpusProgram(file: "packet_filters.c", section: "filter/whole_from_testnet", kind: filter) {
                [accepted(F.ethernet(0x0800, F.ipv4(17, F.udp(1)))), accepted(F.ethernet(0x0800, F.ipv4(17, fragment: 0x4000, F.udp(1)))),
                 rejected(F.ethernet(0x0800, F.ipv4(17, fragment: 0x2000, F.udp(1)))), rejected(F.ethernet(0x0800, F.ipv4(17, fragment: 0x0010, F.udp(1)))),
                 rejected(F.ethernet(0x0800, F.ipv4(17, source: 0xc633_6401, F.udp(1))))]
            },
            CorpusProgram(file: "packet_filters.c", section: "filter/udp_magic_sum", kind: filter) {
                // "XOK!" sums to 0x58+0x4f+0x4b+0x21 = 0x113; 0xed more makes 0x200.
                let magic: [UInt8] = [0x58, 0x4f, 0x4b, 0x21]
                return [accepted(F.ethernet(0x0800, F.ipv4(17, F.udp(9, magic + [0xed])))),
                        rejected(F.ethernet(0x0800, F.ipv4(17, F.udp(9, magic + [0xee])))),
                        rejected(F.ethernet(0x0800, F.ipv4(17, F.udp(9, [0x58, 0x4f, 0x4b, 0x22, 0xec])))),
                        // Bytes from 1500 on are not summed: zeros up to there, then ones.
                        accepted(F.ethernet(0x0800, F.ipv4(17, F.udp(9, magic + [0xed] + [UInt8](repeating: 0, count: 1453) + [UInt8](repeating: 1, count: 500))))),
                        rejected(F.ethernet(0x0800, F.ipv4(17, F.udp(9, magic + [0xed] + [UInt8](repeating: 0, count: 1452) + [UInt8](repeating: 1, count: 500)))))]
            },
            CorpusProgram(file: "spills.c", section: "filter/many_fields", kind: filter) {
                (0..<8).map { i in
                    let frame = F.ethernet(0x0800, F.ipv4(17, source: 0xc000_0200 + UInt32(i), F.udp(i, [UInt8(i), 3, 5])))
                    return Run(context: frame, result: manyFieldsReference(frame))
                } + [rejected([UInt8](repeating: 1, count: 33))]
            },
            CorpusProgram(file: "predicates.c", section: "predicate/message_waiting", kind: predicate) {
                [Run(context: B.window(), result: 0), Run(context: B.window([(64, 5)]), result: 1),
                 Run(context: B.window(length: 71), result: 1), Run(context: B.window(length: 72), result: 0)]
            },
            CorpusProgram(file: "predicates.c", section: "predicate/counter_reached", kind: predicate) {
                [Run(context: B.window([(0, 3), (8, 5)]), result: 0), Run(context: B.window([(0, 5), (8, 5)]), result: 1),
                 Run(context: B.window([(0, .max), (8, 5)]), result: 1)]
            },
            CorpusProgram(file: "predicates.c", section: "predicate/deadline", kind: predicate) {
                [Run(context: B.window([(16, 150)]), result: 0, clockTicks: 100), Run(context: B.window([(16, 150)]), result: 1, clockTicks: 150)]
            },
            CorpusProgram(file: "predicates.c", section: "predicate/any_block_valid", kind: predicate) {
                [Run(context: B.window(bytes: (128..<136).map { ($0, 1) }), result: 0),
                 Run(context: B.window(bytes: (128..<136).map { ($0, $0 == 133 ? 2 : 3) }), result: 1),
                 Run(context: B.window(bytes: [(136, 2)]), result: 0), Run(context: B.window(length: 135), result: 1)]
            },
            CorpusProgram(file: "directory_udfs.c", section: "udf/dir_owns", kind: .udfOwns) {
                [Run(context: B.directory(owner: 7, entries: [(0, 100, 1), (5, 105, 2), (62, 162, 3)]), result: 3,
                     owned: [(100, 1), (105, 2), (162, 3)]),
                 Run(context: B.directory(owner: 7, entries: []), result: 0),
                 Run(context: B.directory(owner: 7, entries: (0..<63).map { ($0, UInt64(1000 + $0), 4) }), result: 63,
                     owned: (0..<63).map { (UInt64(1000 + $0), 4) })]
            },
            CorpusProgram(file: "directory_udfs.c", section: "udf/dir_size", kind: .udfSize) {
                [Run(context: B.directory(owner: 7, entries: [(0, 100, 1), (5, 105, 2), (62, 162, 3)]), result: 192),
                 Run(context: B.directory(owner: 7, entries: []), result: 0)]
            },
            CorpusProgram(file: "directory_udfs.c", section: "udf/dir_acl", kind: .udfAcl) {
                let before = dirBefore(), after = B.directory(owner: 7, entries: [(5, 105, 2), (6, 106, 2)])
                return [Run(context: B.acl(before: before, after: after, components: [7]), result: 1),
                        Run(context: B.acl(before: before, after: after, components: [8]), result: 0),
                        Run(context: B.acl(before: before, after: after, components: []), result: 0),
                        Run(context: B.acl(before: before, after: B.directory(owner: 8, entries: []), components: [7]), result: 0)]
            },
            CorpusProgram(file: "directory_udfs.c", section: "udf/dir_acl_append_only", kind: .udfAcl) {
                let before = dirBefore()
                return [Run(context: B.acl(before: before, after: B.directory(owner: 7, entries: [(5, 105, 2), (6, 106, 2)]), components: []), result: 1),
                        Run(context: B.acl(before: before, after: B.directory(owner: 7, entries: [(5, 999, 2)]), components: []), result: 0),
                        Run(context: B.acl(before: before, after: B.directory(owner: 7, entries: []), components: []), result: 0),
                        Run(context: B.acl(before: before, after: before, components: []), result: 1)]
            },
            CorpusProgram(file: "indirect_udfs.c", section: "udf/indirect_owns", kind: .udfOwns) {
                [Run(context: B.indirect([(0, 10), (100, 20), (511, 30)]), result: 3, owned: [(10, 2), (20, 2), (30, 2)]),
                 Run(context: B.indirect([]), result: 0),
                 Run(context: B.indirect((0..<512).map { ($0, UInt64($0 + 1)) }), result: 512, owned: (0..<512).map { (UInt64($0 + 1), 2) })]
            },
            CorpusProgram(file: "indirect_udfs.c", section: "udf/indirect_size", kind: .udfSize) {
                [Run(context: B.indirect([(0, 10), (511, 30)]), result: 512 * 4096), Run(context: B.indirect([(3, 1)]), result: 4 * 4096),
                 Run(context: B.indirect([]), result: 0)]
            },
            CorpusProgram(file: "indirect_udfs.c", section: "udf/header_size", kind: .udfSize) {
                var block = [UInt8](repeating: 0xee, count: Blocks.size)
                block.replaceSubrange(16..<22, with: [0, 0, 1, 2, 3, 4])
                var largest = block
                largest.replaceSubrange(16..<22, with: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
                return [Run(context: block, result: 0x0102_0304), Run(context: largest, result: 0xffff_ffff_ffff)]
            },
        ]
    }()

    /// The folder of C programs.
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("examples/bpf")

    /// The compiler: `XOK_CLANG`, else the Swift toolchain's clang on the path.
    static func compile(_ file: String, optimization: String) throws -> [UInt8] {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("xok-\(UUID().uuidString).o")
        defer { try? FileManager.default.removeItem(at: output) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [ProcessInfo.processInfo.environment["XOK_CLANG"] ?? "clang", "-\(optimization)", "-target", "bpf",
                             "-c", folder.appendingPathComponent(file).path, "-o", output.path]
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "clang failed on \(file): \(message)")
        return [UInt8](try Data(contentsOf: output))
    }
}

@Suite struct CompiledCorpus {
    @Test func theCorpusHasTwentyProgramsOrMoreCoveringEveryKind() throws {
        #expect(Corpus.programs.count >= 20)
        let kinds = Set(Corpus.programs.map(\.kind.name))
        #expect(kinds == ["packetFilter", "wakeupPredicate", "udfOwns", "udfSize", "udfAcl"])
        // Every program section in the folder has a row, so none is left untested.
        let files = try FileManager.default.contentsOfDirectory(atPath: Corpus.folder.path).filter { $0.hasSuffix(".c") }
        var sections: Set<String> = []
        for file in files {
            sections.formUnion(try ELFObject(bytes: try Corpus.compile(file, optimization: "O2")).programSections.filter { $0 != ".text" })
        }
        #expect(sections == Set(Corpus.programs.map(\.section)))
    }

    @Test(arguments: Corpus.programs, ["O1", "O2"])
    func compiledProgramIsAcceptedAndGivesTheExpectedResults(_ entry: CorpusProgram, _ optimization: String) throws {
        let object = try ELFObject(bytes: try Corpus.compile(entry.file, optimization: optimization))
        let verified = try Verifier.verify(try object.program(section: entry.section), kind: entry.kind)
        let interpreter = Interpreter(verified)
        for (i, run) in entry.runs().enumerated() {
            var context = run.context
            var output = [UInt8](repeating: 0, count: entry.kind.outputBytes)
            let result = try context.withUnsafeMutableBytes { c in
                try output.withUnsafeMutableBytes { o in
                    try interpreter.run(context: c, output: o, clockTicks: run.clockTicks, mode: AuditedExecution.self)
                }
            }
            #expect(result == run.result, "input \(i)")
            for (n, (block, type)) in run.owned.enumerated() {
                let at = n * Limits.ownsEntryBytes
                let got = (0..<8).reduce((UInt64(0), UInt64(0))) { sum, b in
                    (sum.0 | UInt64(output[at + b]) << (8 * UInt64(b)), sum.1 | UInt64(output[at + 8 + b]) << (8 * UInt64(b)))
                }
                #expect(got == (block, type), "input \(i), owned entry \(n)")
            }
        }
    }
}
