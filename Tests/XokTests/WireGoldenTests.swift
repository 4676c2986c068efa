// The wire encoding pinned byte for byte: each request of `WireFormat.requests` and each
// reply of `WireFormat.replies` (every upcall among them) against the bytes it had when
// this layout (version 3) was fixed. A change to the layout must change these on purpose,
// and bump `kernelCallVersion`; `xokd`'s clients and rings depend on it.

import Testing
import XokABI

@Suite struct WireGolden {
    /// Hex of each request, in the order of `WireFormat.requests` (call name for reading).
    static let requests: [(String, String)] = [
        ("capabilityDerive", "0300010015000000030002000100000000000000020000000000000005"),
        ("capabilityDrop", "03000200020000000900"),
        ("environmentCreate", "030003003e00000001000200020701000000000000000200000000000000000702000400050001000000020000000300" +
         "00000400000005000000000000000001000007000000"),
        ("environmentDestroy", "0300040006000000000007000000"),
        ("environmentSetMessageACL", "03000500020000000000"),
        ("frameAllocate", "0300060006000000000001000007"),
        ("frameFree", "030007000600000000000c000000"),
        ("frameSetACL", "030008001200000000000c000000010001010900000000000000"),
        ("frameMap", "030009000700000002000100000001"),
        ("frameUnmap", "03000a000400000001000000"),
        ("frameRevoke", "03000b000e0000000200010000000000000000010000"),
        ("regionCreate", "03000c000a00000001000100000700100000"),
        ("regionRead", "03000d000e0000000100030000000500000006000000"),
        ("regionWrite", "03000e00110000000100030000000500000003000000010203"),
        ("regionDestroy", "03000f0006000000010003000000"),
        ("ipcSend", "030010000c00000001000200000002000000dead"),
        ("upcallNext", "0300110000000000"),
        ("predicateInstall", "030012001300000001000800000095000000000000000104000000"),
        ("predicateInstall", "030012000b0000000100000000000000000000"),
        ("predicateRemove", "0300130000000000"),
        ("sliceAllocate", "0300140006000000030002000000"),
        ("sliceFree", "030015000400000002000000"),
        ("yield", "03001600050000000103000000"),
        ("yield", "03001600050000000000000000"),
        ("xnInstallType", "030017002e00000006000400000074726565" + "0201000000001000000400000090010000" + "010200000008000000" + "010300000010000000" + "01"),
        ("xnLookupType", "03001800080000000400000074726565"),
        ("xnCreateRoot", "0300190014000000070004000000686f6d6502000000050009000000"),
        ("xnLookupRoot", "03001a000800000004000000686f6d65"),
        ("xnReadIn", "03001b000e0000000500000000000200000004000000"),
        ("xnRead", "03001c000e00000005004d0000000000000004000000"),
        ("xnMap", "03001d000b00000005004d0000000000000001"),
        ("xnModify", "03001e002100000005004d0000000000000000020010000200a00f0100000000000003000000010203"),
        ("xnModify", "03001e002a00000005004d00000000000000014e00000000000000010000000500000001000000001001060000000000" +
         "0000"),
        ("xnModify", "03001e001e00000005004d00000000000000024e000000000000000000000000000000000000"),
        ("xnModify", "03001e001b00000005004d000000000000000301002000010000000000000100000009"),
        ("xnModify", "03001e003b00000005004d000000000000000402004e0000000000000000000000000004000000000002000500000006" +
         "00000001004000010000000000000100000001"),
        ("xnModify", "03001e003000000005004d000000000000000503004e000000000000004f000000000000005000000000000000000000" +
         "0000000000000000"),
        ("xnModify", "03001e001e00000005004d00000000000000064e000000000000000000000000000000000000"),
        ("xnWriteData", "03001f001d00000005004e0000000000000001000000040000000000000400000064617461"),
        ("xnWriteback", "030020001a00000003004d000000000000004e000000000000000000000000010000"),
        ("xnEvict", "030021000a00000005004e00000000000000"),
        ("xnFindFree", "03002200080000002c01000000000000"),
        ("xnMapMany", "030023001e00000005000200" + "4d00000000000000" + "0000000000010000" + "0200" + "04000000" + "09000000"),
        ("frameAllocateMany", "0300240008000000000001000007" + "0300"),
        ("xnMove", "0300250029000000" + "0500" + "4d00000000000000" + "4000" + "0001" + "0000000000010000" + "4001"
         + "0100" + "4e010200" + "00" + "00000000" + "02000000" + "0102"),
        ("frameUnmapMany", "030026000a000000" + "0200" + "04000000" + "ffffffff"),
        ("frameLoad", "0300270008000000" + "04000000" + "1000" + "0800"),
        ("frameStore", "030028000d000000" + "04000000" + "fa0f" + "03000000" + "010203"),
    ]

    /// Hex of each reply, in the order of `WireFormat.replies`.
    static let replies: [String] = [
        "030000000100000000",
        "0300000003000000010400",
        "03000000050000000209000000",
        "03000000050000000301000000",
        "03000000050000000402000000",
        "03000000080000000503000000010203",
        "03000000020000000600",
        "0300000006000000060101000000",
        "0300000006000000060201000000",
        "030000000e0000000603030000006300000000000000",
        "0300000006000000060403000000",
        "03000000020000000605",
        "030000000c000000060605000000020000000708",
        "03000000050000000703000000",
        "0300000009000000080000000008000000",
        "030000001f00000009bc0200000000000002000000020305000000000000000600000000000000",
        "030000000b0000000a02000400000009000000",
    ]

    static func bytes(_ hex: String) -> [UInt8] {
        var result: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            result.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return result
    }

    @Test func everyRequestEncodesToItsPinnedBytes() throws {
        #expect(Self.requests.count == WireFormat.requests.count)
        for (request, (name, hex)) in zip(WireFormat.requests, Self.requests) {
            #expect("\(request.call)" == name)
            #expect(request.encoded == Self.bytes(hex), "\(name)")
            #expect(try KernelRequest(decoding: Self.bytes(hex)) == request, "\(name)")
        }
    }

    @Test func everyReplyAndUpcallEncodesToItsPinnedBytes() throws {
        #expect(Self.replies.count == WireFormat.replies.count)
        for (reply, hex) in zip(WireFormat.replies, Self.replies) {
            #expect(KernelReply.encode(.success(reply)) == Self.bytes(hex), "\(reply)")
            #expect(try KernelReply(decoding: Self.bytes(hex)) == reply)
        }
        // An error: the status is its code, and there is no payload.
        #expect(KernelReply.encode(.failure(.notCached)) == Self.bytes("03001d0000000000"))
    }
}

@Suite struct WireWriters {
    /// A writer grows past its first storage keeping every byte; a copy writes apart
    /// from the writer it came from; emptying keeps nothing of what was written; and
    /// a patch outside what is written changes nothing.
    @Test func aWriterGrowsCopiesApartAndPatchesOnlyWhatItWrote() {
        var w = WireWriter(capacity: 16)
        for i in 0..<3000 { w.u32(UInt32(i)) }
        #expect(w.count == 12_000)
        let expected = (0..<3000).flatMap { i in withUnsafeBytes(of: UInt32(i).littleEndian) { Array($0) } }
        #expect(w.bytes.elementsEqual(expected), "12,000 bytes kept across growth")

        var copy = w
        copy.u8(0xAA)
        copy.patch32(0xDEAD_BEEF, at: 0)
        #expect(w.bytes.elementsEqual(expected), "the copy's writes stay in the copy")
        #expect(copy.count == 12_001 && Array(copy.bytes.prefix(4)) == [0xEF, 0xBE, 0xAD, 0xDE] && copy.bytes.last == 0xAA)

        w.patch32(1, at: w.count - 3)
        w.patch32(1, at: -1)
        #expect(w.bytes.elementsEqual(expected), "patches past what is written are ignored")
        w.removeAll()
        #expect(w.count == 0 && w.bytes.isEmpty)
        w.data([1, 2, 3])
        #expect(w.bytes == [3, 0, 0, 0, 1, 2, 3])
    }
}
