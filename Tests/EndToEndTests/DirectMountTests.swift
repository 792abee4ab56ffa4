import Foundation
import Testing
import VeneerClient
import VeneerCore
import VeneerTestSupport
import VeneerWire

/// `POST /v1/mounts` is carried out on the connection's event loop unless the request
/// has a `Connection` header, which sends it through the router. These tests send the
/// same requests both ways and hold the answers against each other.
@Suite("Mounts answered on the event loop")
struct DirectMountTests {
    /// One request on a connection of its own. `routed` adds `Connection: close`, which
    /// makes the router answer; without it a mount is answered on the event loop.
    static func send(
        _ daemon: Daemon, _ method: String, _ target: String, body: [UInt8]?,
        contentType: String? = "application/json", routed: Bool
    ) throws -> RawResponse {
        try RawHTTP.exchange(
            socket: daemon.socket, method: method, target: target, body: body,
            headers: contentType.map { [("Content-Type", $0)] } ?? [], keepAlive: !routed)
    }

    static func json(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test("each answer, success or error, is the router's: same status, headers and body")
    func sameAnswersAsRouter() async throws {
        try await withContainer { daemon, _, calls in
            let target = try daemon.mountPoint("free")
            let busy = try daemon.mountPoint("busy")
            try await calls.mounted("ctr", at: busy, readonly: true)
            let file = daemon.temp.path + "/a-file"
            try Tree.write(file, "x")
            let link = daemon.temp.path + "/a-link"
            try Tree.symlink(target, at: link)
            let inRoot = daemon.root + "/snapshots"

            struct Case {
                var what: String
                var body: [UInt8]?
                var contentType: String? = "application/json"
                var status: Int
            }
            let cases: [Case] = [
                Case(what: "a mount", body: Self.json(#"{"key":"ctr","target":"\#(target)","readonly":true}"#), status: 201),
                Case(what: "a missing snapshot", body: Self.json(#"{"key":"nope","target":"\#(target)"}"#), status: 404),
                Case(what: "an invalid key", body: Self.json(#"{"key":"","target":"\#(target)"}"#), status: 400),
                Case(what: "a relative target", body: Self.json(#"{"key":"ctr","target":"mnt/x"}"#), status: 400),
                Case(what: "a file as target", body: Self.json(#"{"key":"ctr","target":"\#(file)"}"#), status: 400),
                Case(what: "a symlink as target", body: Self.json(#"{"key":"ctr","target":"\#(link)"}"#), status: 400),
                Case(what: "a target in the state root", body: Self.json(#"{"key":"ctr","target":"\#(inRoot)"}"#), status: 400),
                Case(what: "a writable mount beside a read-only one", body: Self.json(#"{"key":"ctr","target":"\#(target)"}"#), status: 409),
                Case(what: "a target already mounted", body: Self.json(#"{"key":"ctr","target":"\#(busy)","readonly":true}"#), status: 409),
                Case(what: "an unknown field", body: Self.json(#"{"key":"ctr","target":"\#(target)","x":1}"#), status: 400),
                Case(what: "a missing field", body: Self.json(#"{"target":"\#(target)"}"#), status: 400),
                Case(what: "a wrong type", body: Self.json(#"{"key":"ctr","target":"\#(target)","readonly":"yes"}"#), status: 400),
                Case(what: "malformed JSON", body: Self.json(#"{"key":"ctr","#), status: 400),
                Case(what: "a duplicate field", body: Self.json(#"{"key":"ctr","key":"ctr","target":"\#(target)"}"#), status: 400),
                Case(what: "no body", body: nil, status: 400),
                Case(what: "no media type", body: Self.json(#"{"key":"ctr","target":"\#(target)"}"#), contentType: nil, status: 415),
                Case(what: "another media type", body: Self.json(#"{"key":"ctr"}"#), contentType: "text/plain", status: 415),
                Case(what: "a body over 1 MiB", body: [UInt8](repeating: 0x20, count: (1 << 20) + 1), status: 413),
            ]
            for item in cases {
                var answers: [RawResponse] = []
                for routed in [false, true] {
                    let before = try await StoredState.of(daemon)
                    let response = try Self.send(daemon, "POST", "/v1/mounts", body: item.body, contentType: item.contentType, routed: routed)
                    #expect(response.status == item.status, "\(item.what), routed \(routed): \(response.text)")
                    if response.status == 201 {
                        let live = try response.decoded(LiveMount.self)
                        #expect(live.target == target && live.key == "ctr" && live.readonly)
                        #expect(MountInfo.targets(under: target).contains(target), "\(item.what): nothing mounted at \(target)")
                        try await calls.unmounted(target)
                    } else {
                        #expect(try await StoredState.of(daemon) == before, "\(item.what), routed \(routed) changed what is stored")
                        #expect(!MountInfo.targets(under: target).contains(target), "\(item.what) mounted something")
                    }
                    answers.append(response)
                }
                guard answers.count == 2 else { continue }
                let (direct, routed) = (answers[0], answers[1])
                #expect(direct.status == routed.status, "\(item.what)")
                #expect(direct.header("Content-Type") == routed.header("Content-Type"), "\(item.what)")
                #expect(direct.header("Server") == routed.header("Server"), "\(item.what)")
                #expect(direct.header("Content-Length") == String(direct.body.count), "\(item.what)")
                if direct.status == 201 {
                    // Equal but for the time of the mount.
                    var first = try direct.decoded(LiveMount.self)
                    let second = try routed.decoded(LiveMount.self)
                    first.mountedAt = second.mountedAt
                    #expect(first == second, "\(item.what)")
                } else {
                    #expect(direct.text == routed.text, "\(item.what)")
                }
            }
            try await calls.unmounted(busy)
        }
    }

    @Test("requests behind a mount on one connection are answered after it, in order")
    func pipelinedBehindMount() async throws {
        try await withContainer { daemon, _, calls in
            let first = try daemon.mountPoint("first")
            let second = try daemon.mountPoint("second")
            let mount = { (target: String) in #"{"key":"ctr","target":"\#(target)"}"# }
            let responses = try RawHTTP.pipelined(
                socket: daemon.socket,
                [
                    RawHTTP.request("POST", MountCalls.path, json: mount(first)),
                    // Answered directly, but only after the mount.
                    RawHTTP.request("GET", APIPath.snapshot("ctr")),
                    // Refused: the active snapshot is mounted writable already.
                    RawHTTP.request("POST", MountCalls.path, json: mount(second)),
                    RawHTTP.request("GET", MountCalls.path),
                    RawHTTP.request("DELETE", MountCalls.path + "?target=" + PathSegment.encode(first)),
                    // Mounted again, then the router answers the list.
                    RawHTTP.request("POST", MountCalls.path, json: mount(second)),
                    RawHTTP.request("GET", MountCalls.path, close: true),
                ])
            #expect(responses.map(\.status) == [201, 200, 409, 200, 204, 201, 200])
            guard responses.count == 7 else { return }
            #expect(try responses[0].decoded(LiveMount.self).target == first)
            #expect(try responses[1].decoded(SnapshotInfo.self).key == "ctr")
            #expect(responses[2].text.contains("already mounted at \(first)"))
            #expect(try responses[3].decoded(LiveMountsResponse.self).mounts.map(\.target) == [first])
            #expect(try responses[6].decoded(LiveMountsResponse.self).mounts.map(\.target) == [second])
            #expect(!MountInfo.targets(under: first).contains(first))
            #expect(MountInfo.targets(under: second).contains(second))
            try await calls.unmounted(second)
        }
    }
}
