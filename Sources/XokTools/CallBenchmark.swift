// `xok bench calls`: what a kernel call costs through `LocalPort` — the request encoded,
// decoded, checked and handled, the reply encoded and decoded — beside a direct Swift
// function call measured in the same run. Two calls: a null call (`upcallNext` with
// nothing waiting) and a one-block metadata change (8 bytes of a cached tree node, checked
// by its UDFs), on a kernel booted on the Linux host.

import Foundation
import TreeFS
import XN
import Xok
import XokABI
import XokHostLinux
import XokSimulation

public enum CallBenchmark {
    public struct Result: Sendable {
        public var name: String
        public var nanoseconds: Double
        /// The direct call's nanoseconds, measured in the same run.
        public var floor: Double
    }

    /// A function the optimizer may not inline or drop: the floor a call costs.
    @inline(never)
    static func direct(_ x: UInt64) -> UInt64 { x &* 0x9E37_79B9_7F4A_7C15 &+ 1 }

    /// Nanoseconds per iteration of `body`, the best of `repeats` timings of `count`.
    static func time(_ count: Int, repeats: Int, _ body: (Int) throws -> Void) rethrows -> Double {
        var best = Double.infinity
        let clock = ContinuousClock()
        for _ in 0..<max(1, repeats) {
            let start = clock.now
            for i in 0..<count { try body(i) }
            let d = clock.now - start
            let ns = (Double(d.components.seconds) * 1e9 + Double(d.components.attoseconds) / 1e9) / Double(count)
            best = min(best, ns)
        }
        return best
    }

    public static func run(calls: Int = 200_000, repeats: Int = 5, image: String) throws -> [Result] {
        defer { unlink(image) }
        let kernel = Kernel(host: try LinuxHost(frameCount: 256))
        try kernel.mountDisk(try FileBlockDevice.create(path: image, blocks: 1024), format: true)
        let client = try LibraryEnvironment.treeClient(kernel, ownerID: 1, format: TreeFormat(name: "tree", ownerOffset: 0))
        let root = try client.createRoot(name: "bench")
        let port = client.port
        var sink: UInt64 = 0
        let floor = time(calls * 10, repeats: repeats) { i in sink = direct(sink ^ UInt64(i)) }
        let null = try time(calls, repeats: repeats) { _ in _ = try port.nextUpcall() }
        // The null call's parts: its request's trip over the wire, the kernel's handling
        // alone, and the reply's trip.
        let request = KernelRequest.upcallNext
        var writer = WireWriter()
        let wire = try time(calls, repeats: repeats) { _ in
            request.encode(into: &writer)
            _ = try writer.withUnsafeBytes { (bytes) throws(KernelError) in try KernelRequest(decoding: bytes) }
        }
        let environment = port.environment
        let handled = try time(calls, repeats: repeats) { _ in _ = try kernel.handle(request, from: environment) }
        let answer = Swift.Result<KernelReply, KernelError>.success(KernelReply.upcall(Upcall?.none))
        let back = try time(calls, repeats: repeats) { _ in
            KernelReply.encode(answer, into: &writer)
            _ = try writer.withUnsafeBytes { (bytes) throws(KernelError) in try KernelReply(decoding: bytes) }
        }
        let changes = (0..<256).map { i in XNChanges.inline([(1024 + 8 * (i % 64), [UInt8](repeating: UInt8(i), count: 8))]) }
        let change = try time(calls / 4, repeats: repeats) { i in try port.modify(root, .write, changes[i % 256], credential: client.slots.own) }
        _ = try kernel.shutdown()
        if sink == 42 { print("") }
        return [Result(name: "null call", nanoseconds: null, floor: floor),
                Result(name: "  request over the wire", nanoseconds: wire, floor: floor),
                Result(name: "  handled by the kernel", nanoseconds: handled, floor: floor),
                Result(name: "  reply over the wire", nanoseconds: back, floor: floor),
                Result(name: "one-block metadata change", nanoseconds: change, floor: floor)]
    }
}
