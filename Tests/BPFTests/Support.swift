// Helpers shared by the BPF tests.

import BPF
import Testing

/// Assembles `text` (a test's own program, so a failure to assemble is a test bug).
func assemble(_ text: String) throws -> Program { try Assembler.assemble(text) }

/// The verifier's verdict on `text` for `kind`: nil when accepted.
func rejection(_ text: String, _ kind: ProgramKind) throws -> VerificationError? {
    rejection(try assemble(text), kind)
}

func rejection(_ program: Program, _ kind: ProgramKind) -> VerificationError? {
    do {
        _ = try Verifier.verify(program, kind: kind)
        return nil
    } catch {
        return error
    }
}

/// Verifies and runs `text` on `context` (padded with zeros to a fixed kind's size).
func run(_ text: String, _ kind: ProgramKind, context: [UInt8] = []) throws -> UInt64 {
    var context = context
    if case .fixed(let n) = kind.context, context.count < n { context += [UInt8](repeating: 0, count: n - context.count) }
    return try Interpreter(try Verifier.verify(try assemble(text), kind: kind)).run(context: context).result
}
