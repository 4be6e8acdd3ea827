import NIOCore

/// A client asks the hub for one peer (PeerQuery, 65), by name or by id, without downloading the roster.
///
/// | tag | field | encoding |
/// |---|---|---|
/// | 1 | requestID | u32, echoed in the result |
/// | 2 | name | UTF-8 |
/// | 3 | id | u32 |
/// | 4 | store | u8 1: the hub's store (`tcpipd --store`), whatever its name |
public struct PeerQuery: ControlPayload, Hashable {
    public var requestID: UInt32
    public var name: String?
    public var id: UInt32?
    /// Asks for the hub's store (`tcpipd --store`) instead of a peer by name or id.
    public var store = false

    public init(requestID: UInt32, name: String? = nil, id: UInt32? = nil, store: Bool = false) {
        self.requestID = requestID
        self.name = name
        self.id = id
        self.store = store
    }

    public init(tlv: ByteBuffer) throws {
        self.init(requestID: 0)
        try TLVReader.forEach(in: tlv) { field in
            switch field.tag {
            case 1: requestID = try field.integer(as: UInt32.self)
            case 2: name = try field.string()
            case 3: id = try field.integer(as: UInt32.self)
            case 4: store = try field.integer(as: UInt8.self) == 1
            default: break
            }
        }
    }

    public func write(to writer: inout TLVWriter) {
        writer.write(1, integer: requestID)
        writer.write(2, string: name)
        writer.write(3, integer: id)
        if store { writer.write(4, integer: UInt8(1)) }
    }
}

/// The hub's answer to a ``PeerQuery`` (PeerQueryResult, 66): the peer, or none when no connected peer matches.
///
/// | tag | field | encoding |
/// |---|---|---|
/// | 1 | requestID | u32 |
/// | 2 | peer | nested ``PeerRecord``, absent when not found |
public struct PeerQueryResult: ControlPayload, Hashable {
    public var requestID: UInt32
    public var peer: PeerRecord?

    public init(requestID: UInt32, peer: PeerRecord?) {
        self.requestID = requestID
        self.peer = peer
    }

    public init(tlv: ByteBuffer) throws {
        self.init(requestID: 0, peer: nil)
        try TLVReader.forEach(in: tlv) { field in
            switch field.tag {
            case 1: requestID = try field.integer(as: UInt32.self)
            case 2: peer = try PeerRecord(tlv: field.value)
            default: break
            }
        }
    }

    public func write(to writer: inout TLVWriter) {
        writer.write(1, integer: requestID)
        if let peer { writer.write(2, bytes: peer.encoded()) }
    }
}
