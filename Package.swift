// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "rujuk",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "rujuk", targets: ["rujuk"]),
        .executable(name: "rujuk-faults", targets: ["RujukFaults"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        .systemLibrary(
            name: "CZeroMQ",
            pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"])]
        ),
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ"]),
        .target(name: "RujukCore"),
        // The decoder's fuzz target: `make fuzz` builds it with libFuzzer; a plain build replays inputs.
        .executableTarget(name: "RujukFuzz", dependencies: ["RujukCore"]),
        .target(
            name: "RujukHTTP",
            dependencies: [
                "RujukCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "CSQLiteTuning",
            linkerSettings: [.linkedLibrary("sqlite3")]
        ),
        .target(
            name: "RujukStorage",
            dependencies: [
                "RujukCore", "CSQLiteTuning",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ]
        ),
        .target(
            name: "RujukBroker",
            dependencies: [
                "RujukCore", "RujukHTTP", "RujukStorage", "ZeroMQ",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "RujukAdapter",
            dependencies: [
                "RujukCore", "RujukHTTP", "RujukStorage", "ZeroMQ",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "rujuk",
            dependencies: [
                "RujukCore", "RujukBroker", "RujukAdapter", "RujukStorage", "ZeroMQ",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ]
        ),
        // The fault suite (`make faults`): drives real `rujuk` processes and checks the outcome.
        .executableTarget(
            name: "RujukFaults",
            dependencies: [
                "RujukCore", "RujukAdapter",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "RujukFaultsTests",
            dependencies: ["RujukFaults"]
        ),
        .testTarget(
            name: "ZeroMQTests",
            dependencies: ["ZeroMQ"]
        ),
        .testTarget(
            name: "RujukCoreTests",
            dependencies: ["RujukCore"],
            resources: []
        ),
        .testTarget(
            name: "RujukIntegrationTests",
            dependencies: [
                "RujukCore", "RujukBroker", "RujukAdapter", "RujukStorage", "RujukHTTP", "ZeroMQ",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
    ]
)
