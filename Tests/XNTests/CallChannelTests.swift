// The call channel between an environment's process and the kernel's: requests and
// replies of every size up to the capacity cross it intact, over the spinning and the
// sleeping paths; what the environment's side writes into the channel cannot trap the
// kernel's side (an impossible length becomes a refused request, a request changed after
// sending changes nothing the kernel already took); a descriptor that is not a channel is
// refused; and a null call crosses it between two real processes (`xok bench ipc`).

import CLinux
import Foundation
import Testing
@testable import XokHostLinux
import XokABI

@Suite struct CallChannels {
    /// A kernel's side on another thread answering each request with its bytes reversed,
    /// until it has answered `count`.
    static func echo(_ kernelSide: CallChannel, count: Int) -> Thread {
        // Only that thread uses this end from now on.
        nonisolated(unsafe) let channel = kernelSide
        let thread = Thread {
            var answered = 0
            while answered < count {
                guard let request = channel.nextRequest(timeoutNanoseconds: 1_000_000_000) else { continue }
                try? channel.reply(Array((request.bytes ?? [0xEE]).reversed()), to: request)
                answered += 1
            }
        }
        thread.start()
        return thread
    }

    /// The environment's end: the same channel mapped a second time from a duplicate of
    /// its descriptor, as another process would map it.
    static func otherEnd(of channel: CallChannel, spin: Int = 50_000) throws -> CallChannel {
        try CallChannel.attach(fd: dup(channel.fd), spinNanoseconds: spin)
    }

    @Test(arguments: [50_000, 0])
    func requestsAndRepliesOfEverySizeCrossIntact(spin: Int) throws {
        let kernelSide = try CallChannel.create(spinNanoseconds: spin)
        let caller = try Self.otherEnd(of: kernelSide, spin: spin)
        let sizes = [0, 1, 7, CallChannel.inlineBytes, CallChannel.inlineBytes + 1, 4096, 65_537, CallChannel.capacity - 1, CallChannel.capacity] + Array(repeating: 24, count: 200)
        _ = Self.echo(kernelSide, count: sizes.count)
        for (i, size) in sizes.enumerated() {
            let request = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ i) }
            #expect(try caller.call(request) == request.reversed(), "request \(i) of \(size) bytes")
        }
    }

    @Test func aRequestTooLargeIsRefusedBeforeItIsSent() throws {
        let kernelSide = try CallChannel.create()
        let caller = try Self.otherEnd(of: kernelSide)
        #expect(throws: ChannelError.self) { try caller.call([UInt8](repeating: 1, count: CallChannel.capacity + 1)) }
        #expect(kernelSide.nextRequest(timeoutNanoseconds: 1_000_000) == nil)
    }

    @Test func anImpossibleLengthBecomesARefusedRequest() throws {
        let kernelSide = try CallChannel.create()
        // A hostile environment writes the control words itself.
        let memory = try #require(mmap(nil, CallChannel.bytes, PROT_READ | PROT_WRITE, MAP_SHARED, kernelSide.fd, 0))
        defer { munmap(memory, CallChannel.bytes) }
        func word(_ offset: Int) -> UnsafeMutablePointer<UInt32> { (memory + offset).assumingMemoryBound(to: UInt32.self) }
        for length in [UInt32(CallChannel.capacity + 1), UInt32.max] {
            word(CallChannel.requestLength).pointee = length
            xok_store_release(word(CallChannel.requestSequence), xok_load_acquire(word(CallChannel.requestSequence)) &+ 1)
            let request = try #require(kernelSide.nextRequest(timeoutNanoseconds: 1_000_000_000))
            #expect(request.bytes == nil)
            try kernelSide.reply([1], to: request)
        }
        // A request taken is a copy: changing the channel afterwards changes nothing.
        word(CallChannel.requestLength).pointee = 3
        (memory + CallChannel.requestOffset(length: 3)).storeBytes(of: 0x0030_2010, as: UInt32.self)
        xok_store_release(word(CallChannel.requestSequence), xok_load_acquire(word(CallChannel.requestSequence)) &+ 1)
        let request = try #require(kernelSide.nextRequest(timeoutNanoseconds: 1_000_000_000))
        (memory + CallChannel.requestOffset(length: 3)).storeBytes(of: 0xFFFF_FFFF, as: UInt32.self)
        #expect(request.bytes == [0x10, 0x20, 0x30])
    }

    @Test func aDescriptorThatIsNoChannelIsRefused() throws {
        let wrongSize = xok_memfd_create("not-a-channel")
        #expect(ftruncate(wrongSize, 4096) == 0)
        #expect(throws: ChannelError.self) { try CallChannel.attach(fd: wrongSize) }
        let noMagic = xok_memfd_create("not-a-channel")
        #expect(ftruncate(noMagic, off_t(CallChannel.bytes)) == 0)
        #expect(throws: ChannelError.self) { try CallChannel.attach(fd: noMagic) }
    }

    @Test func aNullCallCrossesBetweenTwoProcesses() throws {
        let run = try runXok(["bench", "ipc", "--calls", "2000"])
        #expect(run.status == 0, "\(run.output)")
        let line = try #require(run.output.split(separator: "\n").first { $0.hasPrefix("null call over a call channel") })
        let nanoseconds = try #require(Double(line.split(separator: " ", omittingEmptySubsequences: true)[6]))
        #expect(nanoseconds > 0)
    }
}
