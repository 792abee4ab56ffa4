import Foundation
import VeneerCore
import VeneerJSON
import Yams

/// Checks HTTP answers against the API contract in `api/openapi.yaml`.
///
/// The contract is found through the environment variable `VENEER_OPENAPI` (a path to the
/// file) or else by walking up from this source file to the first directory that holds
/// `api/openapi.yaml`.
///
/// `check` looks up the operation by method and path, then the documented response for the
/// status, then validates the body against the response's JSON schema. Every violation found
/// is reported in one error. The JSON Schema subset understood is listed in
/// `OpenAPIContract.validationKeywords`; loading a contract that uses any other keyword fails,
/// so that nothing in the contract is silently left unchecked.
struct OpenAPIContract: Sendable {
    /// A JSON (or YAML) value.
    enum Value: Sendable, Equatable {
        case null
        case bool(Bool)
        case number(Double)
        case string(String)
        case array([Value])
        case object([String: Value])
    }

    /// Thrown by `check`: the answer does not follow the contract.
    struct Violations: Error, CustomStringConvertible {
        var request: String
        var status: Int
        var messages: [String]
        var body: String

        var description: String {
            var text = "\(request) answered \(status), which breaks the API contract:\n"
            for message in messages {
                text += "  - \(message)\n"
            }
            text += "  body: \(body.isEmpty ? "(empty)" : body)"
            return text
        }
    }

    /// Thrown by `init`: the contract cannot be found, read or understood.
    struct LoadError: Error, CustomStringConvertible {
        var description: String
    }

    /// One example answer given in the contract.
    struct ResponseExample: Sendable {
        var method: String
        var pathTemplate: String
        var status: Int
        var name: String
        var body: [UInt8]
    }

    /// Schema keywords that constrain values and are checked.
    static let validationKeywords: Set<String> = [
        "$ref", "type", "enum", "const", "properties", "required", "additionalProperties",
        "propertyNames", "items", "minItems", "maxItems", "pattern", "minLength", "maxLength",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "format",
        "allOf", "anyOf", "oneOf", "not",
    ]
    /// Schema keywords that only annotate and are ignored by the checks.
    static let annotationKeywords: Set<String> = [
        "description", "title", "examples", "example", "default", "deprecated", "readOnly",
        "writeOnly", "$comment", "externalDocs",
    ]
    private static let methods: Set<String> = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]
    /// Root extension documenting the answer to a path or method that is not in `paths`.
    static let unmatchedRouteKey = "x-veneer-unmatched-route"

    /// Where the contract was read from.
    let path: String
    /// The whole contract document.
    let document: Value

    init() throws {
        let path = try Self.locate()
        try self.init(path: path)
    }

    init(path: String) throws {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw LoadError(description: "cannot read the API contract at \(path): \(error)")
        }
        try self.init(yaml: text, path: path)
    }

    init(yaml: String, path: String = "(inline)") throws {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml, Resolver.basic)
        } catch {
            throw LoadError(description: "\(path) is not valid YAML: \(error)")
        }
        guard let root else { throw LoadError(description: "\(path) is empty") }
        self.path = path
        self.document = try Self.value(of: root, at: path)
        try audit()
    }

    // MARK: - Checking answers

    /// Checks one answer. `pathTemplate` is a path of the contract such as
    /// `/v1/snapshots/{key}`; a concrete path such as `/v1/snapshots/a%2Fb` is matched
    /// against the templates too, and a query string is ignored.
    /// `contentType`, when given, is the answer's `Content-Type`: a body of a media type
    /// that the contract documents without a schema (a layer) passes whatever it holds;
    /// any other media type is held to the documented JSON.
    func check(method: String, pathTemplate: String, status: Int, body: [UInt8], contentType: String? = nil) throws {
        let request = "\(method.uppercased()) \(pathTemplate)"
        let fail = { (messages: [String]) in
            Violations(request: request, status: status, messages: messages, body: Self.preview(body))
        }
        let responses: [String: Value]
        let context: String
        if let (template, operation) = self.operation(method: method, path: pathTemplate) {
            guard case .object(let r)? = operation["responses"] else {
                throw fail(["the contract gives no responses for \(method.uppercased()) \(template)"])
            }
            responses = r
            context = "\(method.uppercased()) \(template)"
        } else {
            guard case .object(let r)? = document[Self.unmatchedRouteKey] else {
                throw fail(["the contract has no operation \(request)"])
            }
            responses = r
            context = "a path or method outside the contract"
        }
        guard let documented = responses[String(status)] ?? responses["\(status / 100)XX"] ?? responses["default"]
        else {
            let known = responses.keys.sorted().joined(separator: ", ")
            throw fail(["status \(status) is not documented for \(context); documented: \(known)"])
        }
        let response = try resolved(documented)
        var messages: [String] = []
        let content: [String: Value]
        if case .object(let c)? = response["content"] { content = c } else { content = [:] }
        if status == 204 || content.isEmpty {
            if !body.isEmpty {
                messages.append("status \(status) of \(context) documents no body, but \(body.count) bytes came")
            }
            if status == 204 && !content.isEmpty {
                messages.append("the contract documents a body for status 204, which cannot have one")
            }
        } else if let mediaType = contentType.map({ Self.mediaType(of: $0) }), !mediaType.hasSuffix("json"),
            case .object(let documentedMedia)? = content[mediaType]
        {
            if documentedMedia["schema"] != nil {
                messages.append("the checker cannot hold a \(mediaType) body to a schema")
            }
        } else {
            guard let media = content["application/json"] ?? content.first(where: { $0.key.hasSuffix("json") })?.value
            else {
                throw fail(["status \(status) of \(context) documents no JSON body"])
            }
            if body.isEmpty {
                messages.append("the body is empty; status \(status) of \(context) documents a JSON body")
            } else {
                do {
                    let value = try Self.parseJSON(body)
                    if case .object(let m) = media, let schema = m["schema"] {
                        validate(value, against: schema, at: "$", into: &messages, depth: 0)
                    }
                } catch let error as JSONSyntaxError {
                    messages.append("the body is not valid JSON: \(error.description)")
                }
            }
        }
        if !messages.isEmpty {
            throw fail(messages)
        }
    }

    /// A `Content-Type` value without its parameters, in lowercase.
    static func mediaType(of contentType: String) -> String {
        (contentType.split(separator: ";", maxSplits: 1).first ?? "").trimmingCharacters(in: .whitespaces).lowercased()
    }

    /// The media types the contract documents for an answer of `status`, without JSON.
    func binaryMediaTypes(method: String, pathTemplate: String, status: Int) -> [String] {
        guard let (_, operation) = self.operation(method: method, path: pathTemplate),
            case .object(let responses)? = operation["responses"], let documented = responses[String(status)],
            let response = try? resolved(documented), case .object(let content)? = response["content"]
        else { return [] }
        return content.keys.filter { !$0.hasSuffix("json") }.sorted()
    }

    /// The violations of the JSON `body` against the schema `ref` points to (such as
    /// `#/components/schemas/PrepareRequest`): what the contract lets a client send.
    func schemaViolations(_ body: [UInt8], against ref: String) throws -> [String] {
        guard let schema = pointer(ref) else { throw LoadError(description: "\(path): \(ref) points nowhere") }
        var messages: [String] = []
        validate(try Self.parseJSON(body), against: schema, at: "$", into: &messages, depth: 0)
        return messages
    }

    /// Every example answer the contract gives, as JSON bytes.
    func responseExamples() throws -> [ResponseExample] {
        var out: [ResponseExample] = []
        guard case .object(let paths)? = document["paths"] else { return out }
        for (template, item) in paths.sorted(by: { $0.key < $1.key }) {
            guard case .object(let operations) = item else { continue }
            for (method, operation) in operations.sorted(by: { $0.key < $1.key }) where Self.methods.contains(method) {
                guard case .object(let responses)? = operation["responses"] else { continue }
                for (statusText, documented) in responses.sorted(by: { $0.key < $1.key }) {
                    guard let status = Int(statusText) else { continue }
                    let response = try resolved(documented)
                    guard case .object(let content)? = response["content"] else { continue }
                    for (_, media) in content.sorted(by: { $0.key < $1.key }) {
                        if case .object(let examples)? = media["examples"] {
                            for (name, example) in examples.sorted(by: { $0.key < $1.key }) {
                                let example = try resolved(example)
                                if let value = example["value"] {
                                    out.append(
                                        ResponseExample(
                                            method: method.uppercased(), pathTemplate: template, status: status,
                                            name: name, body: Array(Self.serialize(value).utf8)))
                                }
                            }
                        }
                        if let value = media["example"] {
                            out.append(
                                ResponseExample(
                                    method: method.uppercased(), pathTemplate: template, status: status,
                                    name: "example", body: Array(Self.serialize(value).utf8)))
                        }
                    }
                }
            }
        }
        return out
    }

    // MARK: - Finding operations

    private func operation(method: String, path raw: String) -> (String, [String: Value])? {
        guard case .object(let paths)? = document["paths"] else { return nil }
        let wanted = method.lowercased()
        var path = raw
        if let q = path.firstIndex(where: { $0 == "?" || $0 == "#" }) {
            path = String(path[..<q])
        }
        func op(_ template: String) -> [String: Value]? {
            if case .object(let item)? = paths[template], case .object(let o)? = item[wanted] { return o }
            return nil
        }
        if paths[path] != nil {
            return op(path).map { (path, $0) }
        }
        // A concrete path: match segment by segment; `{name}` takes any non-empty segment.
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        var best: (template: String, literals: Int)?
        for template in paths.keys {
            let parts = template.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == segments.count else { continue }
            var literals = 0
            var matches = true
            for (part, segment) in zip(parts, segments) {
                if part.hasPrefix("{") && part.hasSuffix("}") {
                    if segment.isEmpty { matches = false }
                } else if part == segment {
                    literals += 1
                } else {
                    matches = false
                }
                if !matches { break }
            }
            if matches, literals > (best?.literals ?? -1) {
                best = (template, literals)
            }
        }
        guard let best else { return nil }
        return op(best.template).map { (best.template, $0) }
    }

    /// Follows `$ref` until an object without one.
    private func resolved(_ value: Value) throws -> [String: Value] {
        var current = value
        for _ in 0..<32 {
            guard case .object(let object) = current else {
                throw LoadError(description: "\(path): expected an object, found \(Self.serialize(current))")
            }
            guard case .string(let ref)? = object["$ref"] else { return object }
            guard let target = pointer(ref) else {
                throw LoadError(description: "\(path): $ref \(ref) points nowhere")
            }
            current = target
        }
        throw LoadError(description: "\(path): $ref chain too long")
    }

    /// Resolves a local reference such as `#/components/schemas/Mount`.
    private func pointer(_ ref: String) -> Value? {
        guard ref.hasPrefix("#") else { return nil }
        var current = document
        let body = ref.dropFirst()
        if body.isEmpty { return current }
        guard body.hasPrefix("/") else { return nil }
        for raw in body.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            let token = (raw.removingPercentEncoding ?? String(raw))
                .replacingOccurrences(of: "~1", with: "/")
                .replacingOccurrences(of: "~0", with: "~")
            switch current {
            case .object(let o):
                guard let next = o[token] else { return nil }
                current = next
            case .array(let a):
                guard let i = Int(token), a.indices.contains(i) else { return nil }
                current = a[i]
            default:
                return nil
            }
        }
        return current
    }

    // MARK: - Schema validation

    private func validate(_ value: Value, against schema: Value, at location: String, into out: inout [String], depth: Int) {
        guard depth < 64 else {
            out.append("\(location): schema nesting deeper than 64 levels (a $ref loop?)")
            return
        }
        let object: [String: Value]
        switch schema {
        case .bool(true): return
        case .bool(false):
            out.append("\(location): no value is allowed here")
            return
        case .object(let o): object = o
        default:
            out.append("\(location): the contract's schema here is not an object")
            return
        }

        if case .string(let ref)? = object["$ref"] {
            if let target = pointer(ref) {
                validate(value, against: target, at: location, into: &out, depth: depth + 1)
            } else {
                out.append("\(location): the contract's $ref \(ref) points nowhere")
            }
        }

        if let typeSpec = object["type"] {
            var names: [String] = []
            if case .string(let t) = typeSpec { names = [t] }
            if case .array(let ts) = typeSpec {
                names = ts.compactMap { if case .string(let t) = $0 { t } else { nil } }
            }
            if !names.contains(where: { Self.value(value, hasType: $0) }) {
                out.append("\(location): expected \(names.joined(separator: " or ")), found \(Self.describe(value))")
                return
            }
        }
        if case .array(let options)? = object["enum"], !options.contains(value) {
            out.append(
                "\(location): \(Self.describe(value)) is not one of \(options.map(Self.serialize).joined(separator: ", "))")
        }
        if let constant = object["const"], constant != value {
            out.append("\(location): expected \(Self.serialize(constant)), found \(Self.describe(value))")
        }

        switch value {
        case .object(let fields):
            validateObject(fields, schema: object, at: location, into: &out, depth: depth)
        case .array(let items):
            if case .number(let n)? = object["minItems"], Double(items.count) < n {
                out.append("\(location): \(items.count) items, at least \(Self.number(n)) required")
            }
            if case .number(let n)? = object["maxItems"], Double(items.count) > n {
                out.append("\(location): \(items.count) items, at most \(Self.number(n)) allowed")
            }
            if let itemSchema = object["items"] {
                for (i, item) in items.enumerated() {
                    validate(item, against: itemSchema, at: "\(location)[\(i)]", into: &out, depth: depth + 1)
                }
            }
        case .string(let text):
            let length = Double(text.unicodeScalars.count)
            if case .number(let n)? = object["minLength"], length < n {
                out.append("\(location): \(Self.describe(value)) is shorter than \(Self.number(n)) characters")
            }
            if case .number(let n)? = object["maxLength"], length > n {
                out.append("\(location): string of \(Self.number(length)) characters is longer than \(Self.number(n))")
            }
            if case .string(let pattern)? = object["pattern"] {
                if let regex = try? NSRegularExpression(pattern: pattern) {
                    let range = NSRange(text.startIndex..<text.endIndex, in: text)
                    if regex.firstMatch(in: text, range: range) == nil {
                        out.append("\(location): \(Self.describe(value)) does not match the pattern \(pattern)")
                    }
                } else {
                    out.append("\(location): the contract's pattern \(pattern) is not a valid regular expression")
                }
            }
            if case .string("date-time")? = object["format"], !Self.looksLikeDateTime(text) {
                out.append("\(location): \(Self.describe(value)) is not an RFC 3339 date-time")
            }
        case .number(let n):
            if case .number(let m)? = object["minimum"], n < m {
                out.append("\(location): \(Self.number(n)) is less than the minimum \(Self.number(m))")
            }
            if case .number(let m)? = object["maximum"], n > m {
                out.append("\(location): \(Self.number(n)) is greater than the maximum \(Self.number(m))")
            }
            if case .number(let m)? = object["exclusiveMinimum"], n <= m {
                out.append("\(location): \(Self.number(n)) is not greater than \(Self.number(m))")
            }
            if case .number(let m)? = object["exclusiveMaximum"], n >= m {
                out.append("\(location): \(Self.number(n)) is not less than \(Self.number(m))")
            }
            if case .string(let format)? = object["format"] {
                let limit: Double? = format == "int64" ? 9_223_372_036_854_775_808 : format == "int32" ? 2_147_483_648 : nil
                if let limit, !(n.rounded() == n && n >= -limit && n < limit) {
                    out.append("\(location): \(Self.number(n)) is not an \(format)")
                }
            }
        case .null, .bool:
            break
        }

        if case .array(let all)? = object["allOf"] {
            for sub in all {
                validate(value, against: sub, at: location, into: &out, depth: depth + 1)
            }
        }
        if case .array(let any)? = object["anyOf"] {
            var reasons: [String] = []
            var matched = false
            for (i, sub) in any.enumerated() {
                var local: [String] = []
                validate(value, against: sub, at: location, into: &local, depth: depth + 1)
                if local.isEmpty {
                    matched = true
                    break
                }
                reasons.append("alternative \(i + 1): \(local.joined(separator: "; "))")
            }
            if !matched {
                out.append("\(location): matches no anyOf alternative (\(reasons.joined(separator: " | ")))")
            }
        }
        if case .array(let one)? = object["oneOf"] {
            var reasons: [String] = []
            var matches = 0
            for (i, sub) in one.enumerated() {
                var local: [String] = []
                validate(value, against: sub, at: location, into: &local, depth: depth + 1)
                if local.isEmpty {
                    matches += 1
                } else {
                    reasons.append("alternative \(i + 1): \(local.joined(separator: "; "))")
                }
            }
            if matches == 0 {
                out.append("\(location): matches no oneOf alternative (\(reasons.joined(separator: " | ")))")
            } else if matches > 1 {
                out.append("\(location): matches \(matches) oneOf alternatives; exactly one is allowed")
            }
        }
        if let not = object["not"] {
            var local: [String] = []
            validate(value, against: not, at: location, into: &local, depth: depth + 1)
            if local.isEmpty {
                out.append("\(location): \(Self.describe(value)) matches a schema it must not match")
            }
        }
    }

    private func validateObject(
        _ fields: [String: Value], schema: [String: Value], at location: String, into out: inout [String], depth: Int
    ) {
        var properties: [String: Value] = [:]
        if case .object(let p)? = schema["properties"] { properties = p }
        if case .array(let required)? = schema["required"] {
            for case .string(let name) in required where fields[name] == nil {
                out.append("\(Self.child(location, name)): required field is missing")
            }
        }
        for (name, field) in fields.sorted(by: { $0.key < $1.key }) {
            let at = Self.child(location, name)
            if let propertySchema = properties[name] {
                validate(field, against: propertySchema, at: at, into: &out, depth: depth + 1)
            } else if let additional = schema["additionalProperties"] {
                if case .bool(false) = additional {
                    out.append("\(at): field is not documented here (additionalProperties is false)")
                } else {
                    validate(field, against: additional, at: at, into: &out, depth: depth + 1)
                }
            }
            if let names = schema["propertyNames"] {
                validate(.string(name), against: names, at: "\(at) (its name)", into: &out, depth: depth + 1)
            }
        }
    }

    private static func value(_ value: Value, hasType type: String) -> Bool {
        switch (type, value) {
        case ("null", .null), ("boolean", .bool), ("object", .object), ("array", .array), ("string", .string),
            ("number", .number):
            return true
        case ("integer", .number(let n)):
            return n.isFinite && n.rounded() == n
        default:
            return false
        }
    }

    /// RFC 3339 date-time, checked for shape and field ranges only.
    static func looksLikeDateTime(_ text: String) -> Bool {
        let b = Array(text.utf8)
        func isDigit(_ i: Int) -> Bool { i < b.count && b[i] >= 48 && b[i] <= 57 }
        func number(_ start: Int, _ count: Int) -> Int? {
            var v = 0
            for i in start..<(start + count) {
                guard isDigit(i) else { return nil }
                v = v * 10 + Int(b[i] - 48)
            }
            return v
        }
        guard b.count >= 20, let _ = number(0, 4), b[4] == 0x2D, let month = number(5, 2), b[7] == 0x2D,
            let day = number(8, 2), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t"),
            let hour = number(11, 2), b[13] == 0x3A, let minute = number(14, 2), b[16] == 0x3A,
            let second = number(17, 2),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second <= 60
        else { return false }
        var i = 19
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            guard isDigit(i) else { return false }
            while isDigit(i) { i += 1 }
        }
        guard i < b.count else { return false }
        if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
            return i + 1 == b.count
        }
        guard b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-"), i + 6 == b.count,
            let oh = number(i + 1, 2), b[i + 3] == 0x3A, let om = number(i + 4, 2)
        else { return false }
        return oh < 24 && om < 60
    }

    // MARK: - Checking the contract itself

    /// Fails when a `$ref` points nowhere, a pattern does not compile, or a schema uses a
    /// keyword that `check` does not understand.
    private func audit() throws {
        var problems: [String] = []
        auditNode(document, at: "#", into: &problems)
        if case .object(let components)? = document["components"], case .object(let schemas)? = components["schemas"] {
            for (name, schema) in schemas {
                auditSchema(schema, at: "#/components/schemas/\(name)", into: &problems)
            }
        }
        guard case .object? = document["paths"] else {
            throw LoadError(description: "\(path) has no paths")
        }
        if !problems.isEmpty {
            throw LoadError(
                description: "\(path) uses what the contract checker cannot check:\n"
                    + problems.sorted().map { "  - \($0)" }.joined(separator: "\n"))
        }
    }

    private func auditNode(_ node: Value, at location: String, into problems: inout [String]) {
        switch node {
        case .object(let object):
            if case .string(let ref)? = object["$ref"], pointer(ref) == nil {
                problems.append("\(location): $ref \(ref) points nowhere")
            }
            for (key, child) in object {
                let at = "\(location)/\(key)"
                if key == "schema" {
                    auditSchema(child, at: at, into: &problems)
                } else if key == "example" || key == "examples" || (location == "#/components" && key == "schemas") {
                    continue
                } else {
                    auditNode(child, at: at, into: &problems)
                }
            }
        case .array(let items):
            for (i, item) in items.enumerated() {
                auditNode(item, at: "\(location)/\(i)", into: &problems)
            }
        default:
            break
        }
    }

    private func auditSchema(_ schema: Value, at location: String, into problems: inout [String]) {
        guard case .object(let object) = schema else {
            if case .bool = schema { return }
            problems.append("\(location): a schema must be an object or a boolean")
            return
        }
        for (key, child) in object {
            let at = "\(location)/\(key)"
            switch key {
            case "$ref":
                if case .string(let ref) = child, pointer(ref) != nil { break }
                problems.append("\(at): $ref points nowhere")
            case "type":
                let names: [Value]
                if case .array(let list) = child { names = list } else { names = [child] }
                for name in names {
                    guard case .string(let t) = name,
                        ["null", "boolean", "object", "array", "string", "number", "integer"].contains(t)
                    else {
                        problems.append("\(at): unknown type \(Self.serialize(name))")
                        continue
                    }
                }
            case "pattern":
                if case .string(let p) = child, (try? NSRegularExpression(pattern: p)) != nil { break }
                problems.append("\(at): not a valid regular expression")
            case "required", "enum":
                if case .array = child { break }
                problems.append("\(at): must be an array")
            case "properties":
                guard case .object(let properties) = child else {
                    problems.append("\(at): must be an object")
                    break
                }
                for (name, sub) in properties {
                    auditSchema(sub, at: "\(at)/\(name)", into: &problems)
                }
            case "additionalProperties", "propertyNames", "items", "not":
                auditSchema(child, at: at, into: &problems)
            case "allOf", "anyOf", "oneOf":
                guard case .array(let subs) = child else {
                    problems.append("\(at): must be an array")
                    break
                }
                for (i, sub) in subs.enumerated() {
                    auditSchema(sub, at: "\(at)/\(i)", into: &problems)
                }
            case "minItems", "maxItems", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
                "exclusiveMaximum":
                if case .number = child { break }
                problems.append("\(at): must be a number")
            case "const", "format":
                break
            default:
                if !Self.annotationKeywords.contains(key) && !key.hasPrefix("x-") {
                    problems.append("\(at): unsupported schema keyword \(key)")
                }
            }
        }
    }

    // MARK: - Finding the contract

    private static func locate() throws -> String {
        let fileManager = FileManager.default
        if let configured = ProcessInfo.processInfo.environment["VENEER_OPENAPI"], !configured.isEmpty {
            guard fileManager.fileExists(atPath: configured) else {
                throw LoadError(description: "VENEER_OPENAPI names \(configured), which does not exist")
            }
            return configured
        }
        let source = URL(fileURLWithPath: #filePath)
        var tried: [String] = []
        for start in [source.resolvingSymlinksInPath(), source] {
            var directory = start.deletingLastPathComponent()
            while true {
                let candidate = directory.appendingPathComponent("api").appendingPathComponent("openapi.yaml").path
                if fileManager.fileExists(atPath: candidate) {
                    return candidate
                }
                tried.append(directory.path)
                let parent = directory.deletingLastPathComponent()
                if parent.path == directory.path { break }
                directory = parent
            }
        }
        throw LoadError(
            description: "api/openapi.yaml not found above \(source.path); set VENEER_OPENAPI to its path")
    }

    // MARK: - YAML to values

    private static func value(of node: Node, at file: String) throws -> Value {
        switch node {
        case .scalar(let scalar):
            guard scalar.style == .plain || scalar.style == .any else { return .string(scalar.string) }
            let text = scalar.string
            switch text {
            case "", "~", "null", "Null", "NULL": return .null
            case "true", "True", "TRUE": return .bool(true)
            case "false", "False", "FALSE": return .bool(false)
            default:
                if isYAMLNumber(text), let n = Double(text) { return .number(n) }
                return .string(text)
            }
        case .sequence(let sequence):
            return .array(try sequence.map { try value(of: $0, at: file) })
        case .mapping(let mapping):
            var object: [String: Value] = [:]
            for (key, child) in mapping {
                guard case .scalar(let k) = key else {
                    throw LoadError(description: "\(file): mapping keys must be scalars")
                }
                guard object[k.string] == nil else {
                    throw LoadError(description: "\(file): key \(k.string) appears twice in one mapping")
                }
                object[k.string] = try value(of: child, at: file)
            }
            return .object(object)
        case .alias:
            throw LoadError(description: "\(file): YAML aliases are not supported")
        }
    }

    /// Plain YAML scalars read as numbers: optional sign, digits, optional fraction and exponent.
    private static func isYAMLNumber(_ text: String) -> Bool {
        var b = Array(text.utf8)[...]
        if let first = b.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") { b = b.dropFirst() }
        func digits() -> Int {
            var n = 0
            while let c = b.first, c >= 48, c <= 57 {
                b = b.dropFirst()
                n += 1
            }
            return n
        }
        var count = digits()
        if b.first == UInt8(ascii: ".") {
            b = b.dropFirst()
            count += digits()
        }
        guard count > 0 else { return false }
        if let e = b.first, e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            b = b.dropFirst()
            if let s = b.first, s == UInt8(ascii: "-") || s == UInt8(ascii: "+") { b = b.dropFirst() }
            guard digits() > 0 else { return false }
        }
        return b.isEmpty
    }

    // MARK: - JSON

    struct JSONSyntaxError: Error, CustomStringConvertible {
        var description: String
    }

    /// Strict JSON (RFC 8259: one value, UTF-8, no duplicate field names), read with the
    /// project's own parser.
    static func parseJSON(_ bytes: [UInt8]) throws -> Value {
        do {
            return try value(try StrictJSON.parse(bytes))
        } catch let error as VeneerError {
            throw JSONSyntaxError(description: error.message)
        }
    }

    private static func value(_ json: JSONValue) throws -> Value {
        switch json {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .number(let text):
            guard let n = Double(text), n.isFinite else { throw JSONSyntaxError(description: "number \(text) is out of range") }
            return .number(n)
        case .string(let s): return .string(s)
        case .array(let items): return .array(try items.map(value))
        case .object(let object):
            var fields: [String: Value] = [:]
            for (name, item) in object.fields { fields[name] = try value(item) }
            return .object(fields)
        }
    }

    /// Compact JSON with sorted field names.
    static func serialize(_ value: Value) -> String {
        switch value {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return number(n)
        case .string(let s): return quote(s)
        case .array(let items): return "[" + items.map(serialize).joined(separator: ",") + "]"
        case .object(let fields):
            return "{"
                + fields.sorted(by: { $0.key < $1.key }).map { quote($0.key) + ":" + serialize($0.value) }
                .joined(separator: ",") + "}"
        }
    }

    private static func number(_ n: Double) -> String {
        if n.rounded() == n, abs(n) < 9_007_199_254_740_992 {
            return String(Int64(n))
        }
        return "\(n)"
    }

    /// `s` as a JSON string, written by the project's JSON writer.
    private static func quote(_ s: String) -> String {
        var writer = JSONWriter(capacity: s.utf8.count + 2)
        writer.string(s)
        return String(decoding: writer.bytes, as: UTF8.self)
    }

    private static func describe(_ value: Value) -> String {
        let kind: String
        switch value {
        case .null: kind = "null"
        case .bool: kind = "boolean"
        case .number: kind = "number"
        case .string: kind = "string"
        case .array: kind = "array"
        case .object: kind = "object"
        }
        var text = serialize(value)
        if text.count > 120 { text = String(text.prefix(117)) + "..." }
        return "\(kind) \(text)"
    }

    private static func child(_ location: String, _ name: String) -> String {
        let plain = !name.isEmpty
            && name.unicodeScalars.allSatisfy { ($0.properties.isAlphabetic && $0.isASCII) || ("0"..."9").contains($0) || $0 == "_" }
        return plain ? "\(location).\(name)" : "\(location)[\(quote(name))]"
    }

    private static func preview(_ body: [UInt8]) -> String {
        let text = String(decoding: body.prefix(2000), as: UTF8.self)
        return body.count > 2000 ? text + "... (\(body.count) bytes)" : text
    }
}

extension OpenAPIContract.Value {
    subscript(key: String) -> OpenAPIContract.Value? {
        if case .object(let object) = self { return object[key] }
        return nil
    }
}
