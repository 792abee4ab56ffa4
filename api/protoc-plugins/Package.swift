// swift-tools-version:6.1
// The protoc plugins that generate api/generated from the .proto files (`make proto`),
// pinned to the versions the package builds against. Built only to regenerate.
import PackageDescription

let package = Package(
    name: "ProtocPlugins",
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", exact: "2.4.1"),
    ],
    targets: []
)
