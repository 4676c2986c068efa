// swift-tools-version: 6.2
// The Xok/ExOS exokernel in Swift. Layers and their rules: ../shared/DESIGN.md §2.
import PackageDescription

let strict: [SwiftSetting] = [.treatAllWarnings(as: .error)]

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
        // Downloaded code: the RFC 9669 eBPF verifier and interpreter. Pure: no Foundation,
        // no Glibc; compiles as Embedded Swift (scripts/check-embedded).
        .target(name: "BPF", swiftSettings: strict),
        // Host-side tooling shared by the CLI and the tests: the conformance-suite format,
        // the plugin protocol, benchmark programs. May use Foundation.
        .target(name: "XokTools", dependencies: ["BPF"], swiftSettings: strict),
        .executableTarget(
            name: "xok",
            dependencies: [
                "BPF", "XokTools",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        .testTarget(name: "BPFTests", dependencies: ["BPF", "XokTools"], swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
