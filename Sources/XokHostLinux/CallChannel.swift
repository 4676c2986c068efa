// A call channel between one environment's process and the kernel's (DESIGN.md §7,
// docs/xokd.md): a memfd both map, holding one request and one reply at a time, since an
// environment's calls are synchronous. The caller writes its request and bumps a sequence
// number; the kernel's side sees it, handles it, writes the reply and bumps its own. Each
// side waits by spinning for a while (a polled round trip costs about 0.2 µs here) and
// then sleeps on a futex (a cross-CPU wakeup costs about 45 µs), announcing its sleep in
// a word the other side checks after publishing, with full barriers on both sides so that
// no wakeup is lost.
//
// Everything in the channel is written by the environment's process and so untrusted by
// the kernel's side: a length is checked against the capacity and the request is copied
// out before it is decoded, so changing it meanwhile changes nothing.

import CLinux
#if canImport(Glibc)
import Glibc
#endif
import XokABI

/// What went wrong with a channel.
public struct ChannelError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public final class CallChannel {
    /// Bytes a request or a reply may take: more than the largest the call set encodes
    /// (64 changes of 1 KiB, a 64 KiB region).
    public static let capacity = 256 * 1024
    /// The whole channel: a page of control words, then the request and reply areas.
    public static let bytes = KernelLimits.pageBytes + 2 * capacity
    static let magic: UInt32 = 0x584F_4B43   // "XOKC"

    // The control words. A direction's sequence, length and short message share one cache
    // line, so the line that brings the other side the news brings the message with it;
    // the two directions and the two sleep flags each have a line of their own.
    public static let requestSequence = 0, requestLength = 4, requestInline = 8
    public static let replySequence = 64, replyLength = 68, replyInline = 72
    public static let kernelSleeping = 128, callerSleeping = 192, magicOffset = 384
    /// A message up to this long travels in its sequence's cache line; a longer one in its
    /// area.
    public static let inlineBytes = 56
    public static let requestArea = KernelLimits.pageBytes, replyArea = KernelLimits.pageBytes + capacity

    /// Where a request of `length` bytes lies in the channel.
    public static func requestOffset(length: Int) -> Int { length <= inlineBytes ? requestInline : requestArea }
    /// Where a reply of `length` bytes lies in the channel.
    public static func replyOffset(length: Int) -> Int { length <= inlineBytes ? replyInline : replyArea }

    /// The memfd, to pass to the environment's process.
    public let fd: Int32
    private let base: UnsafeMutableRawPointer
    /// How long a side spins before it sleeps.
    public var spinNanoseconds: Int
    /// The kernel's side's private copy of the request it is answering (allocated at the
    /// first request).
    private var received: UnsafeMutableRawBufferPointer?

    private init(fd: Int32, base: UnsafeMutableRawPointer, spinNanoseconds: Int) {
        self.fd = fd
        self.base = base
        self.spinNanoseconds = spinNanoseconds
    }

    deinit {
        munmap(base, Self.bytes)
        close(fd)
        received?.deallocate()
    }

    /// A new channel (the kernel's side makes it).
    public static func create(spinNanoseconds: Int = 50_000) throws(ChannelError) -> CallChannel {
        let channel: CallChannel
        do {
            let (fd, base) = try SharedMemory.create(named: "xok-call-channel", bytes: bytes, sealed: true)
            channel = CallChannel(fd: fd, base: base, spinNanoseconds: spinNanoseconds)
        } catch { throw ChannelError(error.message) }
        channel.word(magicOffset).pointee = magic
        return channel
    }

    /// Maps a channel handed over as a file descriptor (the environment's side). Takes the
    /// descriptor over.
    public static func attach(fd: Int32, spinNanoseconds: Int = 50_000) throws(ChannelError) -> CallChannel {
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_size == off_t(bytes) else {
            close(fd)
            throw ChannelError("descriptor \(fd) is not a call channel")
        }
        let channel: CallChannel
        do { channel = CallChannel(fd: fd, base: try SharedMemory.map(fd, bytes: bytes), spinNanoseconds: spinNanoseconds) } catch {
            throw ChannelError(error.message)
        }
        guard xok_load_acquire(channel.word(magicOffset)) == magic else { throw ChannelError("descriptor \(fd) is not a call channel") }
        return channel
    }

    private func word(_ offset: Int) -> UnsafeMutablePointer<UInt32> {
        (base + offset).assumingMemoryBound(to: UInt32.self)
    }

    // MARK: The environment's side

    /// Asked whenever a wait for a reply has lasted another 100 ms: whether the kernel's
    /// side still lives. When it answers false, the call throws instead of waiting forever
    /// on a daemon that died.
    public var peerAlive: (() -> Bool)?

    /// Sends `request` and waits for the reply, which it returns in place: good until the
    /// next call. Throws when the request is too large, or the reply does not fit (the
    /// channel was tampered with).
    public func call(_ request: UnsafeRawBufferPointer) throws(ChannelError) -> UnsafeRawBufferPointer {
        guard request.count <= Self.capacity else { throw ChannelError("a request of \(request.count) bytes is too large") }
        if let from = request.baseAddress { (base + Self.requestOffset(length: request.count)).copyMemory(from: from, byteCount: request.count) }
        word(Self.requestLength).pointee = UInt32(request.count)
        let sequence = xok_load_acquire(word(Self.requestSequence)) &+ 1
        publish(sequence, at: Self.requestSequence, waking: Self.kernelSleeping)
        guard wait(until: sequence, at: Self.replySequence, sleeping: Self.callerSleeping, timeout: nil, alive: peerAlive) else {
            throw ChannelError("the kernel's side is gone")
        }
        let count = Int(xok_load_acquire(word(Self.replyLength)))
        guard count <= Self.capacity else { throw ChannelError("a reply of \(count) bytes does not fit the channel") }
        return UnsafeRawBufferPointer(start: base + Self.replyOffset(length: count), count: count)
    }

    /// The same, with the request and the reply as arrays.
    public func call(_ request: [UInt8]) throws(ChannelError) -> [UInt8] {
        let reply = request.withUnsafeBytes { bytes in Result { () throws(ChannelError) in Array(try call(bytes)) } }
        return try reply.get()
    }

    // MARK: The kernel's side

    /// A request the kernel's side has taken and not yet answered.
    public struct Request {
        public let sequence: UInt32
        /// The request's bytes, copied out of the channel (good until the next request is
        /// taken); nil when its length was impossible (the caller gets a `badRequest` reply).
        public let received: UnsafeRawBufferPointer?
        /// The same, as an array.
        public var bytes: [UInt8]? { received.map { Array($0) } }
    }

    private var answered: UInt32 = 0

    /// The next request, or nil when none came within `timeoutNanoseconds` (so the caller
    /// can see whether the environment still lives).
    public func nextRequest(timeoutNanoseconds: Int) -> Request? {
        let wanted = answered &+ 1
        guard wait(until: wanted, at: Self.requestSequence, sleeping: Self.kernelSleeping, timeout: timeoutNanoseconds) else { return nil }
        // The length is read once; the bytes are copied out, so the environment changing
        // them from now on changes nothing.
        let count = Int(xok_load_acquire(word(Self.requestLength)))
        guard count <= Self.capacity else { return Request(sequence: wanted, received: nil) }
        let copy = received ?? UnsafeMutableRawBufferPointer.allocate(byteCount: Self.capacity, alignment: 16)
        received = copy
        guard let into = copy.baseAddress else { return Request(sequence: wanted, received: nil) }
        into.copyMemory(from: base + Self.requestOffset(length: count), byteCount: count)
        return Request(sequence: wanted, received: UnsafeRawBufferPointer(start: into, count: count))
    }

    /// Answers `request`. A reply too large for the channel cannot be sent; the call set
    /// has none.
    public func reply(_ bytes: UnsafeRawBufferPointer, to request: Request) throws(ChannelError) {
        guard bytes.count <= Self.capacity else { throw ChannelError("a reply of \(bytes.count) bytes is too large") }
        if let from = bytes.baseAddress { (base + Self.replyOffset(length: bytes.count)).copyMemory(from: from, byteCount: bytes.count) }
        word(Self.replyLength).pointee = UInt32(bytes.count)
        answered = request.sequence
        publish(request.sequence, at: Self.replySequence, waking: Self.callerSleeping)
    }

    /// The same, with the reply as an array.
    public func reply(_ bytes: [UInt8], to request: Request) throws(ChannelError) {
        try bytes.withUnsafeBytes { raw in Result { () throws(ChannelError) in try reply(raw, to: request) } }.get()
    }

    // MARK: Waiting

    /// Publishes `value` and wakes the other side if it said it sleeps. The barrier
    /// between the store and the load pairs with the one in `wait`: either the sleeper
    /// sees the value before it sleeps, or this side sees its flag.
    private func publish(_ value: UInt32, at offset: Int, waking flag: Int) {
        xok_store_release(word(offset), value)
        xok_fence()
        if xok_load_acquire(word(flag)) != 0 { _ = xok_futex_wake(word(offset), 1) }
    }

    /// Waits until the word at `offset` holds `value`: spins, then sleeps on its futex.
    /// Returns false when `timeout` (nanoseconds, nil for none) passes first, or `alive`
    /// (asked after each 100 ms of sleep) says the other side is gone.
    @discardableResult
    private func wait(until value: UInt32, at offset: Int, sleeping flag: Int, timeout: Int?, alive: (() -> Bool)? = nil) -> Bool {
        let target = word(offset)
        if spin(until: value, target) { return true }
        let deadline = timeout.map { Self.now() + $0 }
        while true {
            let seen = xok_load_acquire(target)
            if seen == value { return true }
            xok_store_release(word(flag), 1)
            xok_fence()
            var slice = 100_000_000
            if let deadline { slice = min(slice, deadline - Self.now()) }
            if slice <= 0 {
                xok_store_release(word(flag), 0)
                return xok_load_acquire(target) == value
            }
            if xok_load_acquire(target) == seen { _ = xok_futex_wait(target, seen, slice) }
            xok_store_release(word(flag), 0)
            if let alive, xok_load_acquire(target) != value, !alive() { return false }
        }
    }

    /// Spins for `spinNanoseconds` at most. Returns whether the value came. The clock
    /// (about 25 ns a read here) is first read after a round of polls, so an answer that
    /// comes at once costs none.
    private func spin(until value: UInt32, _ target: UnsafeMutablePointer<UInt32>) -> Bool {
        var start: Int?
        while true {
            for _ in 0..<64 {
                if xok_load_acquire(target) == value { return true }
                xok_spin_pause()
            }
            let now = Self.now()
            if let start {
                if now - start >= spinNanoseconds { return false }
            } else {
                start = now
            }
        }
    }

    /// CLOCK_MONOTONIC in nanoseconds.
    public static func now() -> Int {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return t.tv_sec * 1_000_000_000 + t.tv_nsec
    }
}


/// The environment's end of a channel as calls: each request encoded, sent, and its reply
/// decoded (what `LocalPort.perform` does in one process), with nothing allocated per call
/// but what the reply carries.
public final class ChannelCaller {
    public let channel: CallChannel
    private var request = WireWriter()
    public init(channel: CallChannel) { self.channel = channel }

    /// - Throws: the call's own error; `badRequest` when the channel refuses the request.
    public func perform(_ request: KernelRequest) throws(KernelError) -> KernelReply {
        request.encode(into: &self.request)
        let reply: UnsafeRawBufferPointer
        do { reply = try self.request.withUnsafeBytes { (bytes) throws(ChannelError) in try channel.call(bytes) } } catch { throw .badRequest }
        return try KernelReply(decoding: reply)
    }
}
