// `KernelPort` for an environment in its own process (docs/xokd.md): calls go over a call
// channel, the exposed state is read from the kernel's sealed pages mapped read-only, and
// loads and stores of frames go by call (`frameLoad`, `frameStore`), since the frames are
// the kernel's memory, not this process's. ExOS and C-FFS run on it unchanged.
//
// And the kernel's side: `serve`, which answers one environment's channel.

import Xok
import XokABI

public final class ChannelPort: KernelPort {
    public let environment: EnvironmentID
    private let caller: ChannelCaller
    private let exposed: MappedExposedState

    public init(environment: EnvironmentID, channel: CallChannel, exposed: MappedExposedState) {
        self.environment = environment
        caller = ChannelCaller(channel: channel)
        self.exposed = exposed
    }

    public func perform(_ request: KernelRequest) throws(KernelError) -> KernelReply {
        let reply = try caller.perform(request)
        // The kernel leaves the count of frame changes alone after such a call, so the
        // copies it made stale are this port's to drop.
        if let frames = request.framesChangedForCallerAlone {
            for frame in frames { drop(frame) }
        }
        if let (block, given) = request.blockChanged {
            // The registry shows where the block is now; if it shows nothing, every page goes.
            if let frame = registryEntry(of: block)?.frame { drop(frame) } else { dropAll() }
            for frame in given { drop(frame) }
        }
        return reply
    }

    public func exposedState() -> ExposedState { exposed.snapshot() }

    /// One entry, read in place between two equal even generations.
    public func registryEntry(of block: BlockNumber) -> ExposedState.RegistryEntry? {
        exposed.consistent { exposed.registry(block: block) }
    }

    /// Whole pages this port loaded, good while the kernel's count of frame changes stays
    /// at `pagesChanges`: C-FFS reads a block a few bytes at a time (entries, inode fields),
    /// and a call for each would cost more than the work. A page is fetched whole at the
    /// second read of it with no change between; the first fetches only what it asks, since
    /// a writer's reads are mostly single ones between changes.
    private var pages: [FrameNumber: [UInt8]] = [:]
    private var pagesChanges: UInt64 = 0
    /// Frames read once (in part) since the last change.
    private var readOnce: Set<FrameNumber> = []
    /// Pages kept at most; past that the copies start again.
    static let pagesKept = 1024
    /// `frameLoad` calls made so far (the loads the kept pages did not answer).
    public private(set) var frameLoadCalls = 0

    private func drop(_ frame: FrameNumber) {
        pages[frame] = nil
        readOnce.remove(frame)
    }

    private func dropAll() {
        if !pages.isEmpty { pages.removeAll(keepingCapacity: true) }
        if !readOnce.isEmpty { readOnce.removeAll(keepingCapacity: true) }
    }

    public func load(_ frame: FrameNumber, offset: Int, count: Int) throws(KernelError) -> [UInt8] {
        guard offset >= 0, count >= 0, count <= KernelLimits.pageBytes - offset else { throw .notMapped }
        // The count is read before the page is, so a change after it shows next time.
        let changes = exposed.frameChanges
        if changes != pagesChanges {
            dropAll()
            pagesChanges = changes
        }
        if let page = pages[frame] { return Array(page[offset..<offset + count]) }
        // A set, not the last frame alone: reads that alternate between two blocks (an
        // inode and an indirect block, for each block of a file written) would otherwise
        // never keep either page.
        guard readOnce.contains(frame) else {
            if readOnce.count >= Self.pagesKept { readOnce.removeAll(keepingCapacity: true) }
            readOnce.insert(frame)
            frameLoadCalls += 1
            guard case .bytes(let bytes) = try perform(.frameLoad(frame, offset: UInt16(offset), count: UInt16(count))), bytes.count == count else {
                throw .badRequest
            }
            return bytes
        }
        let size = UInt16(KernelLimits.pageBytes)
        frameLoadCalls += 1
        guard case .bytes(let page) = try perform(.frameLoad(frame, offset: 0, count: size)), page.count == Int(size) else {
            throw .badRequest
        }
        if pages.count >= Self.pagesKept { pages.removeAll(keepingCapacity: true) }
        pages[frame] = page
        return Array(page[offset..<offset + count])
    }

    public func store(_ bytes: [UInt8], into frame: FrameNumber, offset: Int) throws(KernelError) {
        guard let offset = UInt16(exactly: offset), bytes.count <= KernelLimits.pageBytes else { throw .notMapped }
        guard case .done = try perform(.frameStore(frame, offset: offset, bytes: bytes)) else {
            pages[frame] = nil
            throw .badRequest
        }
        // The store is done, so a page kept of the frame gets the same bytes. (When others
        // may hold the frame too, the kernel moved its count, and every page kept goes at
        // the next load anyway.)
        guard Int(offset) + bytes.count <= KernelLimits.pageBytes else {
            pages[frame] = nil
            return
        }
        pages[frame]?.withUnsafeMutableBytes { page in
            bytes.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: page[Int(offset)..<Int(offset) + $0.count]).copyMemory(from: $0) }
        }
    }
}

/// Answers `environment`'s calls on `channel` with `kernel` until `keepGoing` returns
/// false (asked whenever no call came for 100 ms, so a dead environment is noticed). A
/// request whose length was impossible is answered `badRequest`; nothing in the channel
/// can make this side trap.
public func serve<H: Host>(_ channel: CallChannel, kernel: Kernel<H>, environment: EnvironmentID,
                           while keepGoing: () -> Bool) throws(ChannelError) {
    try serve(channel, handle: { (request) throws(KernelError) in try kernel.handle(request, from: environment) }, while: keepGoing)
}

/// The same with the handling given: `xokd` takes its kernel's lock around each call.
/// `stopping` is asked after every call too (a flag: a client that calls without pause
/// must not keep the daemon from shutting down).
public func serve(_ channel: CallChannel, handle: (KernelRequest) throws(KernelError) -> KernelReply,
                  while keepGoing: () -> Bool, stopping: () -> Bool = { false }) throws(ChannelError) {
    // The reply is encoded into storage reused call after call.
    var reply = WireWriter(capacity: 4096)
    while true {
        if stopping() { return }
        guard let request = channel.nextRequest(timeoutNanoseconds: 100_000_000) else {
            if !keepGoing() { return }
            continue
        }
        let result: Result<KernelReply, KernelError>
        if let bytes = request.received {
            do { result = .success(try handle(try KernelRequest(decoding: bytes))) } catch { result = .failure(error) }
        } else {
            result = .failure(.badRequest)
        }
        KernelReply.encode(result, into: &reply)
        try reply.withUnsafeBytes { (bytes) throws(ChannelError) in try channel.reply(bytes, to: request) }
    }
}
