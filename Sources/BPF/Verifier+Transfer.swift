// The verifier's transfer function: what one statement does to the abstract state, and
// every rule that statement must keep on the path being analysed.

extension Analysis {
    func transfer(_ statement: Statement, at slot: Int, _ state: inout AbstractState, depth: Int) throws(VerificationError) -> Flow {
        func reject(_ rule: VerificationRule, _ detail: String) -> VerificationError {
            VerificationError(instruction: slot, rule: rule, detail: detail, registers: state.rendered)
        }
        /// The register's value; it must be written on every path.
        func read(_ r: Register) throws(VerificationError) -> Value {
            switch state[r] {
            case .uninitialized: throw reject(.uninitializedRegister, "r\(r.rawValue) is read before it is written")
            case .conflicted: throw reject(.addressLeak, "r\(r.rawValue) holds an address on some paths and not on others")
            default: return state[r]
            }
        }
        /// The register's value as a number; an address here would leak.
        func number(_ v: Value, _ use: String) throws(VerificationError) -> Interval {
            switch v {
            case .scalar(let i): return i
            case .contextLength: return state.contextLength
            case .pointer(let region, _): throw reject(.addressLeak, "\(use) a \(region.name) address")
            case .uninitialized, .conflicted: preconditionFailure("read() admits only written values")
            }
        }
        func write(_ r: Register, _ v: Value) throws(VerificationError) {
            guard r != .r10 else { throw reject(.frameRegisterWritten, "r10 is written") }
            state[r] = v
        }
        func operandValue(_ operand: Operand, _ width: Width) throws(VerificationError) -> Value {
            switch operand {
            case .register(let r): return try read(r)
            case .immediate(let v): return .constant(width == .bits64 ? Semantics.immediate(v) : UInt64(UInt32(bitPattern: v)))
            }
        }

        switch statement {
        case .alu(let operation, let width, let dst, let operand):
            guard dst != .r10 else { throw reject(.frameRegisterWritten, "r10 is written") }
            let source = try operandValue(operand, width)
            if operation == .mov {
                if width == .bits64 {
                    state[dst] = source
                } else if source == .contextLength && state.contextLength.fits32 {
                    // `w3 = w2`, as compilers copy a 32-bit length: the same length still,
                    // so a check of the copy bounds the context.
                    state[dst] = .contextLength
                } else {
                    state[dst] = .scalar(IntervalArithmetic.alu(.mov, .bits32, .full, try number(source, "mov32 truncates")))
                }
                return .next
            }
            let target = try read(dst)
            switch (target, source) {
            case (.pointer(let region, let offsets), .pointer(let sourceRegion, let sourceOffsets)):
                guard operation == .sub, width == .bits64, region == sourceRegion else {
                    throw reject(.addressArithmetic, "only the difference of two addresses in one region is a number")
                }
                // Unbounded offsets differ by anything: the number added to lose track of them.
                state[dst] = .scalar(offsets.isBounded && sourceOffsets.isBounded
                    ? Interval(signedFrom: offsets.lo - sourceOffsets.hi, to: offsets.hi - sourceOffsets.lo) : .full)
            case (.pointer(let region, let offsets), _):
                guard (operation == .add || operation == .sub) && width == .bits64 else {
                    throw reject(.addressArithmetic, "only add and sub of a number may change an address")
                }
                state[dst] = .pointer(region, offsets.moved(by: try number(source, "adds"), negated: operation == .sub))
            case (_, .pointer(let region, let offsets)):
                guard operation == .add && width == .bits64 else {
                    throw reject(.addressArithmetic, "a number may only have an address added to it")
                }
                state[dst] = .pointer(region, offsets.moved(by: try number(target, "adds"), negated: false))
            default:
                state[dst] = .scalar(IntervalArithmetic.alu(operation, width, try number(target, ""), try number(source, "")))
            }
            return .next

        case .negate(let width, let dst):
            let v = try number(try read(dst), "negates")
            try write(dst, .scalar(IntervalArithmetic.negate(width, v)))
            return .next

        case .moveSignExtend(let width, let dst, let src, let bits):
            let v = try number(try read(src), "sign-extends")
            try write(dst, .scalar(IntervalArithmetic.signExtend(width, v, fromBits: bits)))
            return .next

        case .byteOrder(let order, let dst, let bits):
            let v = try number(try read(dst), "swaps the bytes of")
            try write(dst, .scalar(IntervalArithmetic.byteOrder(order, v, bits: bits)))
            return .next

        case .loadImmediate64(let dst, let value):
            try write(dst, .constant(value))
            return .next

        case .load(let size, let dst, let base, let offset, let signExtend):
            let at = try access(base, offset, bytes: size.bytes, reads: true, writes: false, at: slot, &state)
            var loaded = Value.scalar(signExtend ? .full : .ofSize(size.bytes))
            if let span = at.stackBytes {
                if size == .double, let spilled = at.spillSlot {
                    // A register reloaded whole: what was spilled comes back.
                    loaded = state.stack.slots[spilled / 8]
                    if loaded == .conflicted { throw reject(.addressLeak, "the slot holds bytes of an address on some paths") }
                } else if state.stack.mayHoldAddress(span) {
                    throw reject(.addressLeak, "\(size.bytes) bytes at stack\(at.offsets.rendered) may be part of a spilled address")
                }
            }
            try write(dst, loaded)
            return .next

        case .store(let size, let base, let offset, let operand):
            let value = try operandValue(operand, .bits64)
            let at = try access(base, offset, bytes: size.bytes, reads: false, writes: true, at: slot, &state)
            if size == .double, let spilled = at.spillSlot {
                state.stack.spill(value, at: spilled)
                return .next
            }
            if case .pointer(let region, _) = value {
                throw reject(.addressLeak, "stores a \(region.name) address other than whole to an 8-byte stack slot")
            }
            if let span = at.stackBytes { state.stack.overwrite(span, exactly: at.offsets.isExact) }
            return .next

        case .atomic(let operation, let width, let base, let offset, let source):
            _ = try number(try read(source), "stores")
            if operation == .compareExchange { _ = try number(try read(.r0), "compares") }
            let bytes = width == .bits64 ? 8 : 4
            let at = try access(base, offset, bytes: bytes, reads: true, writes: true, at: slot, &state)
            if let span = at.stackBytes {
                if state.stack.mayHoldAddress(span) {
                    throw reject(.addressLeak, "an atomic operation on stack\(at.offsets.rendered) may change part of a spilled address")
                }
                state.stack.overwrite(span, exactly: at.offsets.isExact)
            }
            if operation == .compareExchange {
                state[.r0] = .scalar(.ofSize(bytes))
            } else if operation.fetches {
                try write(source, .scalar(.ofSize(bytes)))
            }
            return .next

        case .jump(let offset, _):
            return .goto([(slot + 1 + Int(offset), state)])

        case .branch(let condition, let width, let dst, let operand, let offset):
            let a = try read(dst), b = try operandValue(operand, width)
            let refined = IntervalArithmetic.refine(condition, width, try number(a, "compares"), try number(b, "compares"))
            var successors: [(Int, AbstractState)] = []
            /// `state` with the registers compared narrowed to `pair`, or nil if no value fits.
            func narrowed(_ pair: (Interval, Interval)?) -> AbstractState? {
                guard let (x, y) = pair else { return nil }
                var s = state
                var registers: [(Register, Interval)] = [(dst, x)]
                if case .register(let r) = operand { registers.append((r, y)) }
                for (r, interval) in registers {
                    switch s[r] {
                    case .contextLength:
                        guard let bounded = s.contextLength.intersection(interval) else { return nil }
                        s.contextLength = bounded
                    case .scalar(let old):
                        guard let bounded = old.intersection(interval) else { return nil }
                        s[r] = .scalar(bounded)
                    default: break
                    }
                }
                return s
            }
            if let taken = narrowed(refined.taken) { successors.append((slot + 1 + Int(offset), taken)) }
            if let notTaken = narrowed(refined.fallthrough) { successors.append((slot + 1, notTaken)) }
            return .goto(successors)

        case .callHelper(let id):
            return try callHelper(id, at: slot, &state)

        case .callRegister(let r):
            guard case .scalar(let v) = try read(r), let id = v.constant, let helper = Helper(rawValue: Int32(truncatingIfNeeded: id)),
                  UInt64(bitPattern: Int64(helper.rawValue)) == id else {
                throw reject(.unknownCallTarget, "r\(r.rawValue) does not hold one known helper id")
            }
            if let earlier = facts[slot].helper, earlier != helper {
                throw reject(.unknownCallTarget, "r\(r.rawValue) holds helper \(earlier.rawValue) on one path and \(helper.rawValue) on another")
            }
            facts[slot].helper = helper
            return try callHelper(helper.rawValue, at: slot, &state)

        case .callLocal(let offset):
            let target = slot + 1 + Int(offset)
            // The structural pass bounds the depth; a program that got past it anyway is
            // refused, never trapped on.
            guard depth < Limits.callDepthMax else {
                throw reject(.callDepth, "this call would nest \(depth + 1) deep; at most \(Limits.callDepthMax) is allowed")
            }
            var entry = state
            for r in [Register.r0, .r6, .r7, .r8, .r9] { entry[r] = .uninitialized }
            for r in [Register.r1, .r2, .r3, .r4, .r5] {
                if case .pointer(.stack, _) = state[r] {
                    throw reject(.stackAddressPassed, "r\(r.rawValue) holds a stack address; each function has its own stack")
                }
            }
            entry[.r10] = .pointer(.stack, .exactly(0))
            entry.stack = StackFrame(allWritten: false)
            guard let result = try analyze(function: function(at: target), entry: entry, depth: depth + 1) else { return .stop }
            state[.r0] = result
            for r in [Register.r1, .r2, .r3, .r4, .r5] { state[r] = .uninitialized }
            return .next

        case .exit:
            let r0 = try number(try read(.r0), "returns")
            return .exit(.scalar(r0))
        }
    }

    private func callHelper(_ id: Int32, at slot: Int, _ state: inout AbstractState) throws(VerificationError) -> Flow {
        func reject(_ rule: VerificationRule, _ detail: String) -> VerificationError {
            VerificationError(instruction: slot, rule: rule, detail: detail, registers: state.rendered)
        }
        guard let helper = Helper(rawValue: id), kind.helpers.contains(helper) else {
            if let helper = Helper(rawValue: id), kind.deterministic, !helper.isDeterministic {
                throw reject(.nondeterministic, "helper \(helper.name) is not deterministic; \(kind.name) programs must be")
            }
            throw reject(.helperNotAllowed, "helper \(id) is not offered to \(kind.name) programs")
        }
        var arguments: [Interval] = []
        for i in 0..<helper.argumentCount {
            let r = Register(rawValue: UInt8(1 + i))!
            switch state[r] {
            case .uninitialized: throw reject(.uninitializedRegister, "r\(r.rawValue), argument \(i + 1) of \(helper.name), is not written")
            case .scalar(let v): arguments.append(v)
            case .contextLength: arguments.append(state.contextLength)
            case .pointer, .conflicted: throw reject(.addressLeak, "r\(r.rawValue) passes an address to \(helper.name)")
            }
        }
        let result: Interval = switch helper {
        case .unwind: arguments[0]
        case .clockTicks: .full
        }
        for r in [Register.r1, .r2, .r3, .r4, .r5] { state[r] = .uninitialized }
        state[.r0] = .scalar(result)
        return .next
    }

    /// Where an access lands, as the verifier knows it.
    struct Access {
        /// Offsets of its first byte from the region's start (the stack: from r10).
        var offsets: Offsets
        /// For the stack: the frame's bytes (from its bottom) it may touch.
        var stackBytes: Range<Int>?
        /// For the stack: the byte index of the 8-byte slot it covers exactly, if it does.
        var spillSlot: Int?
    }

    /// Checks a memory access of `bytes` at `base + offset` and records how to make it.
    private func access(_ base: Register, _ offset: Int16, bytes: Int, reads: Bool, writes: Bool, at slot: Int,
                        _ state: inout AbstractState) throws(VerificationError) -> Access {
        func reject(_ rule: VerificationRule, _ detail: String) -> VerificationError {
            VerificationError(instruction: slot, rule: rule, detail: detail, registers: state.rendered)
        }
        let region: Region, offsets: Offsets
        switch state[base] {
        case .pointer(let r, let o): (region, offsets) = (r, o.moved(by: .constant(Semantics.immediate(Int32(offset))), negated: false))
        case .uninitialized: throw reject(.uninitializedRegister, "r\(base.rawValue) is read before it is written")
        case .conflicted: throw reject(.notAnAddress, "r\(base.rawValue) holds an address on some paths only")
        case .scalar, .contextLength: throw reject(.notAnAddress, "r\(base.rawValue) holds a number, not an address")
        }
        if writes && region == .context && !kind.contextWritable {
            throw reject(.readOnlyContext, "\(kind.name) programs may not write their context")
        }
        let size = Int64(bytes)
        // Valid byte range of the region: proved on this path, and at most.
        let (regionStart, provedEnd, possibleEnd): (Int64, Int64, Int64) = switch region {
        case .context: (0, Int64(state.contextLength.lo), Int64(state.contextLength.hi))
        case .stack: (-Int64(Limits.stackBytes), 0, 0)
        case .output: (0, Int64(kind.outputBytes), Int64(kind.outputBytes))
        }
        let what = "\(bytes) bytes at \(region.name)\(offsets.rendered)"
        // An unbounded address may land anywhere: only a run-time check can tell.
        let (lo, hi) = offsets.isBounded ? (offsets.lo, offsets.hi) : (Int64.min / 2, Int64.max / 2)
        let proved = offsets.isBounded && lo >= regionStart && hi + size <= provedEnd
        let possible = hi >= regionStart && lo + size <= possibleEnd
        if offsets.isExact && !proved {
            let limit = region == .context && provedEnd < possibleEnd
                ? "the \(provedEnd) bytes its length is known to be on this path" : "its \(possibleEnd - regionStart) bytes"
            throw reject(.outOfBounds, what + " is outside " + limit)
        }
        guard possible else { throw reject(.outOfBounds, what + " can never be inside the \(region.name)") }
        try record(proved ? .direct(region) : .guarded(region), offsets: offsets, at: slot, state: state)
        var result = Access(offsets: offsets)
        if region == .stack {
            let first = Int(max(lo, regionStart) - regionStart), last = Int(min(hi + size, 0) - regionStart)
            let span = first..<max(first, last)
            if reads && !state.stack.allWritten(span) {
                throw reject(.uninitializedStack, what + " includes bytes not written on this path")
            }
            result.stackBytes = span
            if offsets.isExact && bytes == 8 && first % 8 == 0 { result.spillSlot = first }
        }
        return result
    }
}

extension Interval {
    /// The signed range `lo...hi` as unsigned numbers (all of them when it spans zero).
    init(signedFrom lo: Int64, to hi: Int64) {
        if lo >= 0 || hi < 0 {
            self.init(lo: UInt64(bitPattern: lo), hi: UInt64(bitPattern: hi))
        } else {
            self = .full
        }
    }
}
