import NIOCore

/// One connected peer as the hub describes it: in Registered (the client itself), ClientData, CredentialsUpdate from
/// the hub, ClientDisconnecting and PeerQueryResult.
///
/// | tag | field | encoding |
/// |---|---|---|
/// | 1 | id | u32 |
/// | 2 | name | UTF-8 |
/// | 3 | host | UTF-8 |
/// | 4 | user | UTF-8 |
/// | 5 | address | UTF-8, "ip:port" as the hub saw the connection |
/// | 6 | role | UTF-8 |
/// | 7 | connectedAt | u64, microseconds since the Unix epoch |
/// | 8 | version | UTF-8 |
/// | 9 | key | 32 bytes, the SHA-256 of the public key the peer proved over TLS (absent on a plaintext link) |
/// | 10 | wire | UTF-8: `classic` for a client of the seed's 1024-byte wire (set by the hub alone); absent for this one |
/// | 11 | publicKey | the public key itself, DER SubjectPublicKeyInfo (at most 512 bytes), whose SHA-256 is tag 9: what peers
///   seal files and messages to |
public struct PeerRecord: ControlPayload, Hashable {
    public static let keySize = 32
    public static let maxPublicKeySize = 512

    public var id: UInt32
    public var name: String
    public var host: String
    public var user: String
    public var address: String
    public var role: String
    public var connectedAt: WireTime
    public var version: String
    /// The peer's authenticated key (its node ID's bytes), when it connected over TLS.
    public var key: [UInt8]?
    /// The wire the peer speaks: ``classicWire`` for a classic client (no key, no digests), nil for this protocol.
    public var wire: String?
    /// The public key whose SHA-256 is ``key`` (DER SPKI), when the hub knows it: what files and messages are sealed to.
    /// Believe it only once its hash is checked against ``key`` (``SealingRecipient`` does).
    public var publicKey: [UInt8]?

    /// ``wire`` of a client that joined through the hub's classic listener.
    public static let classicWire = "classic"

    /// A client of the seed's classic wire: it proves no key and its files carry no digest.
    public var isClassic: Bool { wire == Self.classicWire }

    public init(
        id: UInt32, name: String, host: String = "", user: String = "", address: String = "", role: String = "client",
        connectedAt: WireTime = 0, version: String = "", key: [UInt8]? = nil, wire: String? = nil,
        publicKey: [UInt8]? = nil
    ) {
        self.publicKey = publicKey
        self.key = key
        self.wire = wire
        self.id = id
        self.name = name
        self.host = host
        self.user = user
        self.address = address
        self.role = role
        self.connectedAt = connectedAt
        self.version = version
    }

    public init(tlv: ByteBuffer) throws {
        var id: UInt32?
        var name: String?
        self.init(id: 0, name: "")
        try TLVReader.forEach(in: tlv) { field in
            switch field.tag {
            case 1: id = try field.integer(as: UInt32.self)
            case 2: name = try field.string()
            case 3: host = try field.string()
            case 4: user = try field.string()
            case 5: address = try field.string()
            case 6: role = try field.string()
            case 7: connectedAt = try field.integer()
            case 8: version = try field.string()
            case 9:
                guard field.value.readableBytes == Self.keySize else {
                    throw WireError.invalidValue("a peer key must be \(Self.keySize) bytes")
                }
                key = Array(field.value.readableBytesView)
            case 10: wire = try field.string()
            case 11:
                // Larger than any key sealing uses: left out (the peer cannot be sealed to), not fatal to the record.
                if field.value.readableBytes <= Self.maxPublicKeySize {
                    publicKey = Array(field.value.readableBytesView)
                }
            default: break
            }
        }
        guard let id else { throw WireError.missingField("peer id") }
        guard let name else { throw WireError.missingField("peer name") }
        self.id = id
        self.name = name
    }

    public func write(to writer: inout TLVWriter) {
        writer.write(1, integer: id)
        writer.write(2, string: name)
        writer.write(3, string: host)
        writer.write(4, string: user)
        writer.write(5, string: address)
        writer.write(6, string: role)
        writer.write(7, integer: connectedAt)
        writer.write(8, string: version)
        if let key { writer.write(9, bytes: ByteBuffer(bytes: key)) }
        if let wire { writer.write(10, string: wire) }
        if let publicKey { writer.write(11, bytes: ByteBuffer(bytes: publicKey)) }
    }
}

/// The dataType of a ClientData (7) packet.
public enum ClientDataKind: UInt16, Sendable {
    /// Part of the roster sent right after Registered.
    case present = 1
    /// A peer that registered after this client.
    case joined = 2
}

/// The dataType of a ClientDisconnecting (8) packet: why the peer left.
public enum DisconnectReason: UInt16, Sendable, CustomStringConvertible {
    /// The peer said Close, or its connection ended.
    case left = 0
    /// The peer stopped answering heartbeats.
    case timedOut = 1
    /// The hub dropped the peer for bad input or for not reading.
    case dropped = 2

    public var description: String {
        switch self {
        case .left: "left"
        case .timedOut: "timed out"
        case .dropped: "dropped"
        }
    }
}

/// Roles with a meaning to the hub or the tools (a peer may register any other role, as text).
public enum PeerRole {
    /// A peer that takes files (`tcpiprecvd`).
    public static let receiver = "receiver"
    /// The hub's own store (`tcpipd --store`): the hub lets no other connection register it, so a peer with this role
    /// is the hub's own.
    public static let store = "store"
    /// A client of the seed's classic wire (the hub gives it this role; no other peer may register it).
    public static let classic = "classic"
}
