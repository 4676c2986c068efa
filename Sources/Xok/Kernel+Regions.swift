// Software regions (DESIGN.md §3): byte-granular protected memory, read and written only
// through calls with every access bounds-checked; for sharing finer than a page.

import XokABI

struct RegionRecord {
    var owner: EnvironmentID
    var acl: AccessControlList
    var bytes: [UInt8]
}

extension Kernel {
    @discardableResult
    func regionRecord(_ region: RegionID, _ caller: EnvironmentID, _ credential: CapabilitySlot, needs needed: Rights) throws(KernelError) -> RegionRecord {
        let index = region.index
        guard index < regionGenerations.count, let record = regions[index], regionGenerations[index] == region.generation else { throw .noSuchRegion }
        try authorize(caller, credential, record.acl, needed)
        return record
    }

    /// The region `region` names, if it exists.
    func regionIfLive(_ region: RegionID) -> RegionRecord? {
        let index = region.index
        guard index < regionGenerations.count, regionGenerations[index] == region.generation else { return nil }
        return regions[index]
    }

    func createRegion(_ caller: EnvironmentID, _ credential: CapabilitySlot, acl: AccessControlList, size: UInt32) throws(KernelError) -> RegionID {
        try authorize(caller, credential, systemACLs.regions, .write)
        guard size > 0, size <= UInt32(KernelLimits.regionBytesMax) else { throw .invalidArgument }
        guard regions.count < regionGenerations.count, let index = regionGenerations.indices.first(where: { regions[$0] == nil }) else { throw .exhausted }
        try charge(caller, Quota(regions: 1))
        var generation = (regionGenerations[index] &+ 1) & (UInt32.max >> RegionID.indexBits)
        if generation == 0 { generation = 1 }
        regionGenerations[index] = generation
        regions[index] = RegionRecord(owner: caller, acl: acl, bytes: Array(repeating: 0, count: Int(size)))
        return RegionID(index: index, generation: generation)
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
        regions[region.index]!.bytes.replaceSubrange(start..<start + bytes.count, with: bytes)
        regionVersion &+= 1
    }

    func removeRegion(_ region: RegionID) {
        let owner = regions[region.index]!.owner
        refund(owner, Quota(regions: 1))
        regions[region.index] = nil
        regionVersion &+= 1
    }
}
