// Where a daemon is: its image, and its socket beside it unless one is named. Shared by
// the commands that run or reach `xokd`.

import ArgumentParser

struct DaemonAddress: ParsableArguments {
    @Option(name: .long, help: "The disk image the daemon serves.")
    var image = "xok.img"

    @Option(name: .long, help: "The daemon's socket (default: the image's path with .xokd appended).")
    var socket: String?

    /// The socket's path.
    var path: String { socket ?? image + ".xokd" }
}
