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
        // What every side shares: the framing codec, identities and pinned keys, errors, JSON and output, clocks.
        .target(
            name: "TCPIPCore",
            dependencies: [
                "TCPIPWire",
                "CTCPIPSystem",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ]
        ),
        // The hub: admission, registration, routing, its server. It knows no client, receiver or store code.
        .target(
            name: "TCPIPHub",
            dependencies: [
                "TCPIPWire",
                "TCPIPCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // A client of the hub: the session, messages, receipts, sending files.
        .target(
            name: "TCPIPClient",
            dependencies: [
                "TCPIPWire",
                "TCPIPCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The receiving side: the spool, the transfer state machine, hooks; a client of the hub.
        .target(
            name: "TCPIPReceiver",
            dependencies: [
                "TCPIPWire",
                "TCPIPCore",
                "TCPIPClient",
                "CTCPIPSystem",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The hub's store: a receiver and a sender inside tcpipd, joined to the hub through a local socket.
        .target(
            name: "TCPIPStore",
            dependencies: [
                "TCPIPWire",
                "TCPIPCore",
                "TCPIPHub",
                "TCPIPClient",
                "TCPIPReceiver",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Node keys and TLS 1.3 links (swift-nio-ssl, swift-certificates), kept out of TCPIPCore so that the fuzz build
        // does not compile a second BoringSSL.
        .target(
            name: "TCPIPTLS",
            dependencies: [
                "TCPIPCore",
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
                "TCPIPWire",
                "TCPIPCore",
                "TCPIPClient",
                "TCPIPTLS",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "tcpipd",
            dependencies: [
                "TCPIPWire",
                "TCPIPCore",
                "TCPIPHub",
                "TCPIPReceiver",
                "TCPIPStore",
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
                "TCPIPCore",
                "TCPIPClient",
                "TCPIPCLI",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "tcpiprecvd",
            dependencies: [
                "TCPIPCore",
                "TCPIPReceiver",
                "TCPIPCLI",
                "TCPIPWire",
                .product(name: "NIOCore", package: "swift-nio"),
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
                "TCPIPCore",
                "TCPIPHub",
                "TCPIPClient",
                "TCPIPReceiver",
                "TCPIPWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
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
                "CTCPIPSystem",
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
            ]
        ),
        .testTarget(
            name: "TCPIPKitTests",
            dependencies: [
                "TCPIPCore",
                "TCPIPHub",
                "TCPIPClient",
                "TCPIPReceiver",
                "TCPIPStore",
                "TCPIPTLS",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                "TCPIPFuzz",
                "TCPIPWire",
                "TCPIPTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
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
