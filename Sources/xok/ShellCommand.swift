// `xok` with no subcommand, or `xok shell`: opens an ExOS shell on a disk image, through
// the `xokd` serving it when one does, else with the kernel booted in this process.

import ArgumentParser
import ExOS
import Foundation
import XokABI
import XokHostLinux
import XokTools
#if canImport(Glibc)
import Glibc
#endif

struct ShellCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shell",
        abstract: "Open an ExOS shell on a C-FFS disk image (the default command).",
        discussion: """
            Boots the Xok kernel in this process on the Linux host, mounts the image (created and formatted \
            when absent) and runs commands: from -c, from standard input when it is not a terminal, or at a \
            prompt. Type `help` for the commands. Exit status: 0 when every command succeeded, 1 otherwise.
            """)

    @Option(name: .long, help: "The disk image (created, 4 GiB sparse, when absent).")
    var image = "xok.img"

    @Option(name: .customShort("c"), help: "Commands to run instead of reading them.")
    var commands: String?

    @Option(name: .long, help: "Act as this user: UID or UID:GID (default: the user running xok).")
    var user: String?

    func run() throws {
        var uid = getuid(), gid = getgid()
        if let user {
            let parts = user.split(separator: ":", omittingEmptySubsequences: false)
            guard (1...2).contains(parts.count), let u = UInt32(parts[0]), let g = parts.count == 2 ? UInt32(parts[1]) : u else {
                fail("xok: --user: expected UID or UID:GID")
            }
            (uid, gid) = (u, g)
        }
        // The environment a parent `xok run` left, or a daemon serving the image takes the
        // calls; otherwise the kernel boots here.
        let inherited: Xokd.Connection?
        do { inherited = try Xokd.inherited() } catch { fail("xok: \(error)", code: 1) }
        let socket = image + ".xokd"
        if let connection = inherited ?? (access(socket, F_OK) == 0 ? try? Xokd.connect(socket) : nil) {
            guard user == nil else { fail("xok: --user: xokd serves \(image) and takes the user from Linux", code: 1) }
            let os: ExOS<ChannelPort>
            do { os = try Xokd.exos(connection) } catch { fail("xok: \(image) through xokd: \(error)", code: 1) }
            try runShell(os) {
                try os.sync()
                withExtendedLifetime(connection) {}
            }
            return
        }
        let session: ExOSSession
        do {
            session = try ExOSSession(image: image, uid: uid, gid: gid) { message in
                FileHandle.standardError.write(Data((message + "\n").utf8))
            }
        } catch {
            fail("xok: \(error)", code: 1)
        }
        try runShell(session.os) { try session.close() }
    }

    /// Runs the commands on `os`, then `close`.
    func runShell<P: KernelPort>(_ os: ExOS<P>, close: () throws -> Void) throws {
        let interactive = commands == nil && isatty(0) == 1
        let shell = Shell(os: os, standardOutput: { bytes in
            FileHandle.standardOutput.write(Data(bytes))
        }, standardError: { message in
            FileHandle.standardError.write(Data((message + "\n").utf8))
        })
        // Progress lines overwrite each other on a terminal; the last is cleared when the
        // command ends.
        let progressShown = ProgressState()
        if isatty(2) == 1 {
            shell.progress = { line in
                progressShown.value = true
                FileHandle.standardError.write(Data(("\r\u{1b}[K" + line).utf8))
            }
        }
        func clearProgress() {
            guard progressShown.value else { return }
            FileHandle.standardError.write(Data("\r\u{1b}[K".utf8))
            progressShown.value = false
        }
        var ok = true
        if let commands {
            ok = shell.run(commands)
        } else if interactive {
            print("ExOS on Xok: C-FFS on \(image). Type help for the commands, exit or ^D to leave.")
            while !shell.exitRequested {
                FileHandle.standardOutput.write(Data("xok:\(os.getcwd())$ ".utf8))
                guard let line = readLine() else {
                    print("")
                    break
                }
                shell.run(line)
                clearProgress()
            }
        } else {
            // A script on standard input runs a line at a time as it comes, as sh's does: a
            // program feeding commands sees each take effect before it sends the next.
            while !shell.exitRequested, let line = readLine() {
                if !shell.run(line) { ok = false }
            }
        }
        clearProgress()
        do { try close() } catch {
            fail("xok: \(image): \(error)")
        }
        if !ok { throw ExitCode(1) }
    }
}

/// Whether a progress line is on the terminal now.
final class ProgressState {
    var value = false
}
