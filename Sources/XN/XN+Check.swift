// The walk from the roots, shared by mount (recovery) and fsck: every block reachable
// exactly once (a block of a shareable type: from any number of places, with one type,
// and never below itself), inside the data area, of a known type, and `owns` working on
// every metadata block.

import BPF
import XokABI

/// What fsck found.
public struct CheckReport: Sendable {
    /// Why the image is not an XN disk at all (nothing else was checked), or nil.
    public var notXN: String?
    /// Whether the image was shut down cleanly (its free map must then match the tree).
    public var clean: Bool
    /// Blocks reachable from the roots.
    public var reachable: Int
    /// Every violation, in words.
    public var violations: [String]
    /// The roots, by name, with their blocks (for a library file system's own checks).
    public var roots: [(name: String, block: BlockNumber)] = []
    /// Blocks a committed move log record still has to put in place (the next mount
    /// does); the checks see the disk as it will be then.
    public var movePending = 0
}

struct Walk {
    var types: [BlockNumber: TypeID] = [:]
    var parents: [BlockNumber: BlockNumber] = [:]
    /// Shareable blocks' parents past the first, one per pointer.
    var sharers: [BlockNumber: [BlockNumber]] = [:]
    var violations: [String] = []
}

/// The blocks above `block` through `parents` (each block's first) and `sharers` (the
/// rest); `block` is among them only when it lies on a loop.
func blocksAbove(_ block: BlockNumber, parents: [BlockNumber: BlockNumber], sharers: [BlockNumber: [BlockNumber]]) -> Set<BlockNumber> {
    var seen: Set<BlockNumber> = []
    var queue = [block]
    while let b = queue.popLast() {
        guard let first = parents[b] else { continue }
        for parent in [first] + (sharers[b] ?? []) where seen.insert(parent).inserted { queue.append(parent) }
    }
    return seen
}

extension XN {
    func walk() -> Walk { XNImage.walk(&device, templates: templates, roots: roots, geometry) }
}

/// XN's on-disk image, checked without mounting it.
public enum XNImage {
    /// Walks the on-disk tree from the roots (reading the device, not the cache).
    static func walk<D: BlockDevice>(_ device: inout D, templates: [Template], roots: [RootEntry], _ geometry: XNLayout.Geometry) -> Walk {
        func templateOf(_ type: TypeID) -> Template? {
            type == .data || Int(type.rawValue) > templates.count ? nil : templates[Int(type.rawValue) - 1]
        }
        var walk = Walk()
        var queue: [(BlockNumber, TypeID)] = []
        for root in roots {
            if walk.types[root.block] != nil {
                walk.violations.append("root '\(String(decoding: root.name, as: UTF8.self))' shares block \(root.block) with another root")
                continue
            }
            walk.types[root.block] = root.type
            queue.append((root.block, root.type))
        }
        var next = 0
        while next < queue.count {
            let (block, type) = queue[next]
            next += 1
            guard let template = templateOf(type) else { continue }
            let contents: [UInt8]
            do { contents = try device.read(block) } catch {
                walk.violations.append("block \(block) cannot be read: \(error.message)")
                continue
            }
            let pointers: [Pointer]
            do { pointers = try template.pointers(in: contents) } catch {
                walk.violations.append("owns of block \(block) (type \(String(decoding: template.name, as: UTF8.self))) fails: \(error)")
                continue
            }
            for p in pointers {
                if p.block < geometry.dataStart || p.block >= geometry.blockCount {
                    walk.violations.append("block \(block) points to block \(p.block), outside the data area")
                } else if p.type != .data && templateOf(p.type) == nil {
                    walk.violations.append("block \(block) points to block \(p.block) of unknown type \(p.type.rawValue)")
                } else if let seen = walk.types[p.block], seen == p.type, walk.parents[p.block] != nil, templateOf(p.type)?.shareable == true {
                    walk.sharers[p.block, default: []].append(block)
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
        // A block with several parents may be its own ancestor: a loop that a walk from
        // the roots enters once and never closes.
        for block in walk.sharers.keys.sorted() where blocksAbove(block, parents: walk.parents, sharers: walk.sharers).contains(block) {
            walk.violations.append("block \(block) is its own ancestor")
        }
        return walk
    }

    /// Checks an image without changing it: XN's checksums, the templates, the tree, and
    /// for a cleanly shut-down image the free map against the tree.
    public static func check<D: BlockDevice>(_ device: D) -> CheckReport {
        var device = device
        guard device.blockCount > 0 else { return CheckReport(notXN: "shorter than one 4 KiB block", clean: false, reachable: 0, violations: []) }
        let superblock: Superblock
        do { superblock = try Superblock(decoding: try XNStructures<D>.readBlock(&device, 0), deviceBlocks: device.blockCount) } catch {
            if case .notXN(let why) = error { return CheckReport(notXN: why, clean: false, reachable: 0, violations: []) }
            return CheckReport(clean: false, reachable: 0, violations: ["\(error)"])
        }
        // A move whose record is on disk counts as done: the next mount finishes it.
        do {
            let view = try ReplayedView(device)
            return check(view, superblock, movePending: view.pending)
        } catch {
            return CheckReport(clean: superblock.clean, reachable: 0, violations: ["\(error)"])
        }
    }

    /// The checks past the superblock, on the disk as a replayed move log leaves it.
    static func check<D: BlockDevice>(_ device: D, _ superblock: Superblock, movePending: Int) -> CheckReport {
        var device = device
        let g = superblock.geometry
        var violations: [String] = []
        if superblock.clean && movePending > 0 { violations.append("shut down cleanly, yet the move log holds a record") }
        var templates: [Template] = [], roots: [RootEntry] = []
        do { templates = try XNStructures<D>.loadTemplates(&device, g) } catch { violations.append("\(error)") }
        do { roots = try XNStructures<D>.loadRoots(&device, g, typeCount: templates.count) } catch { violations.append("\(error)") }
        let walk = walk(&device, templates: templates, roots: roots, g)
        violations += walk.violations
        do {
            let stored = try XNStructures<D>.loadFreeMap(&device, g)
            if superblock.clean {
                violations += XNStructures<D>.freeMapMismatches(stored, walk: walk, g)
            } else if let hole = stored.firstClear(from: 0), hole < g.dataStart {
                violations.append("block \(hole) holds XN's own structures but the free map says free")
            }
        } catch {
            violations.append("\(error)")
        }
        return CheckReport(clean: superblock.clean, reachable: walk.types.count, violations: violations,
                           roots: roots.map { (String(decoding: $0.name, as: UTF8.self), $0.block) }, movePending: movePending)
    }
}
