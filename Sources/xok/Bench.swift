// `xok bench …`: measurements, side by side with the floor on the same machine in one run.

import ArgumentParser
import BPF
import Foundation
import XokTools

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks.", subcommands: [BPFBench.self, XNBench.self, CallsBench.self, IPCBench.self, FSBench.self])

    struct FSBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "fs",
            abstract: "The paper's I/O-intensive benchmark: ExOS on C-FFS against GNU coreutils, tar and diff on this machine's file system.",
            discussion: """
                Eight steps on a real tree, each run on both sides in the same run: copy a tar of the tree in, \
                extract it, cp -r, diff -r, cksum every file, rm -r the copy, tar it again, rm -r everything. \
                Steps that write end with their data durable on both sides. The image and the host's copy live in \
                a new directory under --work (the current directory unless given), removed afterwards. Before each \
                round the host's data is written out and, as root, its caches dropped, so that Linux starts every \
                round in the same state.
                """)

        @Option(help: "The tree to use.")
        var tree = "/usr/include"

        @Option(help: "Where the image and the host's copy go (the same disk for both).")
        var work = "."

        @Option(help: "Also draw the table as a bar chart in this SVG file.")
        var svg: String?

        @Option(help: "Rounds of the eight steps, each on a fresh image and directory; each figure is the median of the rounds'.")
        var rounds = 1

        @Flag(help: "Also run ExOS's steps in this process against a daemon (xok daemon) on an image of its own, and compare.")
        var xokd = false

        func validate() throws {
            guard (1...99).contains(rounds) else { throw ValidationError("--rounds takes 1 to 99") }
        }

        func run() throws {
            #if DEBUG
            FileHandle.standardError.write(Data("warning: a debug build; measure with `swift run -c release xok bench fs`\n".utf8))
            #endif
            let terminal = isatty(2) == 1
            let (steps, settled) = try FSBenchmark.run(tree: tree, work: work, rounds: rounds, xokd: xokd ? IPCBenchmark.executablePath() : nil) { line in
                if terminal { FileHandle.standardError.write(Data(("\r\u{1b}[K" + line).utf8)) }
            }
            if terminal { FileHandle.standardError.write(Data("\r\u{1b}[K".utf8)) }
            print("xok bench fs: \(tree)" + (rounds > 1 ? ", medians of \(rounds) rounds" : ""))
            print(FSBenchmark.table(steps))
            if !settled {
                print("""
                    note: the host's caches could not be dropped before each round (that needs root): after recent \
                    deletions, ext4 without a journal makes Linux's tar -x and cp -r several times slower than it can be
                    """)
            }
            if let svg {
                try FSBenchmark.svg(steps).write(toFile: svg, atomically: true, encoding: .utf8)
                print("chart: \(svg)")
            }
        }
    }

    struct IPCBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ipc",
            abstract: "A null kernel call from another process over a call channel, beside a polled and a futex ping-pong between two processes.",
            discussion: """
                Each figure is nanoseconds per round trip, the best of ten batches, timed by a child process this one starts; with two or more \
                processors the two are pinned to different ones. Target: the call at most twice the polled floor.
                """)

        @Option(help: "Round trips in each measurement.")
        var calls = 200_000

        @Option(help: .hidden)
        var child: IPCBenchmark.Mode?

        func validate() throws {
            guard (1...100_000_000).contains(calls) else { throw ValidationError("--calls takes 1 to 100000000") }
        }

        func run() throws {
            if let child {
                try IPCBenchmark.child(child, calls: calls)
                return
            }
            #if DEBUG
            FileHandle.standardError.write(Data("warning: a debug build; measure with `swift run -c release xok bench ipc`\n".utf8))
            #endif
            let results = try IPCBenchmark.run(calls: calls, executable: IPCBenchmark.executablePath())
            let polled = results.first { $0.mode == .polled }?.nanoseconds ?? .nan
            print("round trip between two processes      ns    × polled")
            let names: [IPCBenchmark.Mode: String] = [.polled: "polled shared memory (floor)", .futex: "futex wake and wait",
                                                     .call: "null call over a call channel"]
            for r in results {
                print((names[r.mode] ?? r.mode.rawValue).padding(toLength: 34, withPad: " ", startingAt: 0)
                      + String(format: "  %8.1f  %8.2f", r.nanoseconds, r.nanoseconds / polled))
            }
            if let call = results.first(where: { $0.mode == .call }) {
                let ratio = call.nanoseconds / polled
                print(String(format: "target: call ≤ 2.00 × polled (%.2f, %@)", ratio, ratio <= 2 ? "met" : "missed"))
            }
        }
    }

    struct CallsBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "calls",
            abstract: "Nanoseconds per kernel call through LocalPort (a null call, a one-block metadata change), beside a direct Swift function call.")

        @Option(help: "Calls per timing; the best of the repeats is kept.")
        var calls = 200_000

        @Option(help: "Timings of each.")
        var repeats = 5

        func run() throws {
            #if DEBUG
            FileHandle.standardError.write(Data("warning: a debug build; measure with `swift run -c release xok bench calls`\n".utf8))
            #endif
            let image = NSTemporaryDirectory() + "xok-bench-calls-\(getpid()).img"
            let results = try CallBenchmark.run(calls: max(1000, calls), repeats: repeats, image: image)
            print("call                        ns/call   direct call ns   ratio")
            for r in results {
                print(r.name.padding(toLength: 26, withPad: " ", startingAt: 0)
                      + String(format: "  %8.1f  %15.2f  %6.0f×", r.nanoseconds, r.floor, r.nanoseconds / r.floor))
            }
        }
    }

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

    struct XNBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "xn",
            abstract: "XN's checks end to end: a metadata-heavy workload on an image file with UDF checks on and off.")

        @Flag(help: "Print one JSON object instead of a table.")
        var json = false

        @Option(help: "Blocks the workload allocates, writes and frees.")
        var blocks = 100_000

        @Option(help: "The image file to use (created, then removed).")
        var image = NSTemporaryDirectory() + "xok-bench-xn.img"

        @Option(help: "Rounds, each running both settings back to back; the ratio is the median of the rounds'.")
        var repeats = 5

        func run() throws {
            #if DEBUG
            FileHandle.standardError.write(Data("warning: a debug build; measure with `swift run -c release xok bench xn`\n".utf8))
            #endif
            defer { try? FileManager.default.removeItem(atPath: image) }
            let outcome = try XNBenchmark.run(blocks: max(XNBenchmark.childrenPerDirectory, blocks), path: image, repeats: repeats)
            let (on, off, ratio) = (outcome.on, outcome.off, outcome.ratio)
            if json {
                func row(_ r: XNBenchmark.Run) -> [String: Any] {
                    ["checks": r.checks, "seconds": r.seconds, "cpuSeconds": r.cpuSeconds, "changes": r.changes,
                     "microsecondsPerChange": r.microsecondsPerChange]
                }
                let object: [String: Any] = ["checksOn": row(on), "checksOff": row(off), "ratio": ratio, "roundRatios": outcome.ratios,
                                             "udfMicrosecondsPerChange": (on.cpuSeconds - off.cpuSeconds) * 1e6 / Double(on.changes)]
                print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
                return
            }
            print("run         seconds  user cpu s   changes   µs/change")
            for r in [on, off] {
                print(String(format: "checks %@  %8.3f  %11.3f  %8d  %10.2f", r.checks ? "on " : "off", r.seconds, r.cpuSeconds, r.changes, r.microsecondsPerChange))
            }
            print("rounds (on/off): " + outcome.ratios.map { String(format: "%.3f", $0) }.joined(separator: " "))
            print(String(format: "ratio on/off (median of rounds): %.3f (target ≤ 1.10)   UDF checks: %.2f µs of user CPU per change", ratio,
                         (on.cpuSeconds - off.cpuSeconds) * 1e6 / Double(on.changes)))
        }
    }
}

extension IPCBenchmark.Mode: ExpressibleByArgument {}
