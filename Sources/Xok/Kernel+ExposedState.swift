// Writing the exposed kernel state (layout in XokABI/ExposedState.swift) after every
// change. The generation is odd while the page is being written and even after.

import XokABI

extension Kernel {
    func publish() {
        func put32(_ v: UInt32, _ at: Int) { for i in 0..<4 { exposed[at + i] = UInt8(truncatingIfNeeded: v >> UInt32(8 * i)) } }
        func put64(_ v: UInt64, _ at: Int) { for i in 0..<8 { exposed[at + i] = UInt8(truncatingIfNeeded: v >> UInt64(8 * i)) } }
        generation += 1
        put64(generation, ExposedState.generationOffset)
        put32(ExposedState.magic, 0)
        put32(ExposedState.version, 4)
        put64(host.ticks, ExposedState.clockOffset)
        put32(UInt32(frames.count), ExposedState.framesTotalOffset)
        put32(UInt32(frames.filter { $0 == nil }.count), ExposedState.framesFreeOffset)
        put32(UInt32(environments.filter { $0 != nil }.count), ExposedState.environmentsOffset)
        put32(UInt32(KernelLimits.slices), ExposedState.slicesOffset)
        for (i, owner) in sliceVector.enumerated() { put32(owner?.rawValue ?? 0, ExposedState.sliceVectorOffset + 4 * i) }
        for (i, entry) in environments.enumerated() {
            let base = ExposedState.environmentTableOffset + i * ExposedState.environmentEntryBytes
            put32(entry?.id.rawValue ?? 0, base)
            put32(entry?.asleep == true ? 1 : 0, base + 4)
            put32(UInt32(entry?.bindings.count ?? 0), base + 8)
            put32(UInt32(entry?.messages.count ?? 0), base + 12)
        }
        generation += 1
        put64(generation, ExposedState.generationOffset)
    }
}
