// `xok daemon`: the kernel as a daemon on a disk image (docs/xokd.md). Shells and other
// ExOS processes on the same image connect to it; SIGINT or SIGTERM writes everything
// back and stops it.

import ArgumentParser
import Foundation
import XokTools
#if canImport(Glibc)
import Glibc
#endif

/// Set by the signal handlers; read by a watcher thread.
nonisolated(unsafe) var daemonStopRequested: sig_atomic_t = 0

struct DaemonCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Run the kernel as xokd on a disk image, serving ExOS processes over a Unix socket.",
        discussion: """
            Boots Xok on the image (created and formatted when absent) and listens on IMAGE.xokd unless \
            --socket says otherwise. `xok shell` on the same image then runs its ExOS in its own process, \
            calling this one. Each connecting process acts as the Linux user it runs as. SIGINT or SIGTERM \
            writes everything back and stops.
            """)

    @OptionGroup var address: DaemonAddress

    @Option(name: .long, help: "Each environment's quota: this fraction (1/N) of the machine's frames and disk.")
    var parts = 8

    func validate() throws {
        guard (1...1024).contains(parts) else { throw ValidationError("--parts takes 1 to 1024") }
    }

    func run() throws {
        let (image, path) = (address.image, address.path)
        let daemon: Xokd
        do {
            daemon = try Xokd(image: image, socket: path, parts: parts) { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
        } catch {
            fail("xok daemon: \(error)", code: 1)
        }
        // A parent may have started this process with them blocked (Foundation's Process
        // does): unblock them, or nothing could stop the daemon but SIGKILL.
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        sigaddset(&stopSignals, SIGINT)
        sigaddset(&stopSignals, SIGTERM)
        sigprocmask(SIG_UNBLOCK, &stopSignals, nil)
        signal(SIGINT) { _ in daemonStopRequested = 1 }
        signal(SIGTERM) { _ in daemonStopRequested = 1 }
        signal(SIGPIPE, SIG_IGN)
        let watcher = Thread {
            while daemonStopRequested == 0 { usleep(50_000) }
            daemon.stop()
        }
        watcher.start()
        FileHandle.standardError.write(Data("xokd: serving \(image) on \(path)\n".utf8))
        do { try daemon.run() } catch { fail("xok daemon: \(error)", code: 1) }
    }
}
