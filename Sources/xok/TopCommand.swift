// `xok top`: a running daemon's exposed state, refreshed in place (docs/xokd.md).

import ArgumentParser
import Foundation
import XokHostLinux
import XokTools
#if canImport(Glibc)
import Glibc
#endif

struct TopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "Watch a running xokd: environments, frames, XN's cache, slices and the rate of change, refreshed in place.",
        discussion: """
            Connects to the daemon serving IMAGE as an environment of its own and reads the kernel's exposed \
            state from the pages the daemon shares read-only, as any library OS may. ^C leaves.
            """)

    @OptionGroup var daemon: DaemonAddress

    @Option(name: .long, help: "Seconds between refreshes.")
    var interval = 1.0

    @Flag(name: .long, help: "Print one view and leave (for pipes and scripts).")
    var once = false

    func validate() throws {
        guard interval >= 0.05, interval <= 3600 else { throw ValidationError("--interval takes 0.05 to 3600 seconds") }
    }

    func run() throws {
        let path = daemon.path
        let connection: Xokd.Connection
        do { connection = try Xokd.connect(path) } catch { fail("xok top: \(error)", code: 1) }
        let clock = ContinuousClock()
        var previous: Top.Sample?
        let terminal = isatty(1) == 1 && !once
        while true {
            let sample = Top.Sample(state: connection.port.exposedState(), at: clock.now)
            let title = "xok top: \(path), every \(interval) s" + (terminal ? " (^C leaves)" : "")
            let screen = Top.render(sample, previous: previous, me: connection.welcome.environment, title: title)
            // Home, the view, and clear whatever the last one left below it.
            FileHandle.standardOutput.write(Data(((terminal ? "\u{1b}[H" : "") + screen.replacingOccurrences(of: "\n", with: terminal ? "\u{1b}[K\n" : "\n")
                                                  + (terminal ? "\u{1b}[K\n\u{1b}[J" : "\n")).utf8))
            if once { return }
            previous = sample
            usleep(UInt32(interval * 1_000_000))
        }
    }
}
