// C-FFS under power failures, as `xok sim --cffs` runs it, and C-FFS's fsck on images
// damaged on purpose. CFFS_SIMULATION_SEEDS runs more seeds.

import CFFS
import ExOS
import Foundation
import Testing
import XN
import XokABI
import XokSimulation

@Suite struct CFFSCrashSimulation {
    static let seeds = ProcessInfo.processInfo.environment["CFFS_SIMULATION_SEEDS"].flatMap(Int.init) ?? 12

    @Test func workloadsWithACrashRecoverWithSyncedFilesAndRenamesIntact() {
        var total = XNSimulationReport()
        for seed in 1...UInt64(Self.seeds) { total.add(CFFSSimulation.run(seed: seed, crash: true)) }
        #expect(total.violations == [])
        #expect(total.crashPoints > Self.seeds / 2, "most runs reach their crash point")
    }

    @Test func everyCrashPointOfASmallWorkloadRecovers() {
        let report = CFFSSimulation.exhaustive(seed: 3)
        #expect(report.violations == [])
        #expect(report.crashPoints == report.runs && report.runs > 5)
    }
}

@Suite struct CFFSFsck {
    /// A synced tree, the disk as it stands, and C-FFS's root block.
    func tree() throws -> (m: Machine, superblock: BlockNumber) {
        let m = try Machine()
        try m.root.mkdir("/d")
        try m.root.mkdir("/d/e")
        try m.root.put("/d/f", pattern(40_000))   // through an indirect block
        try m.root.put("/d/g", [1, 2, 3])
        try m.root.symlink("f", "/d/l")
        try m.root.sync()
        return (m, m.root.fs.superblock)
    }

    func check(_ m: Machine, _ superblock: BlockNumber, damage: (inout SimulatedDisk) -> Void = { _ in }) -> CFFSCheckReport {
        var disk = m.xn.device
        damage(&disk)
        return CFFSCheck.check(superblock: superblock) { block in try? disk.read([block]).first }
    }

    @Test func aCleanTreeIsClean() throws {
        let (m, superblock) = try tree()
        let report = check(m, superblock)
        #expect(report.violations == [])
        #expect(report.notes == [])
        #expect((report.directories, report.files, report.symlinks) == (3, 2, 1))
        #expect(report.dataBlocks == 10 + 1 + 1)
    }

    @Test func damageIsFoundAndNamed() throws {
        let (m, superblock) = try tree()
        let d = try #require(try m.root.fs.lookup(Array("d".utf8), in: .root))
        let dBlock = try m.root.fs.inode(d).pointers[0]
        let f = try #require(try m.root.fs.lookup(Array("f".utf8), in: d))
        let g = try #require(try m.root.fs.lookup(Array("g".utf8), in: d))
        let e = try #require(try m.root.fs.lookup(Array("e".utf8), in: d))
        let indirect = try m.root.fs.inode(f).pointers[CFFSLayout.directCount]
        let at = { (slot: Int) in CFFSLayout.slotOffset(slot) }
        let cases: [(String, (inout SimulatedDisk) -> Void)] = [
            ("/d/g: link count field 2 (a file\'s names are counted, not stored; 1 expected)", { $0.corrupt(g.block) { $0[at(g.slot) + CFFSLayout.eNlink] = 2 } }),
            ("/d/f: the name appears twice in its directory", { disk in
                disk.corrupt(g.block) { b in
                    b[at(g.slot) + CFFSLayout.eNameLength] = 1
                    b[at(g.slot) + CFFSLayout.eName] = UInt8(ascii: "f")
                }
            }),
            ("/d: slot \(g.slot) of block \(g.block) has an invalid name", { disk in
                disk.corrupt(g.block) { b in b[at(g.slot) + CFFSLayout.eName] = UInt8(ascii: "/") }
            }),
            ("/d: slot \(g.slot) of block \(g.block) has an invalid name", { disk in
                disk.corrupt(g.block) { b in b[at(g.slot) + CFFSLayout.eNameLength] = 121 }
            }),
            ("/d: block \(dBlock) carries owner 7:0 mode 040755, the directory is 0:0 040755", { disk in
                disk.corrupt(dBlock) { b in b[CFFSLayout.uid] = 7 }
            }),
            ("/d/f: indirect block \(indirect) says level 2, it is at level 1", { disk in
                disk.corrupt(indirect) { b in b[CFFSLayout.level] = 2 }
            }),
            ("/d/e: block \(dBlock) belongs to another directory too", { disk in
                // e's entry points back at its own parent's block: a loop fsck must end.
                disk.corrupt(dBlock) { b in
                    let at = CFFSLayout.slotOffset(e.slot) + CFFSLayout.eDirect
                    b.replaceSubrange(at..<at + 8, with: (0..<8).map { UInt8(truncatingIfNeeded: dBlock >> (8 * UInt64($0))) })
                }
            }),
            ("/d/g: slot \(g.slot) of block \(g.block) has unknown file type 010000", { disk in
                disk.corrupt(g.block) { b in b[at(g.slot) + 1] = 0x10; b[at(g.slot) + 2] = 0 }
            }),
        ]
        for (expected, damage) in cases {
            let report = check(m, superblock, damage: damage)
            #expect(report.violations.contains(expected), "\(report.violations)")
        }
        // A block past the end (what a crash can leave) is a note, not a violation.
        let report = check(m, superblock) { disk in disk.corrupt(f.block) { b in b.replaceSubrange(at(f.slot) + CFFSLayout.eSize..<at(f.slot) + CFFSLayout.eSize + 8, with: [0x10, 0, 0, 0, 0, 0, 0, 0]) } }
        #expect(report.violations == [])
        #expect(report.notes.count == 10)
    }
}
