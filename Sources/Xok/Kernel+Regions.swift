// Software regions (DESIGN.md §3): byte-granular protected memory, read and written only
// through calls with every access bounds-checked; for sharing finer than a page.

import XokABI

struct RegionRecord {
    var owner: EnvironmentID
    var acl: AccessControlList
    var bytes: [UInt8]
    /// Bumped on every write, so predicates that read the region are rerun.
    var version: UInt64 = 0
}

extension Kernel {
    @discardableResult
    func regionRecord(_ region: RegionID, _ caller: EnvironmentID, _ credential: CapabilitySlot, needs needed: Rights) throws(KernelError) -> RegionRecord {
        guard let record = regions[region] else { throw .noSuchRegion }
        try authorize(caller, credential, record.acl, needed)
        return record
    }

    func createRegion(_ caller: EnvironmentID, _ credential: CapabilitySlot, acl: AccessControlList, size: UInt32) throws(KernelError) -> RegionID {
        try authorize(caller, credential, systemACLs.regions, .write)
        guard size > 0, size <= UInt32(KernelLimits.regionBytesMax) else { throw .invalidArgument }
        guard self[caller].regionsOwned < KernelLimits.regionsPerEnvironment else { throw .limitExceeded }
        let id = RegionID(rawValue: nextRegion)
        nextRegion += 1
        regions[id] = RegionRecord(owner: caller, acl: acl, bytes: Array(repeating: 0, count: Int(size)))
        self[caller].regionsOwned += 1
        return id
    }

    func readRegion(_ caller: EnvironmentID, _ credential: CapabilitySlot, _ region: RegionID, offset: UInt32, length: UInt32) throws(KernelError) -> [UInt8] {
        let record = try regionRecord(region, caller, credential, needs: .read)
        let start = Int(offset), count = Int(length)
        guard start <= record.bytes.count, count <= record.bytes.count - start else { throw .outOfBounds }
        return Array(record.bytes[start..<start + count])
    }

    func writeRegion(_ caller: EnvironmentID, _ credential: CapabilitySlot, _ region: RegionID, offset: UInt32, bytes: [UInt8]) throws(KernelError) {
        let record = try regionRecord(region, caller, credential, needs: .write)
        let start = Int(offset)
        guard start <= record.bytes.count, bytes.count <= record.bytes.count - start else { throw .outOfBounds }
        regions[region]!.bytes.replaceSubrange(start..<start + bytes.count, with: bytes)
        regions[region]!.version += 1
    }

    func removeRegion(_ region: RegionID) {
        let owner = regions[region]!.owner
        if environmentIndex(owner) != nil { self[owner].regionsOwned -= 1 }
        regions[region] = nil
    }
}
