import TCPIPWire

/// A JSON value whose objects keep their keys in the order written, for output that reads well and stays stable.
public indirect enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    public static func == (lhs: JSON, rhs: JSON) -> Bool { lhs.rendered() == rhs.rendered() }

    /// The value as text: one line, or indented by two spaces when `pretty`.
    public func rendered(pretty: Bool = false) -> String {
        String(decoding: utf8(pretty: pretty), as: UTF8.self)
    }

    /// The value as UTF-8 text, optionally followed by a newline: what a stream of JSON lines writes, built as bytes
    /// (a `listen` of 100,000 lines spent a fifth of its time growing Strings).
    public func utf8(pretty: Bool = false, newline: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(to: &out, pretty: pretty, indent: 0)
        if newline { out.append(UInt8(ascii: "\n")) }
        return out
    }

    private func write(to out: inout [UInt8], pretty: Bool, indent: Int) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let value): out.append(contentsOf: (value ? "true" : "false").utf8)
        case .int(let value): out.append(contentsOf: String(value).utf8)
        case .double(let value):
            out.append(contentsOf: (value.isFinite ? String(value) : "null").utf8)
        case .string(let value): JSON.writeString(value, to: &out)
        case .array(let items):
            if items.isEmpty {
                out.append(contentsOf: "[]".utf8)
                return
            }
            out.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                if pretty { JSON.newline(indent + 2, to: &out) }
                item.write(to: &out, pretty: pretty, indent: indent + 2)
            }
            if pretty { JSON.newline(indent, to: &out) }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            if members.isEmpty {
                out.append(contentsOf: "{}".utf8)
                return
            }
            out.append(UInt8(ascii: "{"))
            for (index, (key, value)) in members.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                if pretty { JSON.newline(indent + 2, to: &out) }
                JSON.writeString(key, to: &out)
                out.append(contentsOf: (pretty ? ": " : ":").utf8)
                value.write(to: &out, pretty: pretty, indent: indent + 2)
            }
            if pretty { JSON.newline(indent, to: &out) }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static func newline(_ indent: Int, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\n"))
        out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: indent))
    }

    /// Writes a JSON string literal, escaping quotes, backslashes and every control character.
    static func writeString(_ value: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        // Most strings (names, hashes, times) need no escaping: copy them whole instead of scalar by scalar, which
        // was a tenth of the receiver's CPU for a burst of small files.
        if value.utf8.allSatisfy({
            $0 >= 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") && $0 < 0xE2
        }) {
            out.append(contentsOf: value.utf8)
            out.append(UInt8(ascii: "\""))
            return
        }
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out.append(contentsOf: "\\\"".utf8)
            case "\\": out.append(contentsOf: "\\\\".utf8)
            case "\n": out.append(contentsOf: "\\n".utf8)
            case "\r": out.append(contentsOf: "\\r".utf8)
            case "\t": out.append(contentsOf: "\\t".utf8)
            case "\u{2028}": out.append(contentsOf: "\\u2028".utf8)
            case "\u{2029}": out.append(contentsOf: "\\u2029".utf8)
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    let hex = String(scalar.value, radix: 16)
                    out.append(contentsOf: ("\\u" + String(repeating: "0", count: 4 - hex.count) + hex).utf8)
                } else {
                    UTF8.encode(scalar) { out.append($0) }
                }
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

extension PeerRecord {
    /// The JSON shape of a peer, as `tcpipctl peers` prints it.
    public var json: JSON {
        .object([
            ("id", .int(Int64(id))),
            ("name", .string(name)),
            ("host", .string(host)),
            ("user", .string(user)),
            ("address", .string(address)),
            ("role", .string(role)),
            ("connectedAt", .string(WireClock.rfc3339(connectedAt))),
            ("version", .string(version)),
            ("key", keyID.map { .string($0.description) } ?? .null),
            ("wire", .string(wire ?? "tcpip")),
        ])
    }

    /// The key the peer proved over TLS, as a node ID; nil on a plaintext link.
    public var keyID: NodeID? { key.flatMap(NodeID.init(bytes:)) }
}
