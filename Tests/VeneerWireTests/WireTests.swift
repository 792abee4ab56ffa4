import Foundation
import Testing
import VeneerCore
import VeneerWire

private func decode<T: Decodable>(_ type: T.Type, _ json: String) throws -> T {
    try JSONDecoder().decode(type, from: Data(json.utf8))
}

private func encodeSorted<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// The error a decode failed with, when it is a VeneerError.
private func veneerError(_ body: () throws -> Void) -> VeneerError? {
    do {
        try body()
        return nil
    } catch let error as VeneerError {
        return error
    } catch {
        Issue.record("expected a VeneerError, got \(error)")
        return nil
    }
}

@Suite("Wire: request bodies")
struct RequestBodyTests {
    @Test func prepareRequestDecodesEveryField() throws {
        let request = try decode(
            PrepareRequest.self, #"{"key":"k","parent":"p","kind":"view","labels":{"a":"1"}}"#)
        #expect(request == PrepareRequest(key: "k", parent: "p", kind: .view, labels: ["a": "1"]))
        let minimal = try decode(PrepareRequest.self, #"{"key":"k"}"#)
        #expect(minimal == PrepareRequest(key: "k"))
        #expect(minimal.parent == nil && minimal.kind == nil && minimal.labels == nil)
    }

    @Test func prepareRequestRejectsUnknownFields() {
        let error = veneerError { _ = try decode(PrepareRequest.self, #"{"key":"k","snapshotter":"overlay"}"#) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("\"snapshotter\"") == true, "\(String(describing: error))")
        #expect(error?.message.contains("prepare request") == true)
        #expect(error?.message.contains("key, kind, labels, parent") == true, "\(String(describing: error))")
    }

    @Test func fieldNamesAreCaseSensitive() {
        let error = veneerError { _ = try decode(PrepareRequest.self, #"{"key":"k","Parent":"p"}"#) }
        #expect(error?.code == .invalidArgument)
    }

    @Test func prepareRequestNeedsAKeyAndAKnownKind() {
        #expect(throws: DecodingError.self) { try decode(PrepareRequest.self, "{}") }
        #expect(throws: DecodingError.self) { try decode(PrepareRequest.self, #"{"key":"k","kind":"frozen"}"#) }
        #expect(throws: DecodingError.self) { try decode(PrepareRequest.self, #"{"key":5}"#) }
        #expect(throws: DecodingError.self) { try decode(PrepareRequest.self, #"{"key":"k","labels":{"a":1}}"#) }
        #expect(throws: DecodingError.self) { try decode(PrepareRequest.self, #"["key"]"#) }
    }

    @Test func commitRequest() throws {
        #expect(try decode(CommitRequest.self, #"{"name":"n"}"#) == CommitRequest(name: "n"))
        #expect(
            try decode(CommitRequest.self, #"{"name":"n","labels":{"x":"y"}}"#)
                == CommitRequest(name: "n", labels: ["x": "y"]))
        let error = veneerError { _ = try decode(CommitRequest.self, #"{"name":"n","key":"k"}"#) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("\"key\"") == true)
        #expect(throws: DecodingError.self) { try decode(CommitRequest.self, #"{"labels":{}}"#) }
    }

    @Test func updateRequest() throws {
        #expect(try decode(UpdateRequest.self, "{}") == UpdateRequest(labels: [:]))
        #expect(
            try decode(UpdateRequest.self, #"{"labels":{"a":""},"fieldpaths":["labels.a"]}"#)
                == UpdateRequest(labels: ["a": ""], fieldpaths: ["labels.a"]))
        let error = veneerError { _ = try decode(UpdateRequest.self, #"{"labels":{},"kind":"view"}"#) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("\"kind\"") == true)
    }

    @Test func requestsRoundTrip() throws {
        let prepare = PrepareRequest(key: "a/b", parent: "c", kind: .active, labels: ["l": "v"])
        #expect(try decode(PrepareRequest.self, encodeSorted(prepare)) == prepare)
        let commit = CommitRequest(name: "n", labels: nil)
        #expect(try decode(CommitRequest.self, encodeSorted(commit)) == commit)
        let update = UpdateRequest(labels: ["x": "1"], fieldpaths: ["labels.x"])
        #expect(try decode(UpdateRequest.self, encodeSorted(update)) == update)
    }
}

@Suite("Wire: response bodies")
struct ResponseBodyTests {
    let info = SnapshotInfo(
        key: "k", kind: .committed, parent: nil, labels: ["a": "1"],
        created: Timestamp(nanosecondsSinceEpoch: 1), updated: Timestamp(nanosecondsSinceEpoch: 2))

    @Test func snapshotInfoShape() throws {
        #expect(
            try encodeSorted(info)
                == #"{"created":"1970-01-01T00:00:00.000000001Z","key":"k","kind":"committed","labels":{"a":"1"},"updated":"1970-01-01T00:00:00.000000002Z"}"#
        )
        var child = info
        child.parent = "base"
        #expect(try decode(SnapshotInfo.self, encodeSorted(child)) == child)
    }

    @Test func snakeCaseFields() throws {
        #expect(try encodeSorted(CleanupResponse(removed: 2, reclaimedBytes: 4096)) == #"{"reclaimed_bytes":4096,"removed":2}"#)
        let status = StatusResponse(
            version: "1.0", root: "/r", rootFilesystem: "ext4", socket: "/s", grpcSocket: "/g",
            snapshots: KindCounts(active: 1, view: 2, committed: 3),
            namespaces: ["default": KindCounts(active: 1, view: 2, committed: 1), "containerd": KindCounts(committed: 2)],
            mounts: 4, maxDepth: 500, deepestChain: 7,
            overlay: OverlayFeatureReport(
                newMountAPI: true, index: false, metacopy: false, redirectDir: true, userxattr: true, dType: true),
            uptimeSeconds: 1.5)
        let json = try encodeSorted(status)
        #expect(json.contains(#""uptime_seconds":1.5"#), "\(json)")
        #expect(json.contains(#""root_filesystem":"ext4""#), "\(json)")
        #expect(json.contains(#""max_depth":500"#), "\(json)")
        #expect(json.contains(#""deepest_chain":7"#), "\(json)")
        #expect(json.contains(#""new_mount_api":true"#), "\(json)")
        #expect(json.contains(#""redirect_dir":true"#), "\(json)")
        #expect(json.contains(#""d_type":true"#), "\(json)")
        #expect(json.contains(#""snapshots":{"active":1,"committed":3,"view":2}"#), "\(json)")
        #expect(json.contains(#""grpc_socket":"/g""#), "\(json)")
        #expect(json.contains(#""containerd":{"active":0,"committed":2,"view":0}"#), "\(json)")
        #expect(try decode(StatusResponse.self, json) == status)
        #expect(status.snapshots.total == 6)
        var off = status
        off.grpcSocket = nil
        let offJSON = try encodeSorted(off)
        #expect(offJSON.contains(#""grpc_socket":null"#), "\(offJSON)")
        #expect(try decode(StatusResponse.self, offJSON) == off)
    }

    @Test func errorBodyShape() throws {
        let body = ErrorResponse(code: VeneerError.Code.notFound.rawValue, message: "gone")
        #expect(try encodeSorted(body) == #"{"error":{"code":"not_found","message":"gone"}}"#)
    }

    @Test func listAndMountsResponsesRoundTrip() throws {
        let list = ListResponse(snapshots: [info])
        #expect(try decode(ListResponse.self, encodeSorted(list)) == list)
        let mounts = MountsResponse(mounts: [Mount(type: "bind", source: "/x", options: ["ro", "rbind"])])
        #expect(try encodeSorted(mounts) == #"{"mounts":[{"options":["ro","rbind"],"source":"/x","type":"bind"}]}"#)
        let prepared = PrepareResponse(snapshot: info, mounts: mounts.mounts)
        #expect(try decode(PrepareResponse.self, encodeSorted(prepared)) == prepared)
    }

    @Test func errorCodesAreStable() {
        #expect(VeneerError.Code.allCases.map(\.rawValue) == [
            "invalid_argument", "not_found", "already_exists", "failed_precondition", "resource_exhausted",
            "unavailable", "internal",
        ])
        #expect(APIErrorCode.allCases.map(\.rawValue) == [
            "invalid_argument", "not_found", "already_exists", "failed_precondition", "resource_exhausted",
            "unavailable", "internal", "payload_too_large", "unsupported_media_type", "method_not_allowed",
            "request_timeout",
        ])
        #expect(VeneerError.notFound("x").description == "not_found: x")
    }

    @Test func serviceCodesGoOnTheWireAsTheyAre() {
        for code in VeneerError.Code.allCases {
            #expect(APIErrorCode.service(code).rawValue == code.rawValue)
            #expect(APIErrorCode.service(code).serviceCode == code)
        }
        #expect(APIErrorCode.payloadTooLarge.serviceCode == .invalidArgument)
        #expect(APIErrorCode.unsupportedMediaType.serviceCode == .invalidArgument)
        #expect(APIErrorCode.methodNotAllowed.serviceCode == .invalidArgument)
        #expect(APIErrorCode.requestTimeout.serviceCode == .unavailable)
    }

    @Test func aCauseIsKeptButNotCompared() {
        struct Underlying: Error { var errno: Int32 }
        let error = VeneerError.internal("cannot write the database", cause: Underlying(errno: 28))
        #expect(error == VeneerError.internal("cannot write the database"))
        #expect((error.cause as? Underlying)?.errno == 28)
        #expect(error.description == "internal: cannot write the database")
        #expect(VeneerError.internal("x").cause == nil)
    }
}

@Suite("Wire: path segments")
struct PathSegmentTests {
    @Test(arguments: [
        "plain", "a/b", "/", "//", "a:b", "sha256:0123abcdef", "with space", "%", "%25", "%2F", "..", ".", "...",
        "a/../b", "🐳", "👩‍👧", "é", "e\u{301}", "tab\there", "new\nline", "q?x=1&y#z", "+plus", "~_-", "\u{7F}",
        String(repeating: "k/", count: 2048),
    ])
    func roundTrips(key: String) throws {
        let encoded = PathSegment.encode(key)
        #expect(try PathSegment.decode(encoded[...]) == key)
        // Nothing in the segment can be read as a separator or a dot segment.
        #expect(encoded.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_~%".contains($0)) }, "\(encoded)")
        #expect(encoded != "." && encoded != "..")
    }

    @Test func encodesExactly() {
        #expect(PathSegment.encode("a/b") == "a%2Fb")
        #expect(PathSegment.encode("..") == "%2E%2E")
        #expect(PathSegment.encode(".") == "%2E")
        #expect(PathSegment.encode("a:b c") == "a%3Ab%20c")
        #expect(PathSegment.encode("%") == "%25")
        #expect(PathSegment.encode("🐳") == "%F0%9F%90%B3")
        #expect(PathSegment.encode("Az09-_~") == "Az09-_~")
        #expect(PathSegment.encode("") == "")
    }

    @Test func decodesLowercaseHexAndUnencodedCharacters() throws {
        #expect(try PathSegment.decode("a%2fb") == "a/b")
        #expect(try PathSegment.decode("%f0%9f%90%b3") == "🐳")
        // Clients may leave safe characters unencoded.
        #expect(try PathSegment.decode("a.b:c@d") == "a.b:c@d")
        // "+" is not a space in a path.
        #expect(try PathSegment.decode("a+b") == "a+b")
        #expect(try PathSegment.decode("%2525") == "%25")
    }

    @Test(arguments: ["%zz", "%4", "%", "abc%", "%g0", "%0g", "a%2", "%%41"])
    func malformedEscapesAreInvalid(segment: String) {
        let error = #expect(throws: VeneerError.self) { try PathSegment.decode(segment[...]) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("malformed percent-encoding") == true, "\(String(describing: error))")
        #expect(error?.message.contains(quoted(segment)) == true)
    }

    @Test(arguments: ["%FF", "%C3", "%C3%28", "a%80b", "%ED%A0%80", "%F4%90%80%80", "%C0%AF"])
    func invalidUTF8IsInvalid(segment: String) {
        let error = #expect(throws: VeneerError.self) { try PathSegment.decode(segment[...]) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("not valid UTF-8") == true, "\(String(describing: error))")
    }

    @Test func decodesASubstringOfALargerPath() throws {
        let path = "/v1/snapshots/a%2Fb%20c/mounts"
        let parts = path.split(separator: "/")
        #expect(try PathSegment.decode(parts[2]) == "a/b c")
    }
}
