// `xok bench …`: measurements, side by side with the floor on the same machine in one run.

import ArgumentParser
import BPF
import Foundation
import XokTools

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks.", subcommands: [BPFBench.self])

    struct BPFBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bpf",
            abstract: "Nanoseconds per executed instruction of the BPF interpreter, beside an unchecked switch loop.")

        @Flag(help: "Print one JSON object instead of a table.")
        var json = false

        @Option(help: "Measurements per program; the best is kept.")
        var repeats = 5

        func run() throws {
            #if DEBUG
            FileHandle.standardError.write(Data("warning: a debug build; measure with `swift run -c release xok bench bpf`\n".utf8))
            #endif
            let results = try BPFBenchmark.run(repeats: max(1, repeats))
            if json {
                let rows = results.map { r -> [String: Any] in
                    var row: [String: Any] = ["name": r.name, "instructions": r.instructions, "nsPerInstruction": r.nsPerInstruction]
                    if let f = r.floorNsPerInstruction { row["floorNsPerInstruction"] = f }
                    if let t = r.targetNs { row["targetNsPerInstruction"] = t }
                    return row
                }
                let data = try JSONSerialization.data(withJSONObject: ["results": rows], options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            print("program  instructions  ns/insn  floor ns/insn  ratio  target  ")
            for r in results {
                let floor = r.floorNsPerInstruction.map { String(format: "%13.2f", $0) } ?? String(repeating: " ", count: 12) + "-"
                let ratio = r.floorNsPerInstruction.map { String(format: "%5.2f", r.nsPerInstruction / $0) } ?? "    -"
                let target = r.targetNs.map { String(format: "≤ %.1f", $0) + (r.nsPerInstruction <= $0 ? " met" : " MISSED") } ?? "-"
                print(String(format: "%-7@  %12d  %7.2f  ", r.name, r.instructions, r.nsPerInstruction) + floor + "  " + ratio + "  " + target)
                print("         " + r.summary)
            }
        }
    }
}
