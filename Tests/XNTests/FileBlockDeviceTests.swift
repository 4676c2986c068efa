// The image file under XN: writes straight from pages land where they were asked, in runs
// longer than one vectored write can take, across gaps, through the page cache and with
// O_DIRECT alike; a write naming a block past the end or a short buffer is refused before
// anything is written; and an image open read-write is refused to a second opener, even
// one that would create it afresh, until the first lets go.

import Foundation
import Testing
import XN
import XokABI
import XokHostLinux

@Suite struct FileBlockDevices {
    /// A page per block, each filled with a pattern of its block number.
    static func pages(_ blocks: [BlockNumber]) -> [[UInt8]] {
        blocks.map { b in (0..<XNLayout.blockBytes).map { UInt8(truncatingIfNeeded: Int(b) &* 31 &+ $0 / 8) } }
    }

    /// Runs `body` with the pages laid out in memory the test owns, as frames are.
    static func withPages(_ pages: [[UInt8]], _ body: ((Int) -> UnsafeRawBufferPointer) throws -> Void) rethrows {
        let stride = XNLayout.blockBytes
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, pages.count) * stride, alignment: stride)
        defer { memory.deallocate() }
        for (i, page) in pages.enumerated() { memory.baseAddress!.advanced(by: i * stride).copyMemory(from: page, byteCount: page.count) }
        try body { i in UnsafeRawBufferPointer(start: memory.baseAddress! + i * stride, count: pages[i].count) }
    }

    static func imagePath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("xok-device-\(UUID().uuidString).img").path
    }

    @Test(arguments: [false, true])
    func writesFromPagesLandInPlace(direct: Bool) throws {
        let path = Self.imagePath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let device = try FileBlockDevice.create(path: path, blocks: 3000, direct: direct)
        // A run of 1,500 (past the 1,024 vectors of one pwritev), a gap, single blocks, the last block.
        let blocks = Array(10..<1510) + [1600, 1602, 1603, 2999].map { BlockNumber($0) }
        let contents = Self.pages(blocks)
        try Self.withPages(contents) { page in try device.write(blocks, from: page) }
        try device.barrier()
        let reopened = try FileBlockDevice.open(path: path, readOnly: true)
        #expect(try reopened.read(blocks) == contents)
        #expect(try reopened.read([9, 1510, 1601]) == Array(repeating: [UInt8](repeating: 0, count: XNLayout.blockBytes), count: 3))
    }

    @Test func aBadWriteIsRefusedBeforeAnythingIsWritten() throws {
        let path = Self.imagePath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let device = try FileBlockDevice.create(path: path, blocks: 100)
        let page = [UInt8](repeating: 0xAB, count: XNLayout.blockBytes)
        let short = [UInt8](repeating: 0xCD, count: 100)
        for (blocks, buffers) in [([5, 100], [page, page]), ([5, 6], [page, short])] as [([BlockNumber], [[UInt8]])] {
            Self.withPages(buffers) { page in
                #expect(throws: DeviceError.self) { try device.write(blocks, from: page) }
            }
        }
        #expect(try device.read([5])[0] == [UInt8](repeating: 0, count: XNLayout.blockBytes))
    }

    @Test func aSecondKernelCannotOpenAnImageInUse() throws {
        let path = Self.imagePath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var first: FileBlockDevice? = try FileBlockDevice.create(path: path, blocks: 16)
        let page = [UInt8](repeating: 0x77, count: XNLayout.blockBytes)
        try Self.withPages([page]) { p in try first?.write([3], from: p) }
        for attempt in [{ try FileBlockDevice.open(path: path) }, { try FileBlockDevice.create(path: path, blocks: 8) }] {
            #expect(throws: DeviceError.self) { _ = try attempt() }
        }
        // Neither refusal touched it, and readers are not refused.
        #expect(try FileBlockDevice.open(path: path, readOnly: true).read([3]) == [page])
        first = nil
        #expect(try FileBlockDevice.open(path: path).blockCount == 16)
    }
}
