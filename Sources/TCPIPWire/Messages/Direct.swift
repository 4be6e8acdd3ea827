import NIOCore

/// Direct transfers: a receiver tells the hub where it listens (DirectHints, 70); a sender asks the hub for an
/// introduction to it (IntroductionRequest, 71); the hub answers with the receiver's hints and a one-time ticket
/// (Introduction, 72) and tells the receiver who is coming with which ticket (IntroductionNotice, 73); the sender then
/// connects to a hint and presents the ticket (DirectHello, 74), and the receiver admits it (DirectWelcome, 75) or
/// refuses it (Error) and closes.
public enum Direct {
    /// Bytes of a ticket.
    public static let ticketSize = 32
    /// Hints a peer may advertise, and an Introduction may carry.
    public static let maxHints = 8
    /// Bytes of one hint's text: "[IPv6]:port" is at most 47.
    public static let maxHintLength = 64
    /// How long a ticket admits its sender after the hub issued it.
    public static let ticketLifetimeMilliseconds: UInt32 = 30_000

    /// Why `hint` is not an IP literal and port ("192.0.2.7:4000", "[2001:db8::7]:4000"), or nil when it is one. A hint
    /// is never a host name: a receiver must not make its senders look names up.
    public static func problem(withHint hint: String) -> String? {
        guard hint.utf8.count <= maxHintLength else { return "a hint is longer than \(maxHintLength) bytes" }
        guard let (host, port) = split(hint) else { return "a hint must be ADDRESS:PORT" }
        guard port != 0 else { return "a hint's port must not be 0" }
        guard (try? SocketAddress(ipAddress: host, port: Int(port))) != nil else {
            return "a hint's address must be an IP address"
        }
        return nil
    }

    /// The address and port of "ADDRESS:PORT" or "[IPv6]:PORT", without checking the address.
    public static func split(_ text: String) -> (host: String, port: UInt16)? {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else {
            return nil
        }
        var host = text[..<colon]
        if host.hasPrefix("[") {
            guard host.hasSuffix("]") else { return nil }
            host = host.dropFirst().dropLast()
        } else if host.contains(":") {
            return nil
        }
        return host.isEmpty ? nil : (String(host), port)
    }

    /// "ADDRESS:PORT", with brackets around an IPv6 address.
    public static func hint(host: String, port: UInt16) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    static func ticket(_ field: TLVField) throws -> [UInt8] {
        guard field.value.readableBytes == ticketSize else {
            throw WireError.invalidValue("a ticket must be \(ticketSize) bytes")
        }
        return Array(field.value.readableBytesView)
    }

    static func hints(_ field: TLVField, into hints: inout [String]) throws {
        guard hints.count < maxHints else { throw WireError.invalidValue("more than \(maxHints) hints") }
        let hint = try field.string()
        if let problem = problem(withHint: hint) { throw WireError.invalidValue(problem) }
        hints.append(hint)
    }
}

/// Where a receiver takes direct connections (DirectHints, 70; to the hub). Sent again, it replaces what was sent
/// before; with neither field it withdraws them.
///
/// | tag | field | encoding |
/// |---|---|---|
/// | 1 | port | u16: a port the peer listens on at every address; the hub pairs it with the address it sees |
/// | 2 | hint | UTF-8 "ADDRESS:PORT", an IP literal; repeatable, at most 8 |
public struct DirectHints: ControlPayload, Hashable {
    public var port: UInt16?
    public var hints: [String]

    public init(port: UInt16? = nil, hints: [String] = []) {
        self.port = port
        self.hints = hints
    }

    public init(tlv: ByteBuffer) throws {
        self.init()
        try TLVReader.forEach(in: tlv) { field in
            switch field.tag {
            case 1:
                port = try field.integer(as: UInt16.self)
                if port == 0 { throw WireError.invalidValue("a direct port must not be 0") }
            case 2: try Direct.hints(field, into: &hints)
            default: break
            }
        }
    }

    public func write(to writer: inout TLVWriter) {
        writer.write(1, integer: port)
        for hint in hints { writer.write(2, string: hint) }
    }
}

/// A sender asks the hub to introduce it to a peer (IntroductionRequest, 71; to the hub).
///
/// | tag | field | encoding |
/// |---|---|---|
/// | 1 | requestID | u32, echoed in the Introduction |
/// | 2 | peer | u32, the peer's id |
public struct IntroductionRequest: ControlPayload, Hashable {
    public var requestID: UInt32
    public var peer: UInt32

    public init(requestID: UInt32, peer: UInt32) {
        self.requestID = requestID
        self.peer = peer
    }

    public init(tlv: ByteBuffer) throws {
        var requestID: UInt32?
        var peer: UInt32?
        try TLVReader.forEach(in: tlv) { field in
            switch field.tag {
            case 1: requestID = try field.integer(as: UInt32.self)
            case 2: peer = try field.integer(as: UInt32.self)
            default: break
            }
        }
        guard let requestID else { throw WireError.missingField("request id") }
        guard let peer else { throw WireError.missingField("peer id") }
        self.init(requestID: requestID, peer: peer)
    }

    public func write(to writer: inout TLVWriter) {
        writer.write(1, integer: requestID)
        writer.write(2, integer: peer)
    }
}

/// The hub's answer to an IntroductionRequest (Introduction, 72; hub only). With no hints (the peer takes no direct
/// connections) it carries no ticket either, and the sender goes through the hub.
///
/// | tag | field | encoding |
/// |---|---|---|
/// | 1 | requestID | u32 |
/// | 2 | peer | nested ``PeerRecord``: the peer as the hub knows it, its key included |
/// | 3 | ticket | 32 random bytes |
/// | 4 | hint | UTF-8 "ADDRESS:PORT"; repeatable, at most 8, the hub's observation of the peer's address first |
/// | 5 | lifetime | u32, milliseconds the ticket stays valid |
public struct Introduction: ControlPayload, Hashable {
    public var requestID: UInt32
    public var peer: PeerRecord
    public var ticket: [UInt8]?
    public var hints: [String]
    public var lifetimeMilliseconds: UInt32

    public init(
        requestID: UInt32, peer: PeerRecord, ticket: [UInt8]?, hints: [String],
        lifetimeMilliseconds: UInt32 = Direct.ticketLifetimeMilliseconds
    ) {
        self.requestID = requestID
        self.peer = peer
        self.ticket = ticket
        self.hints = hints
        self.lifetimeMilliseconds = lifetimeMilliseconds
    }

    public init(tlv: ByteBuffer) throws {
        var requestID: UInt32?
        var peer: PeerRecord?
        var ticket: [UInt8]?
        var hints: [String] = []
        var lifetime = Direct.ticketLifetimeMilliseconds
        try TLVReader.forEach(in: tlv) { field in
            switch field.tag {
            case 1: requestID = try field.integer(as: UInt32.self)
            case 2: peer = try PeerRecord(tlv: field.value)
            case 3: ticket = try Direct.ticket(field)
            case 4: try Direct.hints(field, into: &hints)
            case 5: lifetime = try field.integer(as: UInt32.self)
            default: break
            }
        }
        guard let requestID else { throw WireError.missingField("request id") }
        guard let peer else { throw WireError.missingField("peer") }
        if !hints.isEmpty && ticket == nil { throw WireError.missingField("ticket") }
        self.init(requestID: requestID, peer: peer, ticket: ticket, hints: hints, lifetimeMilliseconds: lifetime)
    }

    public func write(to writer: inout TLVWriter) {
        writer.write(1, integer: requestID)
        writer.write(2, bytes: peer.encoded())
        if let ticket { writer.write(3, bytes: ByteBuffer(bytes: ticket)) }
        for hint in hints { writer.write(4, string: hint) }
        writer.write(5, integer: lifetimeMilliseconds)
    }
}

/// The hub tells a receiver that a sender will connect with a ticket (IntroductionNotice, 73; hub only; idFrom is the
/// sender's id).
///
/// | tag | field | encoding |
/// |---|---|---|
/// | 1 | ticket | 32 bytes |
/// | 2 | peer | nested ``PeerRecord``: the sender, its key included |
/// | 3 | lifetime | u32, milliseconds the ticket stays valid |
public struct IntroductionNotice: ControlPayload, Hashable {
    public var ticket: [UInt8]
    public var peer: PeerRecord
    public var lifetimeMilliseconds: UInt32

    public init(ticket: [UInt8], peer: PeerRecord, lifetimeMilliseconds: UInt32 = Direct.ticketLifetimeMilliseconds) {
        self.ticket = ticket
        self.peer = peer
        self.lifetimeMilliseconds = lifetimeMilliseconds
    }

    public init(tlv: ByteBuffer) throws {
        var ticket: [UInt8]?
        var peer: PeerRecord?
        var lifetime = Direct.ticketLifetimeMilliseconds
        try TLVReader.forEach(in: tlv) { field in
            switch field.tag {
            case 1: ticket = try Direct.ticket(field)
            case 2: peer = try PeerRecord(tlv: field.value)
            case 3: lifetime = try field.integer(as: UInt32.self)
            default: break
            }
        }
        guard let ticket else { throw WireError.missingField("ticket") }
        guard let peer else { throw WireError.missingField("peer") }
        self.init(ticket: ticket, peer: peer, lifetimeMilliseconds: lifetime)
    }

    public func write(to writer: inout TLVWriter) {
        writer.write(1, bytes: ByteBuffer(bytes: ticket))
        writer.write(2, bytes: peer.encoded())
        writer.write(3, integer: lifetimeMilliseconds)
    }
}

/// The first packet on a direct connection, from the sender (DirectHello, 74).
///
/// | tag | field | encoding |
/// |---|---|---|
/// | 1 | ticket | 32 bytes, from the Introduction |
/// | 2 | from | u32, the sender's id at the hub |
/// | 3 | to | u32, the receiver's id at the hub |
public struct DirectHello: ControlPayload, Hashable {
    public var ticket: [UInt8]
    public var from: UInt32
    public var to: UInt32

    public init(ticket: [UInt8], from: UInt32, to: UInt32) {
        self.ticket = ticket
        self.from = from
        self.to = to
    }

    public init(tlv: ByteBuffer) throws {
        var ticket: [UInt8]?
        var from: UInt32?
        var to: UInt32?
        try TLVReader.forEach(in: tlv) { field in
            switch field.tag {
            case 1: ticket = try Direct.ticket(field)
            case 2: from = try field.integer(as: UInt32.self)
            case 3: to = try field.integer(as: UInt32.self)
            default: break
            }
        }
        guard let ticket else { throw WireError.missingField("ticket") }
        guard let from, let to else { throw WireError.missingField("peer ids") }
        self.init(ticket: ticket, from: from, to: to)
    }

    public func write(to writer: inout TLVWriter) {
        writer.write(1, bytes: ByteBuffer(bytes: ticket))
        writer.write(2, integer: from)
        writer.write(3, integer: to)
    }
}

/// The receiver admits a direct sender (DirectWelcome, 75). From here on the connection carries the file packets of
/// the relay path, with the ids of the introduction.
///
/// | tag | field | encoding |
/// |---|---|---|
/// | 1 | id | u32, the receiver's id at the hub |
public struct DirectWelcome: ControlPayload, Hashable {
    public var id: UInt32

    public init(id: UInt32) { self.id = id }

    public init(tlv: ByteBuffer) throws {
        var id: UInt32?
        try TLVReader.forEach(in: tlv) { field in
            if field.tag == 1 { id = try field.integer(as: UInt32.self) }
        }
        guard let id else { throw WireError.missingField("id") }
        self.init(id: id)
    }

    public func write(to writer: inout TLVWriter) { writer.write(1, integer: id) }
}
