// swift-tools-version: 6.2
// The Xok/ExOS exokernel in Swift. Layers and their rules: ../shared/DESIGN.md §2.
import PackageDescription

let strict: [SwiftSetting] = [.treatAllWarnings(as: .error)]
/// The modules on a kernel call's path, in a release build, without the run-time checks of
/// exclusive access to class properties (they cost as much as the kernel's own work on a
/// null call), and with their generic code visible to the modules that use it, so that
/// `Kernel<LinuxHost>` is compiled for its host rather than through witness tables
/// (docs/xokd.md, "What a call costs"). Debug builds, and so every test run, keep the
/// checks. BPF, a library product, stays without unsafe flags so that other packages may
/// use it.
let fast: [SwiftSetting] = strict + [.unsafeFlags(["-enforce-exclusivity=unchecked", "-cross-module-optimization"],
                                                  .when(configuration: .release))]

let package = Package(
    name: "Xok",
    products: [
        .library(name: "BPF", targets: ["BPF"]),
        .executable(name: "xok", targets: ["xok"]),
    ],
    dependencies: [
        // The CLI's argument parsing; the only dependency (README, "Dependencies").
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // The kernel boundary: capabilities, errors, limits, the call set as data, the
        // exposed-state layout, `KernelPort`. Pure and Embedded-compatible; ExOS imports
        // only this.
        .target(name: "XokABI", swiftSettings: fast),
        // Downloaded code: the RFC 9669 eBPF verifier and interpreter. Pure: no Foundation,
        // no Glibc; compiles as Embedded Swift (scripts/check-embedded).
        .target(name: "BPF", swiftSettings: strict),
        // XN: protected sharing of a disk among library file systems through their own
        // UDFs; generic over a `BlockDevice`. Pure and Embedded-compatible.
        .target(name: "XN", dependencies: ["XokABI", "BPF"], swiftSettings: fast),
        // The kernel core, generic over its `Host`. Pure and Embedded-compatible.
        .target(name: "Xok", dependencies: ["XokABI", "BPF", "XN"], swiftSettings: fast),
        // A small library file system for testing XN: it depends on XokABI alone and
        // reaches the kernel only through `KernelPort`; its UDFs' bytecode is built apart.
        .target(name: "TreeFS", dependencies: ["XokABI"], swiftSettings: strict),
        .target(name: "TreeFSUDFs", dependencies: ["TreeFS", "BPF", "XokABI"], swiftSettings: strict),
        // C-FFS, the library file system: XokABI to reach the kernel, BPF to build its UDFs.
        .target(name: "CFFS", dependencies: ["XokABI", "BPF"], swiftSettings: fast),
        // ExOS, the library operating system: POSIX-like files over C-FFS, reaching the
        // kernel only through `KernelPort`.
        .target(name: "ExOS", dependencies: ["XokABI", "CFFS"], swiftSettings: fast),
        // A deterministic host: seeded randomness, virtual clock, simulated frames and MMU.
        .target(name: "XokSimulation", dependencies: ["Xok", "XokABI", "XN", "BPF", "TreeFS", "TreeFSUDFs", "CFFS", "ExOS"],
                swiftSettings: fast),
        // The only target that touches Linux: real memory pages, disk image files and
        // block devices.
        .target(name: "XokHostLinux", dependencies: ["Xok", "XN", "XokABI", "CLinux"], swiftSettings: fast),
        // The few Linux calls Swift's Glibc module lacks (memfd_create, futexes, atomics on
        // shared memory, processor affinity).
        .target(name: "CLinux"),
        // Host-side tooling shared by the CLI and the tests: the conformance-suite format,
        // the plugin protocol, benchmark programs. May use Foundation.
        .target(name: "XokTools", dependencies: ["BPF", "XN", "Xok", "XokHostLinux", "XokSimulation", "XokABI", "TreeFS", "TreeFSUDFs",
                                                "CFFS", "ExOS", "CLinux"], swiftSettings: fast),
        .executableTarget(
            name: "xok",
            dependencies: [
                "BPF", "XokTools", "XokSimulation", "XN", "Xok", "XokABI", "XokHostLinux", "TreeFS", "ExOS", "CFFS",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        .testTarget(name: "BPFTests", dependencies: ["BPF", "XokTools", "XokSimulation"], swiftSettings: strict),
        .testTarget(name: "XokTests", dependencies: ["Xok", "XokABI", "XokSimulation", "BPF", "XN", "TreeFS", "TreeFSUDFs"], swiftSettings: strict),
        .testTarget(name: "ExOSTests", dependencies: ["CFFS", "ExOS", "Xok", "XokABI", "XokSimulation", "XN", "BPF", "XokTools", "XokHostLinux",
                                                      "TreeFS"],
                    swiftSettings: strict),
        .testTarget(name: "XNTests", dependencies: ["XN", "Xok", "XokABI", "XokSimulation", "XokHostLinux", "BPF", "TreeFS", "TreeFSUDFs", "CLinux"],
                    swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
