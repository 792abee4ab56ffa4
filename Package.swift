// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
]

let package = Package(
    name: "Veneer",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "veneerd", targets: ["veneerd"]),
        .executable(name: "veneer", targets: ["veneer"]),
        .executable(name: "veneer-bench", targets: ["veneer-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
    ],
    targets: [
        // The domain: snapshots, their rules, errors and mount planning. Pure Swift; no
        // JSON, no filter language, no wire types.
        .target(name: "VeneerCore", swiftSettings: strict),
        // containerd's filter language, with its RE2 engine for `~=`.
        .target(name: "VeneerFilter", dependencies: ["VeneerCore"], swiftSettings: strict),
        // The one JSON machinery: a strict parser, a decoder over what it parses, a writer.
        .target(name: "VeneerJSON", dependencies: ["VeneerCore"], swiftSettings: strict),
        // The v1 HTTP wire types, shared by the daemon and its clients.
        .target(name: "VeneerWire", dependencies: ["VeneerCore", "VeneerJSON"], swiftSettings: strict),
        // Metadata store on SQLite.
        .target(
            name: "VeneerStore",
            dependencies: ["VeneerCore", "VeneerJSON", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict
        ),
        // The only code of the daemon that talks to libc and system C libraries.
        .target(name: "CVeneerOS"),
        .systemLibrary(name: "CMount", pkgConfig: "mount", providers: [.apt(["libmount-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        // libarchive reads and writes tar streams and their gzip/zstd compression; never
        // its disk writer (the daemon extracts through descriptors of its own).
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),
        .target(
            name: "VeneerOS", dependencies: ["VeneerCore", "CVeneerOS", "CMount", "CSystemd", "CArchive"],
            swiftSettings: strict),
        // The bare mount system calls the benchmark measures the daemon against; only
        // the benchmark links it.
        .target(name: "VeneerOSBaseline", dependencies: ["CVeneerOS", "VeneerOS"], swiftSettings: strict),
        // containerd's snapshots API (messages and service stubs), generated from the .proto
        // files in api/ by `make proto` and committed.
        .target(
            name: "ContainerdAPI",
            dependencies: [
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            ],
            path: "api/generated",
            exclude: ["SOURCES.sha256"],
            swiftSettings: strict
        ),
        // The gRPC front end (containerd's snapshots API): a thin adapter over the service,
        // errors as gRPC statuses and the domain's values in containerd's messages.
        .target(
            name: "VeneerGRPC",
            dependencies: [
                "VeneerCore", "VeneerService", "ContainerdAPI",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict
        ),
        // The service every front end calls: the containerd verbs, daemon-made mounts,
        // status and cleanup. It owns the store and the work on the file system.
        .target(
            name: "VeneerService",
            dependencies: [
                "VeneerCore", "VeneerFilter", "VeneerStore", "VeneerOS",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The HTTP front end: a thin adapter over the service (routes, bodies, statuses).
        .target(
            name: "VeneerAPI",
            dependencies: [
                "VeneerCore", "VeneerJSON", "VeneerWire", "VeneerService",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Daemon wiring: configuration, start-up checks, server lifecycle.
        .target(
            name: "VeneerDaemon",
            dependencies: [
                "VeneerCore", "VeneerWire", "VeneerOS", "VeneerService", "VeneerAPI", "VeneerGRPC",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ],
            swiftSettings: strict
        ),
        // Client for the daemon's socket, used by the CLI and the tests.
        .target(
            name: "VeneerClient",
            dependencies: [
                "VeneerCore", "VeneerWire",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "veneerd",
            dependencies: [
                "VeneerDaemon", "VeneerOS", "VeneerClient", "VeneerCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "veneer",
            dependencies: [
                "VeneerCore", "VeneerWire", "VeneerClient", "VeneerOS",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "veneer-bench",
            dependencies: [
                "VeneerCore", "VeneerWire", "VeneerOS", "VeneerOSBaseline", "ContainerdAPI", "VeneerDaemon",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        // Shared by every test target: temporary directories, running programs, the
        // mount table, a raw HTTP/1.1 client, a real veneerd process, loggers.
        .target(
            name: "VeneerTestSupport",
            dependencies: [
                "VeneerCore", "VeneerClient", "VeneerOS",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/VeneerTestSupport",
            swiftSettings: strict
        ),
        .testTarget(
            name: "ContainerdAPITests",
            dependencies: [
                "VeneerTestSupport", "ContainerdAPI", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VeneerGRPCTests",
            dependencies: [
                "VeneerTestSupport", "VeneerGRPC", "ContainerdAPI", "VeneerCore", "VeneerService", "VeneerOS",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "VeneerCoreTests", dependencies: ["VeneerTestSupport", "VeneerCore"], swiftSettings: strict),
        .testTarget(
            name: "VeneerFilterTests", dependencies: ["VeneerTestSupport", "VeneerFilter", "VeneerCore"],
            swiftSettings: strict),
        .testTarget(
            name: "VeneerJSONTests", dependencies: ["VeneerTestSupport", "VeneerJSON", "VeneerWire", "VeneerCore"],
            swiftSettings: strict),
        .testTarget(
            name: "VeneerWireTests", dependencies: ["VeneerTestSupport", "VeneerWire", "VeneerCore"],
            swiftSettings: strict),
        .testTarget(
            name: "VeneerStoreTests",
            dependencies: [
                "VeneerTestSupport", "VeneerStore", "VeneerCore", "VeneerJSON",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VeneerOSTests", dependencies: ["VeneerTestSupport", "VeneerOS", "VeneerCore"], swiftSettings: strict),
        .testTarget(
            name: "SystemdTests",
            dependencies: ["VeneerTestSupport", "VeneerCore", "VeneerWire", "VeneerClient", "VeneerOS"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VeneerServiceTests",
            dependencies: ["VeneerTestSupport", "VeneerService", "VeneerCore", "VeneerOS"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VeneerAPITests",
            dependencies: [
                "VeneerTestSupport", "VeneerAPI", "VeneerCore", "VeneerJSON", "VeneerWire", "VeneerService",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VeneerDaemonTests",
            dependencies: [
                "VeneerTestSupport", "VeneerDaemon", "VeneerCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "VeneerTestSupport", "VeneerCore", "VeneerJSON", "VeneerWire", "VeneerClient", "VeneerOS",
                .product(name: "Yams", package: "Yams"),
            ],
            exclude: ["Support/make-oci-image.py"],
            swiftSettings: strict
        ),
    ]
)
