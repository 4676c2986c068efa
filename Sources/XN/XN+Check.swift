// The walk from the roots, shared by mount (recovery) and fsck: every block reachable
// exactly once, inside the data area, of a known type, and `owns` working on every
// metadata block.

import BPF
import XokABI

/// What fsck found.
public struct CheckReport: Sendable {
    /// Whether the image was shut down cleanly (its free map must then match the tree).
    public var clean: Bool
    /// Blocks reachable from the roots.
    public var reachable: Int
    /// Every violation, in words.
    public var violations: [String]
}

struct Walk {
    var types: [BlockNumber: TypeID] = [:]
    var parents: [BlockNumber: BlockNumber] = [:]
    var violations: [String] = []
}

extension XN {
    /// Walks the on-disk tree from the roots (reading the device, not the cache).
    func walk() -> Walk {
        var walk = Walk()
        var queue: [(BlockNumber, TypeID)] = []
        for root in roots {
            if walk.types[root.block] != nil {
                walk.violations.append("root '\(root.name)' shares block \(root.block) with another root")
                continue
            }
            walk.types[root.block] = root.type
            queue.append((root.block, root.type))
        }
        var next = 0
        while next < queue.count {
            let (block, type) = queue[next]
            next += 1
            guard let template = template(type) else { continue }
            let contents: [UInt8]
            do { contents = try device.read(block) } catch {
                walk.violations.append("block \(block) cannot be read: \(error.message)")
                continue
            }
            let pointers: [Pointer]
            do { pointers = try template.pointers(in: contents) } catch {
                walk.violations.append("owns of block \(block) (type \(template.name)) fails: \(error)")
                continue
            }
            for p in pointers {
                if p.block < geometry.dataStart || p.block >= geometry.blockCount {
                    walk.violations.append("block \(block) points to block \(p.block), outside the data area")
                } else if p.type != .data && self.template(p.type) == nil {
                    walk.violations.append("block \(block) points to block \(p.block) of unknown type \(p.type.rawValue)")
                } else if let seen = walk.types[p.block] {
                    let other = walk.parents[p.block].map { "block \($0)" } ?? "a root"
                    walk.violations.append("block \(p.block) is reachable twice: from \(other) and from block \(block)"
                        + (seen != p.type ? " with another type" : ""))
                } else {
                    walk.types[p.block] = p.type
                    walk.parents[p.block] = block
                    queue.append((p.block, p.type))
                }
            }
        }
        return walk
    }

    /// Checks an image without changing it: XN's checksums, the templates, the tree, and
    /// for a cleanly shut-down image the free map against the tree.
    public static func check(_ device: D) -> CheckReport {
        var device = device
        let superblock: Superblock
        do { superblock = try Superblock(decoding: try readBlock(&device, 0), deviceBlocks: device.blockCount) } catch {
            return CheckReport(clean: false, reachable: 0, violations: ["\(error)"])
        }
        let xn = XN(device: device, geometry: superblock.geometry)
        var violations: [String] = []
        do { xn.templates = try loadTemplates(&xn.device, superblock.geometry) } catch { violations.append("\(error)") }
        do { xn.roots = try loadRoots(&xn.device, superblock.geometry, typeCount: xn.templates.count) } catch { violations.append("\(error)") }
        let walk = xn.walk()
        violations += walk.violations
        do {
            let stored = try loadFreeMap(&xn.device, superblock.geometry)
            for b in 0..<Int(superblock.geometry.blockCount) {
                let reserved = b < Int(superblock.geometry.dataStart)
                let reachable = reserved || walk.types[BlockNumber(b)] != nil
                if reserved && !stored[b] {
                    violations.append("block \(b) holds XN's own structures but the free map says free")
                } else if superblock.clean && reachable && !stored[b] {
                    violations.append("block \(b) is reachable but the free map says free")
                } else if superblock.clean && !reachable && stored[b] {
                    violations.append("block \(b) is allocated but not reachable from any root")
                }
            }
        } catch {
            violations.append("\(error)")
        }
        return CheckReport(clean: superblock.clean, reachable: walk.types.count, violations: violations)
    }
}
