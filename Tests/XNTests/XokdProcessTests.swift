// xokd with real processes: a daemon on an image, shells in processes of their own that
// see each other's files through it, one killed with SIGKILL in the middle of an import
// while the daemon goes on serving, and after SIGTERM an image fsck finds clean.

import Foundation
import Testing

@Suite(.serialized) struct XokdProcesses {
    /// Runs `xok` with `arguments` to the end: status and output.
    static func xok(_ arguments: [String]) throws -> (status: Int32, output: String) { try runXok(arguments) }

    @Test func shellsShareAnImageThroughTheDaemonAndSurviveAKilledNeighbour() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("xokd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let image = folder.appendingPathComponent("x.img").path, socket = image + ".xokd"
        // A small host tree to bring in.
        let tree = folder.appendingPathComponent("tree")
        try FileManager.default.createDirectory(at: tree, withIntermediateDirectories: true)
        for i in 0..<20 { try Data("file \(i)\n".utf8).write(to: tree.appendingPathComponent("f\(i)")) }

        let daemon = Process()
        daemon.executableURL = try xokExecutable()
        daemon.arguments = ["daemon", "--image", image]
        let daemonOutput = Pipe()
        daemon.standardError = daemonOutput
        try daemon.run()
        defer { if daemon.isRunning { daemon.interrupt() } }
        var waited = 0
        while !FileManager.default.fileExists(atPath: socket), waited < 600 {
            usleep(50_000)
            waited += 1
        }
        #expect(FileManager.default.fileExists(atPath: socket))

        // One shell writes; another, a process of its own, sees it.
        let writer = try Self.xok(["--image", image, "-c", "mkdir /shared; import \(tree.path) /shared/t"])
        #expect(writer.status == 0, "\(writer.output)")
        let reader = try Self.xok(["--image", image, "-c", "cat /shared/t/f7; ls /shared/t"])
        #expect(reader.status == 0, "\(reader.output)")
        #expect(reader.output.hasPrefix("file 7\n"))
        #expect(reader.output.contains("f19"))

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
