// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "tcpipctl",
    // Linux only (Glibc, syncfs(2), /proc): no Apple platform is listed because none is built or tested.
    products: [
        .executable(name: "tcpipd", targets: ["tcpipd"]),
        .executable(name: "tcpipctl", targets: ["tcpipctl"]),
        .executable(name: "tcpiprecvd", targets: ["tcpiprecvd"]),
        .library(name: "TCPIPWire", targets: ["TCPIPWire"]),
        .library(name: "TCPIPKit", targets: ["TCPIPKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/adam-fowler/compress-nio", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
    ],
    targets: [
        // The wire format: packets, header, frame parser. No sockets, no files: only ByteBuffer.
        .target(
            name: "TCPIPWire",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")]
        ),
        // Linux calls Swift's Glibc module does not expose (syncfs).
        .target(name: "CTCPIPSystem"),
        // The logic on SwiftNIO: hub, client session, output helpers.
        .target(
            name: "TCPIPKit",
            dependencies: [
                "TCPIPWire",
                "CTCPIPSystem",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ]
        ),
        // Node keys and TLS 1.3 links (swift-nio-ssl, swift-certificates), kept out of TCPIPKit so that the fuzz build
        // does not compile a second BoringSSL.
        .target(
            name: "TCPIPTLS",
            dependencies: [
                "TCPIPKit",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // What the three front ends share: connection options, error reporting, logging set-up.
        .target(
            name: "TCPIPCLI",
            dependencies: [
                "TCPIPKit",
                "TCPIPTLS",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "tcpipd",
            dependencies: [
                "TCPIPWire",
                "TCPIPKit",
                "TCPIPTLS",
                "TCPIPCLI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "tcpipctl",
            dependencies: [
                "TCPIPWire",
                "TCPIPKit",
                "TCPIPCLI",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "tcpiprecvd",
            dependencies: [
                "TCPIPKit",
                "TCPIPCLI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The fuzz targets (decoders and the hub core with their invariants), shared by the libFuzzer driver and the
        // regression replay in the tests.
        .target(
            name: "TCPIPFuzz",
            dependencies: [
                "TCPIPKit",
                "TCPIPWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // scripts/fuzz builds it with -sanitize=fuzzer,address -DFUZZING; built normally it replays a corpus.
        .executableTarget(name: "tcpip-fuzz", dependencies: ["TCPIPFuzz"]),
        // Helpers shared by the test targets: spawning the built programs, raw sockets, temporary folders.
        .target(
            name: "TCPIPTestSupport",
            dependencies: [
                "TCPIPWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "TCPIPWireTests",
            dependencies: [
                "TCPIPWire",
                "TCPIPTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "TCPIPKitTests",
            dependencies: [
                "TCPIPKit",
                "TCPIPTLS",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                "TCPIPFuzz",
                "TCPIPWire",
                "TCPIPTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["TCPIPTestSupport", "TCPIPWire", .product(name: "NIOCore", package: "swift-nio")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
