// The ExOS shell: `xok`'s main command. It reads commands (from -c, a script on
// standard input, or a terminal), runs each with ExOS calls in this process's library
// OS, and reports errors as a UNIX shell does (`rm: /a: No such file or directory`).
// Generic over the port, so the tests run it on the simulated host.
//
// The language: words separated by blanks, '…' and "…" quoting, \ escapes, `#`
// comments, `;` or a newline between commands, and `> FILE` / `>> FILE` to send a
// command's output to a file in C-FFS.

import CFFS
import ExOS
import XokABI

/// A command's failure, already worded for the user.
public struct ShellError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

public final class Shell<P: KernelPort> {
    public let os: ExOS<P>
    /// Where output goes (a command's, unless redirected), and error messages.
    public var standardOutput: ([UInt8]) -> Void
    public var standardError: (String) -> Void
    /// Progress lines for long operations; nil when not on a terminal.
    public var progress: ((String) -> Void)?
    /// The output of the command running now.
    var out: ([UInt8]) -> Void
    /// Set by `exit`.
    public private(set) var exitRequested = false

    public init(os: ExOS<P>, standardOutput: @escaping ([UInt8]) -> Void, standardError: @escaping (String) -> Void) {
        self.os = os
        self.standardOutput = standardOutput
        self.standardError = standardError
        out = standardOutput
    }

    func print(_ text: String) { out(Array((text + "\n").utf8)) }

    // MARK: Parsing

    /// One command: its words and where its output goes.
    struct Command {
        var words: [String] = []
        var redirect: (path: String, append: Bool)?
    }

    /// Splits a script into commands.
    static func parse(_ script: String) throws(ShellError) -> [Command] {
        var commands: [Command] = []
        var current = Command()
        var word: [Character] = []
        var inWord = false
        var pendingRedirect: Bool?   // append?
        func endWord() throws(ShellError) {
            guard inWord else { return }
            let text = String(word)
            if let append = pendingRedirect {
                current.redirect = (text, append)
                pendingRedirect = nil
            } else {
                current.words.append(text)
            }
            word = []
            inWord = false
        }
        func endCommand() throws(ShellError) {
            try endWord()
            if pendingRedirect != nil { throw ShellError("syntax error: a redirection needs a file name") }
            if !current.words.isEmpty { commands.append(current) } else if current.redirect != nil {
                throw ShellError("syntax error: a redirection needs a command")
            }
            current = Command()
        }
        var chars = Array(script)
        chars.append("\n")
        var i = 0
        while i < chars.count {
            let c = chars[i]
            switch c {
            case " ", "\t":
                try endWord()
            case "\n", ";":
                try endCommand()
            case "#" where !inWord:
                while i < chars.count && chars[i] != "\n" { i += 1 }
                continue
            case ">" :
                try endWord()
                if i + 1 < chars.count && chars[i + 1] == ">" {
                    pendingRedirect = true
                    i += 1
                } else {
                    pendingRedirect = false
                }
            case "'":
                inWord = true
                i += 1
                while i < chars.count && chars[i] != "'" {
                    word.append(chars[i])
                    i += 1
                }
                if i >= chars.count - 1 && (i >= chars.count || chars[i] != "'") { throw ShellError("syntax error: unterminated quote") }
            case "\"":
                inWord = true
                i += 1
                while i < chars.count && chars[i] != "\"" {
                    if chars[i] == "\\", i + 1 < chars.count, "\"\\$`".contains(chars[i + 1]) { i += 1 }
                    word.append(chars[i])
                    i += 1
                }
                if i >= chars.count { throw ShellError("syntax error: unterminated quote") }
            case "\\":
                inWord = true
                if i + 1 < chars.count - 1 {
                    i += 1
                    if chars[i] != "\n" { word.append(chars[i]) }
                }
            default:
                inWord = true
                word.append(c)
            }
            i += 1
        }
        try endCommand()
        return commands
    }

    // MARK: Running

    /// Runs every command of `script`; returns false if any failed (or the script did
    /// not parse).
    @discardableResult
    public func run(_ script: String) -> Bool {
        let commands: [Command]
        do { commands = try Self.parse(script) } catch {
            standardError("xok: \(error)")
            return false
        }
        var ok = true
        for command in commands where !exitRequested {
            if !execute(command) { ok = false }
        }
        return ok
    }

    /// Runs one command; false when it failed (its message already printed).
    func execute(_ command: Command) -> Bool {
        var fd: Int32?
        if let redirect = command.redirect {
            do {
                let flags: OpenFlags = redirect.append ? [.writeOnly, .create, .append] : [.writeOnly, .create, .truncate]
                fd = try os.open(redirect.path, flags)
            } catch {
                standardError("xok: \(redirect.path): \(error)")
                return false
            }
            let descriptor = fd!
            var failure: Errno?
            out = { [os] bytes in
                guard failure == nil else { return }
                do { _ = try os.write(descriptor, bytes) } catch let e as Errno { failure = e } catch { failure = .EIO }
            }
            defer {
                try? os.close(descriptor)
                out = standardOutput
            }
            let ok = dispatch(command.words)
            if let failure {
                standardError("xok: \(redirect.path): \(failure)")
                return false
            }
            return ok
        }
        return dispatch(command.words)
    }

    func dispatch(_ words: [String]) -> Bool {
        let name = words[0], args = Array(words.dropFirst())
        do {
            switch name {
            case "ls": try ls(args)
            case "cd":
                let dir = args.first ?? "/"
                try at(dir) { () throws(Errno) in try os.chdir(dir) }
            case "pwd": print(os.getcwd())
            case "cat": try cat(args)
            case "echo": print(args.joined(separator: " "))
            case "cp": try cp(args)
            case "mv": try mv(args)
            case "rm": try rm(args)
            case "mkdir": try mkdir(args)
            case "rmdir": try each("rmdir", args) { try os.rmdir($0) }
            case "ln": try ln(args)
            case "stat": try statCommand(args)
            case "chmod": try chmod(args)
            case "df": try df(args)
            case "du": try du(args)
            case "tar": try tar(args)
            case "cksum": try cksum(args)
            case "diff": return try diff(args)
            case "import": try importTree(args)
            case "export": try exportTree(args)
            case "sync": try os.sync()
            case "help": print(Self.help)
            case "exit": exitRequested = true
            case "time": return try time(args)
            default: throw ShellError("xok: \(name): command not found")
            }
            return true
        } catch is Silent {
        } catch let error as PathError {
            standardError("\(name): \(error.path): \(error.errno)")
        } catch let error as ShellError {
            standardError(error.description)
        } catch let error as Errno {
            standardError("\(name): \(error)")
        } catch {
            standardError("\(name): \(error)")
        }
        return false
    }

    public static var help: String { ShellHelp.text }

    /// `time COMMAND...`: runs the command and prints how long it took (wall clock) on
    /// standard error, as a shell's `time` does.
    func time(_ args: [String]) throws -> Bool {
        guard !args.isEmpty else { throw ShellError("usage: time COMMAND [ARG...]") }
        let clock = ContinuousClock()
        let start = clock.now
        let ok = dispatch(args)
        let d = clock.now - start
        let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        let fraction = String(ms % 1000)
        standardError("real \(ms / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction) s")
        return ok
    }
}

enum ShellHelp {
    static let text = """
        Commands (paths are in the C-FFS image; HOSTPATH is on this machine):
          ls [-l] [-a] [-d] [PATH...]      list directories
          cd [DIR]   pwd                    change or print the current directory
          cat FILE...   echo WORDS...       print files or words
          cp [-r] SOURCE... TARGET          copy files (and trees, with -r)
          mv SOURCE... TARGET               move or rename
          rm [-r] [-f] PATH...              remove files (and trees, with -r)
          mkdir [-p] [-m MODE] DIR...       make directories
          rmdir DIR...                      remove empty directories
          ln [-s] [-f] TARGET LINK          make a hard link (with -s, a symbolic one)
          stat PATH...   chmod MODE PATH... show or change a file's status
          df   du [-s] [PATH...]            disk space, and space used
          tar -c|-x [-v] -f ARCHIVE [-C DIR] [PATH...]
                                            ustar/pax archives in the image
          cksum FILE...                     CRC and size, as cksum(1)
          diff [-r] A B                     compare files or trees
          import HOSTPATH PATH              copy a file or tree in from this machine
          export PATH HOSTPATH              copy a file or tree out to this machine
          sync                              write everything to the image
          time COMMAND...                   run a command and print how long it took
          help   exit
        COMMAND > FILE and COMMAND >> FILE send output to a file in the image.
        """
}

extension Shell {

    /// Runs `body` on each argument, reporting each failure and failing at the end if any
    /// did (as rmdir a b c does).
    func each(_ command: String, _ args: [String], _ body: (String) throws -> Void) throws {
        guard !args.isEmpty else { throw ShellError("\(command): missing operand") }
        try forEach(command, args, body)
    }

    /// Runs `body` on every operand. One that fails is reported (`command: operand:
    /// error`, or a `ShellError` as it reads) and the rest still run; then `Silent` is
    /// thrown if any failed, its errors printed already.
    func forEach<S: Sequence<String>>(_ command: String, _ operands: S, _ body: (String) throws -> Void) throws {
        var failed = false
        for operand in operands {
            do { try body(operand) } catch let error as Errno {
                standardError("\(command): \(operand): \(error)")
                failed = true
            } catch let error as ShellError {
                standardError(error.description)
                failed = true
            }
        }
        if failed { throw Silent() }
    }

    /// Splits `-abc` style options from operands; unknown options are an error.
    func options(_ command: String, _ args: [String], allowed: String) throws -> (flags: Set<Character>, operands: [String]) {
        var flags = Set<Character>(), operands: [String] = []
        var done = false
        for arg in args {
            if !done, arg == "--" {
                done = true
            } else if !done, arg.hasPrefix("-"), arg.count > 1 {
                for c in arg.dropFirst() {
                    guard allowed.contains(c) else { throw ShellError("\(command): invalid option -- '\(c)'") }
                    flags.insert(c)
                }
            } else {
                operands.append(arg)
            }
        }
        return (flags, operands)
    }
}

/// An ExOS call's failure on a path, reported as "COMMAND: PATH: MESSAGE".
struct PathError: Error {
    var path: String
    var errno: Errno
}

extension Shell {
    /// Runs `body`, naming `path` in its failure.
    func at<T>(_ path: String, _ body: () throws(Errno) -> T) throws(PathError) -> T {
        do { return try body() } catch { throw PathError(path: path, errno: error) }
    }
}

/// A failure whose messages were already printed.
struct Silent: Error {}
