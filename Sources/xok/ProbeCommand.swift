// `xok probe`: acts as a hostile library OS against a running daemon and says, attack by
// attack, whether the daemon held (docs/xokd.md).

import ArgumentParser
import XokTools
#if canImport(Glibc)
import Glibc
#endif

struct ProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "Attack a running xokd as a malicious library OS would, and report what it refused.",
        discussion: """
            Connects to the daemon serving IMAGE and tries, with its own hand-made messages, what a hostile \
            process could: bad greetings, writing or resizing the memory it is handed, garbage calls and \
            channel words, other environments' frames, blocks, environments and descriptors, and leaving in \
            the middle of a call. Prints one line per attack and exits 1 if any got through. Run it as an \
            ordinary user: root may legitimately reach much of this.
            """)

    @OptionGroup var daemon: DaemonAddress

    func run() throws {
        let findings = XokdProbe.run(socket: daemon.path) { finding in
            print("\(finding.held ? "held  " : "BROKEN") \(finding.attack): \(finding.detail)")
            fflush(nil)
        }
        if findings.isEmpty { fail("xok probe: no daemon answers on \(daemon.path)", code: 1) }
        if findings.contains(where: { !$0.held }) { throw ExitCode(1) }
    }
}
