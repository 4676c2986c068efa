// Seeded simulation of several library OSes calling the kernel at random: mostly sensible
// calls aimed at objects that exist, mixed with forged slots, foreign frames, oversized
// requests and deaths. After every step the kernel's invariants are checked, and the
// host's MMU is compared with the kernel's bindings. A failure names its seed and step.

import BPF
import Xok
import XokABI

/// One seeded run.
public struct Simulation {
    public let seed: UInt64
    public let steps: Int
    public let frameCount: Int

    public init(seed: UInt64, steps: Int = 200, frameCount: Int = 64) {
        self.seed = seed
        self.steps = steps
        self.frameCount = frameCount
    }

    /// What a run did.
    public struct Report: Sendable {
        /// Calls made, and how many the kernel refused.
        public var calls = 0
        public var refused = 0
        /// Memory accesses that faulted because the binding was gone (all expected).
        public var faults = 0
        /// Environments that died during the run.
        public var deaths = 0
        /// The first inconsistency found, with the seed and step that reproduce it.
        public var failure: String?
    }

    public func run() -> Report {
        var rng = SeededRandom(seed: seed)
        let kernel = Kernel(host: SimulatedHost(frameCount: frameCount))
        var report = Report()
        let root = LocalPort(kernel: kernel, environment: kernel.initEnvironment)
        // Objects each environment knows of, so most calls aim at something real.
        var known = Known()

        func pick<T>(_ items: [T]) -> T? { items.isEmpty ? nil : items[Int(rng.next() % UInt64(items.count))] }
        func chance(_ percent: UInt64) -> Bool { rng.next() % 100 < percent }
        // Children hold the root in slot 0 and derived capabilities above it; now and then
        // a slot is empty, forged past the list, or holds too weak a capability.
        func slot() -> CapabilitySlot {
            chance(50) ? CapabilitySlot(0) : chance(80) ? CapabilitySlot(Int(rng.next() % 6)) : CapabilitySlot(Int(rng.next() % 40))
        }
        // A share of the machine: mostly modest, now and then all of it or more.
        func quota() -> Quota {
            if chance(5) { return Quota(environments: .max, frames: .max, regions: 1, slices: 1, messages: 1, blocks: 0, catalogueEntries: 0) }
            let n = UInt32(rng.next() % 8)
            return Quota(environments: n, frames: n * 8, regions: n, slices: n % 3, messages: n * 4, blocks: 0, catalogueEntries: 0)
        }
        func acl(for env: EnvironmentID) -> AccessControlList {
            let name: [UInt64] = chance(70) ? [] : [rng.next() % 5]
            let rights: Rights = pick([[.read], [.read, .write], .all]) ?? .all
            return try! AccessControlList([try! Capability(name: name, rights: rights)])
        }

        // A few children of init, each given capabilities for every system ACL.
        for _ in 0..<4 {
            if let child = try? root.createEnvironment(credential: CapabilitySlot(0), acl: acl(for: kernel.initEnvironment),
                                                       grants: [CapabilitySlot(0)], quota: quota()) {
                known.environments.append(child)
            }
        }
        known.environments.append(kernel.initEnvironment)

        for step in 0..<steps {
            // Mostly the environment the scheduler is running; sometimes any other, as a
            // library OS on another CPU (under xokd) may call at any time.
            let live = kernel.environmentIDs
            guard let anyone = pick(live) else { break }
            let actor = kernel.running.map { chance(70) ? $0 : anyone } ?? anyone
            let port = LocalPort(kernel: kernel, environment: actor)
            let request = randomRequest(random: { rng.next() }, actor: actor, known: known, slot: slot, acl: acl, quota: quota)
            switch rng.next() % 20 {
            case 0:
                kernel.host.advanceClock(by: rng.next() % 50)
                kernel.advance()
            case 1:
                _ = kernel.beginSlice()
                if chance(20) { _ = try? LocalPort(kernel: kernel, environment: actor).allocate(SliceIndex(rawValue: UInt32(rng.next() % 16)), credential: slot()) }
            case 2:
                // A memory access through the MMU must succeed exactly when the kernel
                // says the binding exists (and is writable, for a store).
                if let frame = pick(known.frames) {
                    let binding = kernel.binding(of: frame, in: actor)
                    let write = chance(50)
                    do {
                        if write { try kernel.host.store(actor, frame, offset: 7, 1) } else { _ = try kernel.host.load(actor, frame, offset: 7) }
                        if binding == nil || (write && binding == false) {
                            report.failure = "seed \(seed) step \(step): env \(actor.rawValue) touched frame \(frame.rawValue) without a binding"
                        }
                    } catch {
                        report.faults += 1
                        if binding == true || (!write && binding == false) {
                            report.failure = "seed \(seed) step \(step): env \(actor.rawValue) faulted on frame \(frame.rawValue) it holds"
                        }
                    }
                }
            case 3 where chance(30) && actor != kernel.initEnvironment:
                kernel.kill(actor)
                report.deaths += 1
            default:
                report.calls += 1
                do {
                    let reply = try port.perform(request)
                    known.learn(reply)
                } catch {
                    report.refused += 1
                }
            }
            if report.failure == nil, let broken = kernel.checkInvariants().first {
                report.failure = "seed \(seed) step \(step): \(broken) (after \(request))"
            }
            if report.failure == nil, let mismatch = mmuMismatch(kernel) {
                report.failure = "seed \(seed) step \(step): \(mismatch)"
            }
            if report.failure != nil { break }
        }
        return report
    }

    /// A binding the MMU and the kernel disagree on, if any.
    private func mmuMismatch(_ kernel: Kernel<SimulatedHost>) -> String? {
        for (frame, holders) in kernel.host.mmu.sorted(by: { $0.key < $1.key }) {
            for (env, writable) in holders.sorted(by: { $0.key < $1.key }) where kernel.binding(of: frame, in: env) != writable {
                return "MMU binds frame \(frame.rawValue) into env \(env.rawValue), the kernel does not"
            }
        }
        for env in kernel.environmentIDs {
            for f in 0..<frameCount {
                let frame = FrameNumber(rawValue: UInt32(f))
                if let writable = kernel.binding(of: frame, in: env), kernel.host.mmu[frame]?[env] != writable {
                    return "kernel binds frame \(f) into env \(env.rawValue), the MMU does not"
                }
            }
        }
        return nil
    }

    private func randomRequest(random: () -> UInt64, actor: EnvironmentID, known: Known, slot: () -> CapabilitySlot,
                               acl: (EnvironmentID) -> AccessControlList, quota: () -> Quota) -> KernelRequest {
        func pick<T>(_ items: [T], orElse fallback: T) -> T { items.isEmpty ? fallback : items[Int(random() % UInt64(items.count))] }
        let env = pick(known.environments, orElse: EnvironmentID(rawValue: 999))
        let frame = random() % 10 == 0 ? FrameNumber(rawValue: UInt32(random() % 200)) : pick(known.frames, orElse: FrameNumber(rawValue: 0))
        let region = pick(known.regions, orElse: RegionID(rawValue: 1))
        let size = UInt32(random() % 10 == 0 ? random() % 100_000 : 1 + random() % 256)
        switch random() % 22 {
        case 0: return .capabilityDerive(source: slot(), appending: random() % 4 == 0 ? [1, 2, 3, 4, 5] : [random() % 5],
                                         rights: Rights(rawValue: UInt8(random() % 8)))
        case 1: return .capabilityDrop(CapabilitySlot(Int(random() % 8) + 2))
        case 2: return .environmentCreate(credential: slot(), acl: acl(actor), grants: random() % 2 == 0 ? [slot()] : [], quota: quota())
        case 3 where random() % 4 == 0: return .environmentDestroy(credential: slot(), env)
        case 4: return .environmentSetMessageACL(acl(actor))
        case 5, 6: return .frameAllocate(credential: slot(), acl: acl(actor))
        case 7: return .frameFree(credential: slot(), frame)
        case 8: return .frameSetACL(credential: slot(), frame, acl(actor))
        case 9, 10: return .frameMap(credential: slot(), frame, writable: random() % 2 == 0)
        case 11: return .frameUnmap(frame)
        case 12: return .frameRevoke(credential: slot(), frame, graceTicks: random() % 100)
        case 13: return .regionCreate(credential: slot(), acl: acl(actor), size: size)
        case 14: return .regionRead(credential: slot(), region, offset: UInt32(random() % 300), length: UInt32(random() % 300))
        case 15: return .regionWrite(credential: slot(), region, offset: UInt32(random() % 300), bytes: [UInt8](repeating: 7, count: Int(random() % 64)))
        case 16: return .regionDestroy(credential: slot(), region)
        case 17: return .ipcSend(credential: slot(), target: env, message: [UInt8](repeating: 1, count: Int(random() % 300)))
        case 18: return .upcallNext
        case 19:
            // Sleep until the clock passes a point, or a region's first byte is set.
            let program = random() % 2 == 0 ? Known.clockPredicate(after: random() % 200) : Known.regionBytePredicate
            return .predicateInstall(credential: slot(), program: program, region: random() % 2 == 0 ? region : nil)
        case 20: return .sliceAllocate(credential: slot(), SliceIndex(rawValue: UInt32(random() % 20)))
        default: return random() % 2 == 0 ? .sliceFree(SliceIndex(rawValue: UInt32(random() % 16))) : .yield(to: random() % 2 == 0 ? env : nil)
        }
    }
}

/// Names a run has seen, to aim calls at.
struct Known {
    var environments: [EnvironmentID] = []
    var frames: [FrameNumber] = []
    var regions: [RegionID] = []

    mutating func learn(_ reply: KernelReply) {
        switch reply {
        case .environment(let e): environments.append(e)
        case .frame(let f): frames.append(f)
        case .region(let r): regions.append(r)
        default: break
        }
    }

    /// A predicate true once the exposed clock reaches `ticks`.
    static func clockPredicate(after ticks: UInt64) -> [UInt8] {
        var b = ProgramBuilder()
        let asleep = b.makeLabel()
        b.mov(.r0, 1)
        b.branch(.lt, .r2, .immediate(Int32(ExposedState.clockOffset + 8)), to: asleep)
        b.load(.double, .r2, from: .r1, offset: Int16(ExposedState.clockOffset))
        b.mov(.r0, 0)
        b.branch(.lt, .r2, .immediate(Int32(ticks)), to: asleep)
        b.mov(.r0, 1)
        b.bind(asleep)
        b.exit()
        return try! b.build().bytes
    }

    /// A predicate true once the first byte of the named region (after the exposed state,
    /// whose length the header gives) is nonzero.
    static let regionBytePredicate: [UInt8] = try! Assembler.assemble("""
        mov r0, 1
        jlt r2, \(ExposedState.totalBytesOffset + 4), +4
        ldxw r3, [r1+\(ExposedState.totalBytesOffset)]
        add r1, r3
        ldxb r0, [r1+0]
        exit
        exit
        """).bytes
}
