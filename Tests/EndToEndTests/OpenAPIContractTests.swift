import Foundation
import Testing
import VeneerWire

/// Tests of the contract checker itself, on hand-made bodies; no daemon involved.
@Suite struct OpenAPIContractTests {
    let contract: OpenAPIContract

    init() throws {
        contract = try OpenAPIContract()
    }

    static let info = """
        {"key":"ctr-1","kind":"active","parent":"layer-2","labels":{"a":"b"},
         "created":"2026-11-22T10:11:12.123456789Z","updated":"2026-11-22T10:11:13.000000000Z"}
        """

    func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// Runs `check` and returns the violations it reports (nil when it reports none).
    func violations(
        _ method: String, _ path: String, _ status: Int, _ body: String
    ) -> [String]? {
        do {
            try contract.check(method: method, pathTemplate: path, status: status, body: bytes(body))
            return nil
        } catch let error as OpenAPIContract.Violations {
            return error.messages
        } catch {
            Issue.record("unexpected error: \(error)")
            return []
        }
    }

    // MARK: Snapshot info

    @Test func validInfoPasses() throws {
        try contract.check(method: "GET", pathTemplate: "/v1/snapshots/{key}", status: 200, body: bytes(Self.info))
        let noParent = """
            {"key":"base","kind":"committed","labels":{},"created":"2026-11-22T10:11:12.123456789Z",
             "updated":"2026-11-22T10:11:12.123456789Z"}
            """
        try contract.check(method: "get", pathTemplate: "/v1/snapshots/{key}", status: 200, body: bytes(noParent))
    }

    @Test func missingCreatedFails() throws {
        let body = Self.info.replacingOccurrences(of: "\"created\":\"2026-11-22T10:11:12.123456789Z\",", with: "")
        #expect(!body.contains("created"))
        let messages = try #require(violations("GET", "/v1/snapshots/{key}", 200, body))
        #expect(messages == ["$.created: required field is missing"])
    }

    @Test func extraFieldFails() throws {
        let body = Self.info.replacingOccurrences(of: "\"kind\":\"active\",", with: "\"kind\":\"active\",\"id\":7,")
        let messages = try #require(violations("GET", "/v1/snapshots/{key}", 200, body))
        #expect(messages.count == 1)
        #expect(messages.first?.hasPrefix("$.id: field is not documented") == true)
    }

    @Test func everyViolationIsReported() throws {
        let body = """
            {"key":"","kind":"frozen","labels":{"a":1},"created":"2026-11-22T10:11:12.123Z",
             "updated":"yesterday","extra":true}
            """
        let error = #expect(throws: OpenAPIContract.Violations.self) {
            try contract.check(method: "GET", pathTemplate: "/v1/snapshots/{key}", status: 200, body: bytes(body))
        }
        let messages = error?.messages ?? []
        #expect(messages.count == 7, "\(messages)")
        for location in ["$.key:", "$.kind:", "$.labels.a:", "$.created:", "$.updated:", "$.extra:"] {
            #expect(messages.contains { $0.hasPrefix(location) }, "no violation at \(location) in \(messages)")
        }
        // The description names the request and lists each violation on its own line.
        let text = String(describing: try #require(error))
        #expect(text.hasPrefix("GET /v1/snapshots/{key} answered 200"))
        #expect(text.contains("\n  - $.extra: field is not documented"))
    }

    @Test func wrongTypesFail() throws {
        let nullParent = Self.info.replacingOccurrences(of: "\"layer-2\"", with: "null")
        #expect(violations("GET", "/v1/snapshots/{key}", 200, nullParent)?.first?.hasPrefix("$.parent: expected string") == true)
        let arrayLabels = Self.info.replacingOccurrences(of: "{\"a\":\"b\"}", with: "[]")
        #expect(violations("GET", "/v1/snapshots/{key}", 200, arrayLabels)?.first?.hasPrefix("$.labels: expected object") == true)
        #expect(violations("GET", "/v1/snapshots/{key}", 200, "[]")?.first?.hasPrefix("$: expected object") == true)
    }

    @Test func timestampsNeedNineFractionalDigitsInUTC() {
        for bad in ["2026-11-22T10:11:12.123Z", "2026-11-22T10:11:12Z", "2026-11-22T10:11:12.123456789+01:00",
                    "2026-13-22T10:11:12.123456789Z"] {
            let body = Self.info.replacingOccurrences(of: "2026-11-22T10:11:12.123456789Z", with: bad)
            let messages = violations("GET", "/v1/snapshots/{key}", 200, body)
            #expect(messages?.allSatisfy { $0.hasPrefix("$.created:") } == true, "\(bad): \(messages ?? [])")
        }
    }

    // MARK: Statuses and operations

    @Test func undocumentedStatusFails() throws {
        let messages = try #require(violations("GET", "/v1/snapshots/{key}", 201, Self.info))
        #expect(messages.count == 1)
        #expect(messages.first?.hasPrefix("status 201 is not documented for GET /v1/snapshots/{key}") == true)
        #expect(violations("GET", "/v1/status", 409, #"{"error":{"code":"already_exists","message":"x"}}"#) != nil)
    }

    @Test func errorBodyPassesFor404() throws {
        try contract.check(
            method: "GET", pathTemplate: "/v1/snapshots/{key}", status: 404,
            body: bytes(#"{"error":{"code":"not_found","message":"snapshot \"x\" does not exist"}}"#))
    }

    @Test func errorCodeMustMatchStatus() {
        let wrongCode = #"{"error":{"code":"already_exists","message":"m"}}"#
        #expect(violations("GET", "/v1/snapshots/{key}", 404, wrongCode)?.first?.hasPrefix("$.error.code:") == true)
        // Commit documents both 409 codes; remove only failed_precondition.
        #expect(violations("POST", "/v1/snapshots/{key}/commit", 409, wrongCode) == nil)
        #expect(violations("DELETE", "/v1/snapshots/{key}", 409, wrongCode) != nil)
        #expect(violations("GET", "/v1/snapshots/{key}", 404, #"{"error":{"code":"nope","message":"m"}}"#) != nil)
        #expect(violations("GET", "/v1/snapshots/{key}", 404, #"{"error":{"code":"not_found"}}"#)
            == ["$.error.message: required field is missing"])
        #expect(violations("GET", "/v1/snapshots/{key}", 404, #"{"code":"not_found","message":"m"}"#)?.count == 3)
    }

    @Test func noContentMeansEmptyBody() {
        #expect(violations("DELETE", "/v1/snapshots/{key}", 204, "") == nil)
        let messages = violations("DELETE", "/v1/snapshots/{key}", 204, "{}")
        #expect(messages?.first?.contains("documents no body") == true)
    }

    @Test func jsonBodyMustNotBeEmptyOrMalformed() {
        #expect(violations("GET", "/v1/status", 200, "")?.first?.hasPrefix("the body is empty") == true)
        #expect(violations("GET", "/v1/snapshots", 200, #"{"snapshots":[]"#)?.first?.hasPrefix("the body is not valid JSON") == true)
        #expect(violations("GET", "/v1/snapshots", 200, #"{"snapshots":[]} x"#) != nil)
        #expect(violations("GET", "/v1/snapshots", 200, #"{"snapshots":[],"snapshots":[]}"#) != nil)
    }

    @Test func concretePathsAndQueriesMatchTheirTemplates() throws {
        try contract.check(method: "GET", pathTemplate: "/v1/snapshots/a%2Fb", status: 200, body: bytes(Self.info))
        try contract.check(
            method: "GET", pathTemplate: "/v1/snapshots/%2E%2E/usage", status: 200, body: bytes(#"{"size":0,"inodes":1}"#))
        try contract.check(
            method: "GET", pathTemplate: "/v1/snapshots?filter=kind%3D%3Dview", status: 200, body: bytes(#"{"snapshots":[]}"#))
        // Literal segments must match: `commit` selects the commit route.
        #expect(violations("POST", "/v1/snapshots/x/commit", 201, Self.info) == nil)
        #expect(violations("POST", "/v1/snapshots/x/commit", 200, Self.info) != nil)
    }

    @Test func unknownRoutesAre404AndUnknownMethods405() {
        let notFound = #"{"error":{"code":"not_found","message":"no route"}}"#
        let notAllowed = #"{"error":{"code":"method_not_allowed","message":"PUT is not allowed on /v1/status; use one of GET"}}"#
        #expect(violations("GET", "/v2/snapshots", 404, notFound) == nil)
        #expect(violations("GET", "/v1/snapshots/a/", 404, notFound) == nil)
        #expect(violations("PUT", "/v1/status", 405, notAllowed) == nil)
        #expect(violations("POST", "/v1/snapshots/{key}/mounts", 405, notAllowed) == nil)
        #expect(violations("PUT", "/v1/status", 405, notFound) != nil)
        #expect(violations("PUT", "/v1/status", 404, notAllowed) != nil)
        #expect(violations("GET", "/v2/snapshots", 200, "{}") != nil)
        #expect(violations("GET", "/v2/snapshots", 404, #"{"error":{"code":"internal","message":"m"}}"#) != nil)
    }

    // MARK: What clients may send

    func requestViolations(_ schema: String, _ body: String) throws -> [String] {
        try contract.schemaViolations(bytes(body), against: "#/components/schemas/" + schema)
    }

    @Test func requestSchemasRefuseWhatTheServerRefuses() throws {
        #expect(try requestViolations("PrepareRequest", #"{"key":"a","parent":"p","kind":"view","labels":{"x":"1"}}"#) == [])
        #expect(try requestViolations("PrepareRequest", #"{"key":"a","labels":{"a\u0000":"v"}}"#).isEmpty == false)
        #expect(try requestViolations("PrepareRequest", #"{"key":"a","labels":{"a":"v\u0000"}}"#).isEmpty == false)
        #expect(try requestViolations("PrepareRequest", #"{"key":"a","labels":{"":"v"}}"#).isEmpty == false)
        // No field is nullable.
        for field in ["parent", "kind", "labels"] {
            #expect(try requestViolations("PrepareRequest", #"{"key":"a","\#(field)":null}"#).isEmpty == false, "\(field)")
        }
        #expect(try requestViolations("CommitRequest", #"{"name":"n","labels":null}"#).isEmpty == false)
        #expect(try requestViolations("CommitRequest", #"{"name":"n","labels":{"a":"\u0000"}}"#).isEmpty == false)
        #expect(try requestViolations("UpdateRequest", #"{"labels":{"a":""},"fieldpaths":["labels","labels.a","labels.a.b/c"]}"#) == [])
        for bad in [#""""#, #""labels.""#, #""parent""#, #""Labels.a""#, #""labelsX""#, "null"] {
            #expect(try requestViolations("UpdateRequest", #"{"fieldpaths":[\#(bad)]}"#).isEmpty == false, "\(bad)")
        }
        #expect(try requestViolations("UpdateRequest", #"{"fieldpaths":null}"#).isEmpty == false)
        #expect(try requestViolations("UpdateRequest", #"{"labels":null}"#).isEmpty == false)
        #expect(try requestViolations("MountRequest", #"{"key":"k","target":"/t","readonly":null}"#).isEmpty == false)
        // An empty filter is refused.
        let filter = "#/components/parameters/Filter/schema"
        #expect(try contract.schemaViolations(bytes(#"["kind==view"]"#), against: filter) == [])
        #expect(try contract.schemaViolations(bytes(#"[""]"#), against: filter).isEmpty == false)
    }

    // MARK: Other bodies

    @Test func prepareAndMountBodies() {
        let overlay = """
            {"snapshot":\(Self.info),"mounts":[{"type":"overlay","source":"overlay",
             "options":["workdir=/r/snapshots/2/work","upperdir=/r/snapshots/2/fs","lowerdir=/r/snapshots/1/fs"]}]}
            """
        #expect(violations("POST", "/v1/snapshots", 201, overlay) == nil)
        #expect(violations("POST", "/v1/snapshots", 200, overlay) != nil)
        #expect(violations("GET", "/v1/snapshots/{key}/mounts", 200, #"{"mounts":[]}"#)?.first?.hasPrefix("$.mounts: 0 items") == true)
        let nfs = #"{"mounts":[{"type":"nfs","source":"s","options":[]}]}"#
        #expect(violations("GET", "/v1/snapshots/{key}/mounts", 200, nfs)?.first?.hasPrefix("$.mounts[0].type:") == true)
        let badOptions = #"{"mounts":[{"type":"bind","source":"/s","options":"ro"}]}"#
        #expect(violations("GET", "/v1/snapshots/{key}/mounts", 200, badOptions)?.first?.hasPrefix("$.mounts[0].options:") == true)
    }

    @Test func numericFields() {
        #expect(violations("GET", "/v1/snapshots/{key}/usage", 200, #"{"size":4096,"inodes":3}"#) == nil)
        #expect(violations("GET", "/v1/snapshots/{key}/usage", 200, #"{"size":4096.0,"inodes":3e0}"#) == nil)
        #expect(violations("GET", "/v1/snapshots/{key}/usage", 200, #"{"size":-1,"inodes":3}"#)?.count == 1)
        #expect(violations("GET", "/v1/snapshots/{key}/usage", 200, #"{"size":1.5,"inodes":3}"#)?.count == 1)
        #expect(violations("GET", "/v1/snapshots/{key}/usage", 200, #"{"size":"1","inodes":3}"#)?.count == 1)
        #expect(violations("POST", "/v1/cleanup", 200, #"{"removed":1,"reclaimed_bytes":10}"#) == nil)
        #expect(violations("POST", "/v1/cleanup", 200, #"{"removed":1,"reclaimedBytes":10}"#)?.count == 2)
    }

    @Test func statusAllowsNewFieldsOnlyAtItsTopLevel() {
        let status = """
            {"version":"0.1.0","root":"/var/lib/veneer","socket":"/run/veneer/veneer.sock","grpc_socket":null,
             "snapshots":{"active":1,"view":0,"committed":2},"uptime_seconds":1.5,
             "namespaces":{"default":{"active":1,"view":0,"committed":2}}%@}
            """
        #expect(violations("GET", "/v1/status", 200, status.replacingOccurrences(of: "%@", with: "")) == nil)
        #expect(violations("GET", "/v1/status", 200, status.replacingOccurrences(of: "%@", with: #","pid":12"#)) == nil)
        let extraCount = status.replacingOccurrences(of: "%@", with: "")
            .replacingOccurrences(of: #""committed":2"#, with: #""committed":2,"total":3"#)
        #expect(violations("GET", "/v1/status", 200, extraCount)?.contains { $0.hasPrefix("$.snapshots.total:") } == true)
        let badNamespaceCount = status.replacingOccurrences(of: "%@", with: "")
            .replacingOccurrences(of: #""default":{"active":1"#, with: #""default":{"active":"1""#)
        #expect(violations("GET", "/v1/status", 200, badNamespaceCount)?.first?.hasPrefix("$.namespaces.default.active:") == true)
        let withSocket = status.replacingOccurrences(of: "%@", with: "")
            .replacingOccurrences(of: #""grpc_socket":null"#, with: #""grpc_socket":"/run/veneer/grpc.sock""#)
        #expect(violations("GET", "/v1/status", 200, withSocket) == nil)
    }

    @Test func everyExampleInTheContractPasses() throws {
        let examples = try contract.responseExamples()
        #expect(examples.count >= 20)
        for example in examples {
            do {
                try contract.check(
                    method: example.method, pathTemplate: example.pathTemplate, status: example.status, body: example.body)
            } catch {
                Issue.record("example \(example.name) of \(example.method) \(example.pathTemplate) \(example.status): \(error)")
            }
        }
        // Every operation whose success answer has a JSON body shows an example of it (a
        // layer, the other kind of body, has none).
        let covered = Set(examples.filter { $0.status < 300 }.map { "\($0.method) \($0.pathTemplate)" })
        var withBody: Set<String> = []
        guard case .object(let paths)? = contract.document["paths"] else {
            Issue.record("the contract has no paths")
            return
        }
        for (template, item) in paths {
            guard case .object(let operations) = item else { continue }
            for (method, operation) in operations {
                guard case .object(let responses)? = operation["responses"] else { continue }
                let jsonSuccess = responses.contains { status, response in
                    guard status.hasPrefix("2"), status != "204" else { return false }
                    guard case .object(let fields) = response, case .object(let content)? = fields["content"] else { return true }
                    return content.keys.contains { $0.hasSuffix("json") }
                }
                if jsonSuccess { withBody.insert("\(method.uppercased()) \(template)") }
            }
        }
        #expect(withBody.count == 15)
        #expect(covered == withBody, "no example for \(withBody.subtracting(covered).sorted())")
    }

    // MARK: The checker on small inline contracts

    static func inline(_ schema: String) -> String {
        """
        openapi: 3.1.0
        info: {title: t, version: "1"}
        paths:
          /x:
            get:
              responses:
                '200':
                  description: ok
                  content:
                    application/json:
                      schema:
        \(schema.split(separator: "\n").map { "                " + $0 }.joined(separator: "\n"))
        """
    }

    func inlineViolations(_ schema: String, _ body: String) throws -> [String]? {
        let c = try OpenAPIContract(yaml: Self.inline(schema))
        do {
            try c.check(method: "GET", pathTemplate: "/x", status: 200, body: bytes(body))
            return nil
        } catch let error as OpenAPIContract.Violations {
            return error.messages
        }
    }

    @Test func typeArraysAndNull() throws {
        let schema = "type: [string, 'null']"
        #expect(try inlineViolations(schema, "null") == nil)
        #expect(try inlineViolations(schema, #""a""#) == nil)
        #expect(try inlineViolations(schema, "1")?.first == "$: expected string or null, found number 1")
        #expect(try inlineViolations("type: boolean", "true") == nil)
        #expect(try inlineViolations("type: boolean", "0") != nil)
    }

    @Test func stringKeywords() throws {
        let schema = "type: string\nminLength: 2\nmaxLength: 3\npattern: '^a'"
        #expect(try inlineViolations(schema, #""ab""#) == nil)
        #expect(try inlineViolations(schema, #""aé€""#) == nil)  // lengths count characters, not bytes
        #expect(try inlineViolations(schema, #""a""#)?.count == 1)
        #expect(try inlineViolations(schema, #""abcd""#)?.count == 1)
        #expect(try inlineViolations(schema, #""ba""#)?.count == 1)
        #expect(try inlineViolations("type: string\nformat: date-time", #""2026-11-22T10:11:12+01:00""#) == nil)
        #expect(try inlineViolations("type: string\nformat: date-time", #""2026-11-22 10:11:12Z""#) != nil)
    }

    @Test func enumConstAndCombinators() throws {
        #expect(try inlineViolations("enum: [a, 1, null]", "1") == nil)
        #expect(try inlineViolations("enum: [a, 1, null]", "null") == nil)
        #expect(try inlineViolations("enum: [a, 1, null]", #""b""#) != nil)
        #expect(try inlineViolations("const: 'yes'", #""yes""#) == nil)
        #expect(try inlineViolations("const: 'yes'", "true") != nil)
        let anyOf = "anyOf:\n  - {type: string}\n  - {type: integer, minimum: 10}"
        #expect(try inlineViolations(anyOf, "12") == nil)
        #expect(try inlineViolations(anyOf, #""s""#) == nil)
        #expect(try inlineViolations(anyOf, "3")?.first?.hasPrefix("$: matches no anyOf alternative") == true)
        let oneOf = "oneOf:\n  - {type: integer}\n  - {type: number, maximum: 5}"
        #expect(try inlineViolations(oneOf, "7") == nil)
        #expect(try inlineViolations(oneOf, "2.5") == nil)
        #expect(try inlineViolations(oneOf, "3")?.first == "$: matches 2 oneOf alternatives; exactly one is allowed")
        #expect(try inlineViolations("not: {type: string}", "1") == nil)
        #expect(try inlineViolations("not: {type: string}", #""s""#) != nil)
    }

    @Test func objectKeywords() throws {
        let schema = """
            type: object
            required: [a]
            properties:
              a: {type: integer}
            additionalProperties: {type: string}
            propertyNames: {minLength: 1}
            """
        #expect(try inlineViolations(schema, #"{"a":1,"b":"x"}"#) == nil)
        #expect(try inlineViolations(schema, #"{"a":1,"b":2}"#)?.first?.hasPrefix("$.b: expected string") == true)
        #expect(try inlineViolations(schema, #"{"a":1,"":"x"}"#)?.count == 1)
        #expect(try inlineViolations(schema, #"{"b":"x"}"#) == ["$.a: required field is missing"])
        #expect(try inlineViolations("type: array\nitems: {type: integer}\nmaxItems: 2", "[1,2]") == nil)
        #expect(try inlineViolations("type: array\nitems: {type: integer}\nmaxItems: 2", "[1,2,3]")?.count == 1)
        #expect(try inlineViolations("type: array\nitems: {type: integer}", #"[1,"2"]"#)?.first?.hasPrefix("$[1]:") == true)
    }

    @Test func jsonStringsAreDecoded() throws {
        let schema = "const: \"a/b\\u00e9\\U0001F600\\n\""
        #expect(try inlineViolations(schema, #""a\/b\u00e9\ud83d\ude00\n""#) == nil)
        #expect(try inlineViolations(schema, #""a/bé😀\n""#) == nil)
        #expect(try inlineViolations(schema, #""\ud83d""#)?.first?.hasPrefix("the body is not valid JSON") == true)
        let rawNewline = "\"a\nb\""
        #expect(try inlineViolations("type: string", rawNewline)?.first?.hasPrefix("the body is not valid JSON") == true)
        #expect(try inlineViolations("type: number", "01")?.first?.hasPrefix("the body is not valid JSON") == true)
    }

    @Test func contractsTheCheckerCannotReadAreRefused() {
        #expect(throws: OpenAPIContract.LoadError.self) {
            try OpenAPIContract(yaml: Self.inline("type: object\nminProperties: 1"))
        }
        #expect(throws: OpenAPIContract.LoadError.self) {
            try OpenAPIContract(yaml: Self.inline("$ref: '#/components/schemas/Nothing'"))
        }
        #expect(throws: OpenAPIContract.LoadError.self) {
            try OpenAPIContract(yaml: Self.inline("type: string\npattern: '(unclosed'"))
        }
        #expect(throws: OpenAPIContract.LoadError.self) {
            try OpenAPIContract(yaml: Self.inline("type: text"))
        }
        #expect(throws: OpenAPIContract.LoadError.self) {
            try OpenAPIContract(path: "/nonexistent/openapi.yaml")
        }
    }
}
