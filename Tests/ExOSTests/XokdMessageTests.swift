// The daemon's socket messages decoded at their edges: what a hostile client may send is
// refused whole (nil, and the daemon hangs up), never half-read; what the daemon sends
// round-trips. The real exchange is tested with processes in XNTests/XokdProcessTests.

import Testing
import XokABI
@testable import XokTools

@Suite struct XokdMessages {
    typealias Spawn = Xokd.SpawnRequest

    func slots(_ count: Int) -> [CapabilitySlot] { (0..<count).map { CapabilitySlot(rawValue: UInt16($0)) } }

    @Test func aSpawnRequestRoundTripsUpToTheSlotLimit() throws {
        for grants in [slots(0), slots(1), slots(7), slots(KernelLimits.capabilitySlots),
                       [CapabilitySlot(rawValue: UInt16.max), CapabilitySlot(rawValue: 0)]] {
            let request = Spawn(credential: CapabilitySlot(rawValue: UInt16.max), grants: grants)
            #expect(Spawn(decoding: request.encoded) == request)
        }
    }

    @Test func aSpawnRequestThatIsNotWholeIsRefused() {
        let good = Spawn(credential: Xokd.environmentsSlot, grants: slots(3)).encoded
        var refused: [[UInt8]] = [[], Array(good.prefix(3)), Array(good.prefix(4)), Array(good.prefix(5)), Array(good.dropLast())]
        refused.append([0x58, 0x4F, 0x4B, 0x54] + good.dropFirst(4))                        // another magic
        refused.append(Spawn(credential: Xokd.environmentsSlot, grants: slots(KernelLimits.capabilitySlots + 1)).encoded)  // one past
        refused.append(Array("XOKSgarbage".utf8))
        for bytes in refused { #expect(Spawn(decoding: bytes) == nil, "\(bytes)") }
        #expect(Spawn(decoding: good) != nil)
    }

    @Test func aWelcomeRoundTripsAndAnythingElseIsRefused() {
        let welcome = Xokd.Welcome(environment: EnvironmentID(rawValue: UInt32.max), uid: UInt32.max, gid: 0)
        #expect(Xokd.Welcome(decoding: welcome.encoded) == welcome)
        #expect(Xokd.Welcome(decoding: Array(welcome.encoded.dropLast())) == nil)
        #expect(Xokd.Welcome(decoding: welcome.encoded + [0]) == nil)
        #expect(Xokd.Welcome(decoding: [0] + welcome.encoded.dropFirst()) == nil)
    }
}
