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

    public func perform(_ request: KernelRequest) throws(KernelError) -> KernelReply { try caller.perform(request) }

    public func exposedState() -> ExposedState { exposed.snapshot() }

    /// One entry, read in place between two equal even generations.
    public func registryEntry(of block: BlockNumber) -> ExposedState.RegistryEntry? {
        exposed.consistent { exposed.registry(block: block) }
    }

    public func load(_ frame: FrameNumber, offset: Int, count: Int) throws(KernelError) -> [UInt8] {
        guard let offset = UInt16(exactly: offset), let count = UInt16(exactly: count) else { throw .notMapped }
        guard case .bytes(let bytes) = try perform(.frameLoad(frame, offset: offset, count: count)), bytes.count == Int(count) else {
            throw .badRequest
        }
        return bytes
    }

    public func store(_ bytes: [UInt8], into frame: FrameNumber, offset: Int) throws(KernelError) {
        guard let offset = UInt16(exactly: offset), bytes.count <= KernelLimits.pageBytes else { throw .notMapped }
        guard case .done = try perform(.frameStore(frame, offset: offset, bytes: bytes)) else { throw .badRequest }
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
public func serve(_ channel: CallChannel, handle: (KernelRequest) throws(KernelError) -> KernelReply,
                  while keepGoing: () -> Bool) throws(ChannelError) {
    while true {
        guard let request = channel.nextRequest(timeoutNanoseconds: 100_000_000) else {
            if !keepGoing() { return }
            continue
        }
        let result: Result<KernelReply, KernelError>
        if let bytes = request.bytes {
            do { result = .success(try handle(try KernelRequest(decoding: bytes))) } catch { result = .failure(error) }
        } else {
            result = .failure(.badRequest)
        }
        try channel.reply(KernelReply.encode(result), to: request)
    }
}
