// Random and mutated requests from several environments — two honest tree file systems,
// init, and one that sends anything — through `LocalPort`'s raw bytes, with XN mounted.
// After every request every invariant holds; a sample of refused requests is checked to
// have changed nothing at all (the whole-state digest). XOK_FUZZ_REQUESTS sets the count.

import Foundation
import Testing
import TreeFS
import TreeFSUDFs
import Xok
import XokABI
import XokSimulation

@Suite struct KernelFuzz {
    static let requests = ProcessInfo.processInfo.environment["XOK_FUZZ_REQUESTS"].flatMap(Int.init) ?? 100_000

    @Test func randomAndMutatedRequestsNeverTrapOrBreakAnInvariant() throws {
        var rng = SeededRandom(seed: 0x5eed)
        let w = World(frames: 256, diskBlocks: 768)
        let t = try w.trees()
        let ports = [w.root, w.a, w.b, w.port(try w.root.createEnvironment(credential: CapabilitySlot(0), acl: acl(.root),
                                                                               grants: [CapabilitySlot(0)], quota: Quota(frames: 16, regions: 2, messages: 8)))]
        var blocks: [BlockNumber] = [t.rootA, t.dir, t.file, t.rootB, 0, 1, 511, 767, 768, .max]
        var frames: [FrameNumber] = [FrameNumber(rawValue: 0), FrameNumber(rawValue: 255), FrameNumber(rawValue: 256), FrameNumber(rawValue: .max)]
        var regions: [RegionID] = [RegionID(rawValue: 0), RegionID(rawValue: .max)]
        func pick<T>(_ xs: [T]) -> T { xs[Int(rng.next() % UInt64(xs.count))] }
        func number(_ small: UInt64) -> UInt64 { rng.next() % 4 == 0 ? pick([0, 1, UInt64(UInt32.max), .max, 4095, 4096]) : rng.next() % small }
        func slot() -> CapabilitySlot { CapabilitySlot(rng.next() % 8 == 0 ? Int(pick([32, 33, 65_535])) : Int(rng.next() % 10)) }
        func bytes(_ max: Int) -> [UInt8] { (0..<Int(rng.next() % UInt64(max + 1))).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
        func changes() -> XNChanges {
            switch rng.next() % 4 {
            case 0: return .inline([(Int(truncatingIfNeeded: number(4096)), bytes(16)), (Int(truncatingIfNeeded: number(4096)), bytes(4))])
            case 1: return XNChanges(ranges: [.init(offset: UInt16(truncatingIfNeeded: number(4096)), length: UInt16(truncatingIfNeeded: number(64)))],
                                     bytes: bytes(8), source: rng.next() % 2 == 0 ? pick(frames) : nil)
            case 2: return .none
            default: return .inline([(entry(Int(rng.next() % 255)), Tree.entry(pick(blocks), TypeID(rawValue: UInt32(rng.next() % 4)))),
                                     (0, [UInt8](repeating: 0xff, count: 8))])
            }
        }
        func request() -> KernelRequest {
            let aclValue = (try? AccessControlList([try Capability(name: [number(200)], rights: Rights(rawValue: UInt8(rng.next() % 8)))])) ?? acl()
            let name = rng.next() % 3 == 0 ? bytes(31) : Array(pick(["tree", "list", "a", "b", "x"]).utf8)
            let span = FrameSpan(frame: pick(frames), length: UInt32(truncatingIfNeeded: number(5000)))
            switch rng.next() % 30 {
            case 0: return .capabilityDerive(source: slot(), appending: (0..<Int(rng.next() % 10)).map { _ in number(300) }, rights: Rights(rawValue: UInt8(rng.next() % 8)))
            case 1: return .environmentCreate(credential: slot(), acl: aclValue, grants: [slot()],
                                              quota: Quota(environments: UInt32(truncatingIfNeeded: number(4)), frames: UInt32(truncatingIfNeeded: number(8)), blocks: number(8)))
            case 2: return .environmentDestroy(credential: slot(), EnvironmentID(rawValue: UInt32(truncatingIfNeeded: number(5000))))
            case 3, 4: return .frameAllocate(credential: slot(), acl: aclValue)
            case 5: return .frameMap(credential: slot(), pick(frames), writable: rng.next() % 2 == 0)
            case 6: return .frameFree(credential: slot(), pick(frames))
            case 7: return .regionCreate(credential: slot(), acl: aclValue, size: UInt32(truncatingIfNeeded: number(70_000)))
            case 8: return .regionWrite(credential: slot(), pick(regions), offset: UInt32(truncatingIfNeeded: number(100)), bytes: bytes(32))
            case 9: return .ipcSend(credential: slot(), target: pick(ports).environment, message: bytes(300))
            case 10: return .upcallNext
            case 11: return .xnInstallType(credential: slot(), name: name, owns: [span], acl: [span, span], size: [span], shareable: rng.next() % 2 == 0)
            case 12: return .xnCreateRoot(credential: slot(), name: name, type: TypeID(rawValue: UInt32(rng.next() % 5)), protection: slot(), frame: pick(frames))
            case 13, 14: return .xnReadIn(credential: slot(), pick(blocks), frame: pick(frames))
            case 15: return .xnRead(credential: slot(), pick(blocks), into: pick(frames))
            case 16: return .xnMap(credential: slot(), pick(blocks), writable: rng.next() % 2 == 0)
            case 17, 18:
                // Batches up to one past the limit, with repeats now and then.
                let batch = Int(rng.next() % UInt64(KernelLimits.xnBatchMax + 2))
                let operation: XNOperation = switch rng.next() % 7 {
                case 0: .write
                case 1: .allocate(rng.next() % 2 == 0 ? number(800) : pick(blocks), TypeID(rawValue: UInt32(rng.next() % 4)), frame: pick(frames))
                case 2: .free(pick(blocks))
                case 3: .allocateMany((0..<batch).map { _ in rng.next() % 2 == 0 ? number(800) : pick(blocks) }, TypeID(rawValue: UInt32(rng.next() % 4)),
                                      frames: (0..<(rng.next() % 8 == 0 ? batch + 1 : batch)).map { _ in pick(frames) })
                case 4: .freeMany((0..<batch).map { _ in pick(blocks) })
                case 5: .link(rng.next() % 8 == 0 ? number(800) : pick(blocks))
                default: .swap
                }
                return .xnModify(credential: slot(), pick(blocks), operation, changes())
            case 19: return .xnWriteData(credential: slot(), pick(blocks), changes())
            case 20: return .xnWriteback((0..<Int(rng.next() % 4)).map { _ in pick(blocks) })
            case 21: return .xnEvict(credential: slot(), pick(blocks))
            case 22: return .xnFindFree(from: number(1000))
            case 24: return .frameAllocateMany(credential: slot(), acl: aclValue, count: UInt16(rng.next() % UInt64(KernelLimits.xnBatchMax + 2)))
            case 23:
                let count = Int(rng.next() % UInt64(KernelLimits.xnBatchMax + 2))
                return .xnMapMany(credential: slot(), blocks: (0..<count).map { _ in pick(blocks) },
                                  frames: (0..<(rng.next() % 8 == 0 ? count + 1 : count)).map { _ in pick(frames) })
            case 25:
                // Moves between any two blocks, with ranges and landings at the edges.
                func edge() -> UInt16 {
                    UInt16(truncatingIfNeeded: pick([0, 16, 32, 4080, 4095, 4096, 4097, 65_535, entry(Int(rng.next() % 255))]))
                }
                let offset = edge(), length = rng.next() % 2 == 0 ? UInt16(16) : edge(), at = edge()
                return .xnMove(credential: slot(), source: pick(blocks), range: XNChanges.Range(offset: offset, length: length),
                               destination: pick(blocks), at: at, edits: changes())
            case 26:
                // Batches up to one past the limit, with repeats now and then.
                let count = Int(rng.next() % UInt64(KernelLimits.xnBatchMax + 2))
                return .frameUnmapMany((0..<count).map { _ in pick(frames) })
            case 27, 28:
                // Loads and stores at the page's edges and past them.
                let offset = UInt16(truncatingIfNeeded: pick([0, 1, 4088, 4095, 4096, 4097, 65_535, number(4096)]))
                if rng.next() % 2 == 0 { return .frameLoad(pick(frames), offset: offset, count: UInt16(truncatingIfNeeded: pick([0, 1, 8, 4096, 4097, number(5000)]))) }
                return .frameStore(pick(frames), offset: offset, bytes: bytes(Int(pick([1, 8, 4096]))))
            default: return .xnLookupRoot(name: name)
            }
        }
        var refusedChecked = 0, accepted = 0
        for i in 0..<Self.requests {
            let port = pick(ports)
            var wire = request().encoded
            switch rng.next() % 8 {
            case 0: for _ in 0..<(1 + rng.next() % 4) { wire[Int(rng.next() % UInt64(wire.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            case 1: wire.removeLast(Int(rng.next() % UInt64(wire.count)))
            case 2: wire += bytes(16)
            case 3 where rng.next() % 4 == 0: wire = bytes(64)
            default: break
            }
            let sample = i % 97 == 0
            let before = sample ? w.kernel.stateDigest() : nil
            do {
                let reply = try port.perform(raw: wire)
                accepted += 1
                switch reply {
                case .frame(let f): frames.append(f)
                case .region(let r): regions.append(r)
                case .block(let b): blocks.append(b)
                default: break
                }
            } catch {
                if let before {
                    #expect(w.kernel.stateDigest() == before, "request \(i) was refused (\(error)) but changed the kernel: \(wire)")
                    refusedChecked += 1
                }
            }
            if rng.next() % 500 == 0 { w.kernel.kill(ports[3].environment) }
            let broken = w.kernel.checkInvariants()
            if !broken.isEmpty {
                Issue.record("request \(i) from env \(port.environment.rawValue) (\(wire)): \(broken)")
                return
            }
        }
        #expect(accepted > Self.requests / 100, "the fuzzer reaches past decoding")
        #expect(refusedChecked > 100)
    }
}
