// xokd with real processes: a daemon on an image, shells in processes of their own that
// see each other's files through it, one killed with SIGKILL in the middle of an import
// while the daemon goes on serving, and after SIGTERM an image fsck finds clean.

import Foundation
import Testing

@Suite(.serialized) struct XokdProcesses {
    /// Runs `xok` with `arguments` to the end: status and output.
    static func xok(_ arguments: [String]) throws -> (status: Int32, output: String) { try runXok(arguments) }

    /// Starts `xok daemon` on `image` and waits for its socket.
    static func startDaemon(image: String) throws -> (Process, Pipe) {
        let daemon = Process()
        daemon.executableURL = try xokExecutable()
        daemon.arguments = ["daemon", "--image", image]
        let output = Pipe()
        daemon.standardError = output
        try daemon.run()
        var waited = 0
        while !FileManager.default.fileExists(atPath: image + ".xokd"), waited < 600 {
            usleep(50_000)
            waited += 1
        }
        #expect(FileManager.default.fileExists(atPath: image + ".xokd"))
        return (daemon, output)
    }

    @Test func shellsShareAnImageThroughTheDaemonAndSurviveAKilledNeighbour() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("xokd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let image = folder.appendingPathComponent("x.img").path, socket = image + ".xokd"
        // A small host tree to bring in.
        let tree = folder.appendingPathComponent("tree")
        try FileManager.default.createDirectory(at: tree, withIntermediateDirectories: true)
        for i in 0..<20 { try Data("file \(i)\n".utf8).write(to: tree.appendingPathComponent("f\(i)")) }

        let (daemon, daemonOutput) = try Self.startDaemon(image: image)
        defer { if daemon.isRunning { daemon.interrupt() } }

        // One shell writes; another, a process of its own, sees it.
        let writer = try Self.xok(["--image", image, "-c", "mkdir /shared; import \(tree.path) /shared/t"])
        #expect(writer.status == 0, "\(writer.output)")
        let reader = try Self.xok(["--image", image, "-c", "cat /shared/t/f7; ls /shared/t"])
        #expect(reader.status == 0, "\(reader.output)")
        #expect(reader.output.hasPrefix("file 7\n"))
        #expect(reader.output.contains("f19"))

        // `xok run`: a program as a child environment; it claims the child once, and
        // its exit status comes back.
        let xok = try xokExecutable().path
        let child = try Self.xok(["run", "--image", image, "--", xok, "-c", "mkdir /child; cat /shared/t/f2; ls /"])
        #expect(child.status == 0, "\(child.output)")
        #expect(child.output.hasPrefix("file 2\n") && child.output.contains("child\n"), "\(child.output)")
        let nested = try Self.xok(["run", "--image", image, "--", xok, "run", "--", xok, "-c", "ls /child"])
        #expect(nested.status == 0, "\(nested.output)")
        let status = try Self.xok(["run", "--image", image, "--", "/bin/sh", "-c", "exit 3"])
        #expect(status.status == 3, "\(status.output)")
        let twice = try Self.xok(["run", "--image", image, "--", "/bin/sh", "-c", "$0 -c 'ls /' && $0 -c 'ls /'", xok])
        #expect(twice.status == 1 && twice.output.contains("refused the token"), "\(twice.output)")
        if getuid() == 0 {
            // Another user's process cannot claim the child, even with the token.
            let copy = folder.appendingPathComponent("xok").path
            try FileManager.default.copyItem(atPath: xok, toPath: copy)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: folder.path)
            let stolen = try Self.xok(["run", "--image", image, "--", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", copy, "-c", "ls /"])
            #expect(stolen.status == 1 && stolen.output.contains("refused the token"), "\(stolen.output)")
        }

        // `xok top` reads the daemon's exposed state as an environment of its own.
        let top = try Self.xok(["top", "--once", "--image", image])
        #expect(top.status == 0, "\(top.output)")
        #expect(top.output.contains("disk:   1048576 blocks"), "\(top.output)")
        #expect(top.output.split(separator: "\n").contains { $0.contains(" *") && $0.hasSuffix("0") }, "\(top.output)")

        // A shell killed in the middle of an import: the daemon goes on.
        let victim = Process()
        victim.executableURL = try xokExecutable()
        victim.arguments = ["--image", image, "-c", "import /usr/include /big"]
        victim.standardOutput = FileHandle.nullDevice
        victim.standardError = FileHandle.nullDevice
        try victim.run()
        usleep(400_000)
        kill(victim.processIdentifier, SIGKILL)
        victim.waitUntilExit()
        #expect(victim.terminationReason == .uncaughtSignal)
        let after = try Self.xok(["--image", image, "-c", "cat /shared/t/f3; mkdir /after"])
        #expect(after.status == 0, "\(after.output)")
        #expect(after.output == "file 3\n")

        // SIGTERM: everything written back; the image is clean and keeps what was made.
        daemon.terminate()
        daemon.waitUntilExit()
        #expect(daemon.terminationStatus == 0, "\(String(decoding: daemonOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))")
        #expect(!FileManager.default.fileExists(atPath: socket))
        let fsck = try Self.xok(["fsck", image])
        #expect(fsck.status == 0, "\(fsck.output)")
        let alone = try Self.xok(["--image", image, "-c", "ls /"])
        #expect(alone.output.contains("after") && alone.output.contains("shared"), "\(alone.output)")
    }
}

/// The done-when cases of xokd's boundary, each with real processes.
@Suite(.serialized) struct XokdBoundary {
    /// A folder for one test, open to every user (the attacker runs as nobody).
    static func folder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("xokd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        return folder
    }

    /// A shell on `image` reading its commands from a pipe, a line at a time as they come;
    /// its output and errors go to the other pipe.
    static func shell(on image: String) throws -> (Process, input: Pipe, output: Pipe) {
        let shell = Process()
        shell.executableURL = try xokExecutable()
        shell.arguments = ["--image", image]
        let input = Pipe(), output = Pipe()
        shell.standardInput = input
        shell.standardOutput = output
        shell.standardError = output
        try shell.run()
        return (shell, input, output)
    }

    /// Two ExOS processes share an image through the daemon while a third, running as
    /// another user, attacks it (`xok probe`) in every way it knows: each attack must end
    /// in an error or a hang-up, the two lose nothing, and fsck is clean afterwards.
    @Test func aHostileProcessGetsNothingAndTheOthersLoseNothing() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let image = folder.appendingPathComponent("x.img").path
        let tree = folder.appendingPathComponent("tree")
        try FileManager.default.createDirectory(at: tree, withIntermediateDirectories: true)
        var files: [String: String] = [:]
        for i in 0..<30 {
            files["f\(i)"] = String(repeating: "line \(i) of a file nobody else may change\n", count: 1 + i * 20)
            try Data(files["f\(i)"]!.utf8).write(to: tree.appendingPathComponent("f\(i)"))
        }
        let (daemon, daemonOutput) = try XokdProcesses.startDaemon(image: image)
        defer { if daemon.isRunning { daemon.interrupt() } }

        // The first honest process stays alive through the attack, its blocks cached.
        let (first, input, output) = try Self.shell(on: image)
        try input.fileHandleForWriting.write(contentsOf: Data("mkdir /home\nimport \(tree.path) /home/a\nchmod 700 /home/a\nls /home/a\n".utf8))
        var seen = ""
        for _ in 0..<200 where !seen.contains("f29") {
            seen = try XokdProcesses.xok(["--image", image, "-c", "ls /home/a"]).output
            usleep(50_000)
        }
        #expect(seen.contains("f29"), "the second process never saw the first's files: \(seen)")

        // The attacker: another user, so that what it may do is only what that user may.
        // It runs a copy of xok that every user can execute.
        let attackerCopy = folder.appendingPathComponent("xok").path
        try FileManager.default.copyItem(atPath: try xokExecutable().path, toPath: attackerCopy)
        let asNobody = getuid() == 0 ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : []
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = asNobody + [attackerCopy, "probe", "--image", image]
        let probeOutput = Pipe()
        probe.standardOutput = probeOutput
        probe.standardError = probeOutput
        try probe.run()
        let report = String(decoding: probeOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        probe.waitUntilExit()
        #expect(probe.terminationStatus == 0, "\(report)")
        let lines = report.split(separator: "\n")
        #expect(lines.count == 20, "\(report)")
        #expect(lines.allSatisfy { $0.hasPrefix("held") }, "\(report)")
        // The attacks on others' things had things to attack.
        let blocks = try #require(lines.first { $0.contains("other environments' cached blocks") })
        #expect(!blocks.contains("over 0 blocks"), "\(blocks)")

        // The first process goes on, its files whole; the second sees them too.
        try input.fileHandleForWriting.write(contentsOf: Data("cat /home/a/f29\nexit\n".utf8))
        try input.fileHandleForWriting.close()
        let firstSaid = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        first.waitUntilExit()
        #expect(first.terminationStatus == 0, "\(firstSaid)")
        #expect(firstSaid.hasSuffix(files["f29"]!), "\(firstSaid.suffix(200))")
        let every = try XokdProcesses.xok(["--image", image, "-c", (0..<30).map { "cat /home/a/f\($0)" }.joined(separator: "; ")])
        #expect(every.output == (0..<30).map { files["f\($0)"]! }.joined(), "\(every.output.prefix(300))")

        daemon.terminate()
        daemon.waitUntilExit()
        #expect(daemon.terminationStatus == 0, "\(String(decoding: daemonOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))")
        let fsck = try XokdProcesses.xok(["fsck", image])
        #expect(fsck.status == 0, "\(fsck.output)")
    }

    /// An environment killed with SIGKILL while it writes file after file: every file it
    /// had finished, which it reports only after the kernel took the blocks, is on the
    /// disk whole, written by the daemon when it saw the environment die, before any
    /// shutdown (the image is copied while the daemon still runs).
    @Test func anEnvironmentKilledMidWriteLosesNoBlockItHandedOver() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let image = folder.appendingPathComponent("x.img").path
        let (daemon, _) = try XokdProcesses.startDaemon(image: image)
        defer { if daemon.isRunning { daemon.interrupt() } }

        @Sendable func contents(_ k: Int) -> String { Array(repeating: "file \(k)", count: 600 + k % 7 * 150).joined(separator: " ") }
        signal(SIGPIPE, SIG_IGN)
        let (victim, input, output) = try Self.shell(on: image)
        // Its commands, fed from a thread: the pipe fills long before the last.
        let writer = input.fileHandleForWriting
        let feeder = Thread {
            try? writer.write(contentsOf: Data("mkdir /v\n".utf8))
            for k in 0..<5_000 { try? writer.write(contentsOf: Data("echo \(contents(k)) > /v/f\(k)\necho done \(k)\n".utf8)) }
            try? writer.close()
        }
        feeder.start()

        // Read its reports until a few hundred files are done, then kill it mid-stream.
        var done: [Int] = []
        var pending = Data()
        let reader = output.fileHandleForReading
        while done.count < 300 {
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            pending += chunk
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                pending = Data(pending[pending.index(after: newline)...])
                if line.hasPrefix("done "), let k = Int(line.dropFirst(5)) { done.append(k) }
            }
        }
        kill(victim.processIdentifier, SIGKILL)
        victim.waitUntilExit()
        #expect(victim.terminationReason == .uncaughtSignal)
        #expect(done.count >= 300)

        // The daemon notices within a fraction of a second and writes back what it left.
        usleep(1_500_000)
        let copy = folder.appendingPathComponent("copy.img").path
        let cp = Process()
        cp.executableURL = URL(fileURLWithPath: "/bin/cp")
        cp.arguments = ["--sparse=always", image, copy]
        try cp.run()
        cp.waitUntilExit()
        #expect(cp.terminationStatus == 0)
        let fsck = try XokdProcesses.xok(["fsck", copy])
        #expect(fsck.status == 0, "\(fsck.output)")
        let read = try XokdProcesses.xok(["--image", copy, "-c", done.map { "cat /v/f\($0)" }.joined(separator: "; ")])
        #expect(read.status == 0, "\(read.output.prefix(300))")
        #expect(read.output == done.map { contents($0) + "\n" }.joined(), "\(read.output.count) bytes read back, \(done.map { contents($0).count + 1 }.reduce(0, +)) expected")

        daemon.terminate()
        daemon.waitUntilExit()
        #expect(daemon.terminationStatus == 0)
    }
}
