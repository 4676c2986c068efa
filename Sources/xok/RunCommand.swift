// `xok run -- PROGRAM`: a program as an environment of its own, a child of this one under
// xokd (docs/xokd.md).

import ArgumentParser
import Foundation
import XokABI
import XokTools
#if canImport(Glibc)
import Glibc
#endif

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a program as an environment of its own, a child of this one, under the daemon serving IMAGE.",
        discussion: """
            Asks the daemon for a child of this process's environment (of a new one for this user, or of the \
            one a parent `xok run` left it), granted this environment's capabilities and half of what it has \
            left, and starts PROGRAM with XOK_DAEMON and XOK_TOKEN set: an ExOS program (xok itself, or xok \
            run again) claims the child with them. Exits with PROGRAM's status. The child dies with PROGRAM or \
            with this process, whichever goes first.
            """)

    @OptionGroup var daemon: DaemonAddress

    @Argument(parsing: .captureForPassthrough, help: "The program and its arguments, after --.")
    var command: [String] = []

    func run() throws {
        let program = command.first == "--" ? Array(command.dropFirst()) : command
        guard let name = program.first else { fail("xok run: give the program to run after --", code: 2) }
        let connection: Xokd.Connection
        do {
            connection = try Xokd.inherited() ?? Xokd.connect(daemon.path)
        } catch {
            fail("xok run: \(error) (xok run needs a daemon: xok daemon --image \(daemon.image))", code: 1)
        }
        // Everything this environment holds, in the same slots: C-FFS finds its identity
        // where it expects it, and the child may spawn children of its own.
        let grants = (0...Int(Xokd.environmentsSlot.rawValue)).map { CapabilitySlot(rawValue: UInt16($0)) }
        let child: (environment: EnvironmentID, token: [UInt8])
        do { child = try connection.spawnChild(credential: Xokd.environmentsSlot, grants: grants) } catch {
            fail("xok run: \(error)", code: 1)
        }
        setenv("XOK_DAEMON", connection.path, 1)
        setenv("XOK_TOKEN", Hex.text(child.token), 1)
        setenv("XOK_ENVIRONMENT", "\(child.environment.rawValue)", 1)
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = program.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        let spawned = posix_spawnp(&pid, name, nil, nil, argv, environ)
        guard spawned == 0 else { fail("xok run: \(name): \(String(cString: strerror(spawned)))", code: 127) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { fail("xok run: waitpid: \(String(cString: strerror(errno)))", code: 1) }
        }
        withExtendedLifetime(connection) {}
        // As a shell reports it: the exit status, or 128 and the signal.
        let signal = status & 0x7f
        throw ExitCode(signal == 0 ? (status >> 8) & 0xff : 128 + signal)
    }
}
