// The shell as a user meets it: commands, their output, their errors worded as a UNIX
// shell's, and tar archives that survive a round trip.

import CFFS
import Glibc
import ExOS
import Testing
import XokABI
import Xok
import XokSimulation
@testable import XokTools

/// What a shell printed.
final class Sink {
    var output = ""
    var errors: [String] = []
}

/// A shell on `os` that keeps what it prints.
struct Transcript {
    let shell: Shell<TestPort>
    let sink = Sink()

    init(_ os: Process) {
        let sink = self.sink
        shell = Shell(os: os, standardOutput: { bytes in sink.output += String(decoding: bytes, as: UTF8.self) },
                      standardError: { line in sink.errors.append(line) })
    }

    /// Runs `script`: whether every command succeeded, what it printed, its errors.
    func run(_ script: String) -> (ok: Bool, output: String, errors: [String]) {
        sink.output = ""
        sink.errors = []
        let ok = shell.run(script)
        return (ok, sink.output, sink.errors)
    }
}

@Suite struct ShellCommands {
    @Test(arguments: Mode.allCases) func timeRunsTheCommandAndSaysHowLongItTook(_ mode: Mode) throws {
        let t = Transcript(try Machine(mode).root)
        let ran = t.run("time mkdir /d")
        #expect(ran.ok)
        #expect(ran.errors.count == 1 && ran.errors[0].hasPrefix("real ") && ran.errors[0].hasSuffix(" s"))
        #expect(t.run("ls /").output == "d\n")
        // A failing command fails the same under time, with its own error first.
        let failed = t.run("time rmdir /nope")
        #expect(!failed.ok)
        #expect(failed.errors.first == "rmdir: /nope: No such file or directory")
        #expect(!t.run("time").ok)
    }

    @Test(arguments: Mode.allCases) func filesAndDirectories(_ mode: Mode) throws {
        let m = try Machine(mode)
        let sh = Transcript(m.root)
        #expect(sh.run("mkdir -p /a/b/c; echo 'hello  world' > /a/b/f; echo more >> /a/b/f; cat /a/b/f").output == "hello  world\nmore\n")
        #expect(sh.run("ls /a/b").output == "c\nf\n")
        #expect(sh.run("cd /a/b; pwd; cd ..; pwd").output == "/a/b\n/a\n")
        #expect(sh.run("cp -r /a /z; diff -r /a /z").ok)
        #expect(sh.run("mv /z/b/f /z/b/g; ls /z/b").output == "c\ng\n")
        #expect(sh.run("mv /z/b/g /z/g; ls /z").output == "b\ng\n")   // across directories: the entry moves
        #expect(sh.run("mkdir /y; mv /z/g /z/b /y; ls /z /y").output == "/z:\n\n/y:\nb\ng\n")
        #expect(sh.run("mv /y /y/b/c/d").errors == ["mv: cannot move '/y' to a subdirectory of itself, '/y/b/c/d'"])
        #expect(sh.run("mv /y/b /y/g /z; rmdir /y; ls /z").output == "b\ng\n")
        // printf "hello  world\nmore\n" | cksum (GNU coreutils) prints 2652706486 18.
        #expect(sh.run("cksum /a/b/f").output == "2652706486 18 /a/b/f\n")
        #expect(sh.run("chmod 640 /a/b/f; stat /a/b/f").output.contains("Access: (0640/-rw-r-----)"))
        #expect(sh.run("chmod u+x,o+r /a/b/f; ls -l /a/b/f").output.hasPrefix("-rwxr--r-- 1 0 0 18 "))
        #expect(sh.run("ln -s /a/b/f /link; cat /link").output == "hello  world\nmore\n")
        #expect(sh.run("rm -r /z; rmdir /a/b/c; ls /").output == "a\nlink\n")
        let diff = sh.run("echo x > /p; echo y > /q; diff /p /q")
        #expect(!diff.ok)
        #expect(diff.output == "Files /p and /q differ\n")
    }

    @Test(arguments: Mode.allCases) func errorsReadLikeAUNIXShellsAndFailTheRun(_ mode: Mode) throws {
        let m = try Machine(mode)
        let sh = Transcript(m.root)
        let cases: [(String, String)] = [
            ("rm /a", "rm: /a: No such file or directory"),
            ("cat /a", "cat: /a: No such file or directory"),
            ("cd /a", "cd: /a: No such file or directory"),
            ("mkdir /x; mkdir /x", "mkdir: /x: File exists"),
            ("rmdir /", "rmdir: /: Device or resource busy"),
            ("echo a > /f; rmdir /f", "rmdir: /f: Not a directory"),
            ("frob", "xok: frob: command not found"),
            ("ls -q", "ls: invalid option -- 'q'"),
            ("echo 'open", "xok: syntax error: unterminated quote"),
            ("tar -x -f /nope", "tar: /nope: No such file or directory"),
            ("chmod abc /f", "chmod: invalid mode: 'abc'"),
        ]
        for (script, message) in cases {
            let result = sh.run(script)
            #expect(!result.ok, "\(script)")
            #expect(result.errors.last == message, "\(script)")
        }
        // One failure fails the run, but the commands after it still run.
        let mixed = sh.run("cat /nope; echo after")
        #expect(!mixed.ok)
        #expect(mixed.output == "after\n")
    }

    @Test(arguments: Mode.allCases) func tarRoundTripsATreeWithLongNamesAndLinks(_ mode: Mode) throws {
        let m = try Machine(mode, blocks: 16_384)
        let sh = Transcript(m.root)
        let deep = (0..<6).map { "directory-with-a-long-name-\($0)" }.joined(separator: "/")   // over 155 bytes: a pax path
        let script = """
            mkdir -p /src/\(deep); echo deep > /src/\(deep)/file
            mkdir /src/empty; echo small > /src/small; ln -s small /src/link; ln -s /\(deep) /src/longlink
            chmod 750 /src/empty
            tar -c -f /t.tar /src
            mkdir /out; tar -x -f /t.tar -C /out
            diff -r /src /out/src
            """
        let result = sh.run(script)
        #expect(result.ok, "\(result.errors)")
        #expect(sh.run("cat /out/src/\(deep)/file; ls -l -d /out/src/empty").output.hasPrefix("deep\ndrwxr-x--- "))
        #expect(sh.run("tar -t -f /t.tar").output.split(separator: "\n").count == 12)
        // Extracting again over the tree replaces each file (and a file put where a link was).
        #expect(sh.run("echo changed > /out/src/small; rm /out/src/link; echo x > /out/src/link").ok)
        #expect(sh.run("tar -x -f /t.tar -C /out; diff -r /src /out/src").ok)
        try m.root.sync()
        #expect(m.check.violations == [])
    }

    @Test(arguments: Mode.allCases) func hardLinksSurviveTarImportAndExport(_ mode: Mode) throws {
        let m = try Machine(mode, blocks: 16_384)
        let sh = Transcript(m.root)
        #expect(sh.run("mkdir /src; mkdir /src/a; echo shared > /src/a/x; ln /src/a/x /src/y; ln /src/y /src/a/z; echo one > /src/w").ok)
        #expect(sh.run("stat /src/y").output.contains("Links: 3"))
        #expect(sh.run("ln /src/a /src/dir").errors == ["ln: failed to create hard link '/src/dir' => '/src/a': Operation not permitted"])
        // tar keeps later names as links to the first, and extracts them as links.
        #expect(sh.run("tar -c -f /t.tar /src; mkdir /out; tar -x -f /t.tar -C /out").ok)
        let names = ["/out/src/a/x", "/out/src/y", "/out/src/a/z"].map { try? m.root.stat($0) }
        #expect(Set(names.map { $0?.ino }).count == 1 && names.allSatisfy { $0?.nlink == 3 })
        #expect(try m.root.stat("/out/src/w").nlink == 1)
        #expect(sh.run("diff -r /src /out/src").ok)
        // Out to the host and back in: still one file with three names.
        let host = "/tmp/xok-links-\(getpid())"
        defer { Glibc.system("rm -rf \(host)") }
        #expect(sh.run("export /out/src \(host)").ok)
        var a = stat(), b = stat()
        #expect(lstat(host + "/a/z", &a) == 0 && lstat(host + "/y", &b) == 0)
        #expect(a.st_ino == b.st_ino && a.st_nlink == 3)
        #expect(sh.run("import \(host) /back; stat /back/a/x").output.contains("Links: 3"))
        try m.root.sync()
        #expect(m.check.violations == [])
        #expect(m.cffsCheck.violations == [])
    }

    @Test(arguments: Mode.allCases) func tarRefusesMembersThatClimbOutAndArchivesThatAreNot(_ mode: Mode) throws {
        let m = try Machine(mode)
        let sh = Transcript(m.root)
        // A member named ../escape, made by hand: skipped with a warning.
        var header = [UInt8](repeating: 0, count: 512)
        for (i, c) in "../escape".utf8.enumerated() { header[i] = c }
        for (i, c) in "0000644\u{0}0000000\u{0}0000000\u{0}00000000004\u{0}00000000000\u{0}".utf8.enumerated() { header[100 + i] = c }
        header[156] = UInt8(ascii: "0")
        for (i, c) in "ustar\u{0}00".utf8.enumerated() { header[257 + i] = c }
        for i in 148..<156 { header[i] = 0x20 }
        let sum = header.reduce(0) { $0 + Int($1) }
        for (i, c) in String(sum, radix: 8).leftPadded(6).utf8.enumerated() { header[148 + i] = c }
        header[154] = 0
        var archive = header + Array("evil".utf8) + [UInt8](repeating: 0, count: 508) + [UInt8](repeating: 0, count: 1024)
        try m.root.put("/evil.tar", archive)
        try m.root.mkdir("/in")
        let result = sh.run("tar -x -f /evil.tar -C /in")
        #expect(result.errors == ["tar: ../escape: member name contains '..'; skipped"])
        #expect(try m.root.list("/") .sorted() == ["evil.tar", "in"])
        #expect(try m.root.list("/in") == [])
        archive[0] = 0x41   // now the checksum is wrong
        try m.root.put("/bad.tar", archive)
        #expect(sh.run("tar -t -f /bad.tar").errors == ["tar: this does not look like a tar archive (bad header checksum)"])
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

@Suite struct ShellTimes {
    typealias S = Shell<TestPort>

    @Test func datesAtTheEndsOfTimeAreWrittenNotTrapped() {
        // A damaged entry may hold any time; ls -l and stat must still print it.
        #expect(S.longDate(0) == "1970-01-01 00:00:00.000000000 +0000")
        #expect(S.longDate(-1) == "1969-12-31 23:59:59.999999999 +0000")
        #expect(S.longDate(.max) == "2262-04-11 23:47:16.854775807 +0000")
        #expect(S.longDate(.min) == "1677-09-21 00:12:43.145224192 +0000")
        #expect(S.shortDate(.min) == "Sep 21 00:12")
    }

    @Test func hostTimesBeyondInt64AreHeldToItsEnds() {
        #expect(S.nanoseconds(timespec(tv_sec: 1_700_000_000, tv_nsec: 5)) == 1_700_000_000_000_000_005)
        #expect(S.nanoseconds(timespec(tv_sec: 32_503_680_000, tv_nsec: 0)) == .max)   // year 3000
        #expect(S.nanoseconds(timespec(tv_sec: -32_503_680_000, tv_nsec: 0)) == .min)
        let t = S.timespecOf(-1)
        #expect(t.tv_sec == -1 && t.tv_nsec == 999_999_999)
        #expect(S.timespecOf(.min).tv_nsec >= 0)
    }
}

@Suite struct BenchFigures {
    func step(_ exos: Double, _ linux: Double) -> FSBenchmark.Step {
        FSBenchmark.Step(name: "2 extract it", exos: exos, linux: linux, exosCPU: exos / 2, linuxCPU: linux / 2)
    }

    @Test func roundsCombineIntoEachFiguresMedian() {
        // Three rounds: the middle of each figure, taken apart (the middle ExOS time and the
        // middle Linux time may come from different rounds).
        let three = FSBenchmark.median([[step(1.0, 5.0)], [step(3.0, 0.5)], [step(2.0, 0.7)]])
        #expect(three.count == 1)
        #expect((three[0].exos, three[0].linux, three[0].exosCPU, three[0].linuxCPU) == (2.0, 0.7, 1.0, 0.35))
        // Two rounds: the mean of the two.
        let two = FSBenchmark.median([[step(1.0, 4.0)], [step(2.0, 1.0)]])
        #expect((two[0].exos, two[0].linux) == (1.5, 2.5))
        #expect(FSBenchmark.median([]).isEmpty)
    }
}
