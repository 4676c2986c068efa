// CRC-32C (Castagnoli), bitwise: XN's own structures carry one so a torn, corrupt or
// foreign image is refused at mount instead of being trusted.

enum CRC32C {
    static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xffff_ffff
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82f6_3b78 : crc >> 1 }
        }
        return ~crc
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 { checksum(bytes[...]) }
}

/// Little-endian integers in byte arrays.
extension Array where Element == UInt8 {
    func u32(at offset: Int) -> UInt32 {
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(self[offset + i]) << UInt32(8 * i) }
        return v
    }
    func u64(at offset: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(self[offset + i]) << UInt64(8 * i) }
        return v
    }
    mutating func put32(_ v: UInt32, at offset: Int) {
        for i in 0..<4 { self[offset + i] = UInt8(truncatingIfNeeded: v >> UInt32(8 * i)) }
    }
    mutating func put64(_ v: UInt64, at offset: Int) {
        for i in 0..<8 { self[offset + i] = UInt8(truncatingIfNeeded: v >> UInt64(8 * i)) }
    }
}
