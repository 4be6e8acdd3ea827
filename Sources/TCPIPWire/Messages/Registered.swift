import NIOCore

/// The hub's answer to valid credentials (Registered, 5).
///
/// | tag | field | encoding |
/// |---|---|---|
/// | 1 | self | nested ``PeerRecord``: the new id, the final name, the address the hub sees |
/// | 2 | hubTime | u64, microseconds since the Unix epoch |
/// | 3 | heartbeat | u32, milliseconds between the hub's pings |
/// | 4 | rosterCount | u32, ClientData packets that follow (0 unless the roster was asked for) |
public struct Registered: ControlPayload, Hashable {
    public var peer: PeerRecord
    public var hubTime: WireTime
    public var heartbeatMilliseconds: UInt32
    public var rosterCount: UInt32

    public init(peer: PeerRecord, hubTime: WireTime, heartbeatMilliseconds: UInt32, rosterCount: UInt32) {
        self.peer = peer
        self.hubTime = hubTime
        self.heartbeatMilliseconds = heartbeatMilliseconds
        self.rosterCount = rosterCount
    }

    public init(tlv: ByteBuffer) throws {
        var peer: PeerRecord?
        var hubTime: WireTime = 0
        var heartbeat: UInt32 = 0
        var rosterCount: UInt32 = 0
        try TLVReader.forEach(in: tlv) { field in
            switch field.tag {
            case 1: peer = try PeerRecord(tlv: field.value)
            case 2: hubTime = try field.integer()
            case 3: heartbeat = try field.integer(as: UInt32.self)
            case 4: rosterCount = try field.integer(as: UInt32.self)
            default: break
            }
        }
        guard let peer else { throw WireError.missingField("registered peer") }
        self.init(peer: peer, hubTime: hubTime, heartbeatMilliseconds: heartbeat, rosterCount: rosterCount)
    }

    public func write(to writer: inout TLVWriter) {
        writer.write(1, bytes: peer.encoded())
        writer.write(2, integer: hubTime)
        writer.write(3, integer: heartbeatMilliseconds)
        writer.write(4, integer: rosterCount)
    }
}

/// The hub's greeting (RequestCredentials, 3).
///
/// | tag | field | encoding |
/// |---|---|---|
/// | 1 | hubVersion | UTF-8 |
/// | 2 | tokenRequired | u8, 1 when MyCredentials must carry the token |
public struct CredentialsRequest: ControlPayload, Hashable {
    public var hubVersion: String
    public var tokenRequired: Bool

    public init(hubVersion: String, tokenRequired: Bool) {
        self.hubVersion = hubVersion
        self.tokenRequired = tokenRequired
    }

    public init(tlv: ByteBuffer) throws {
        self.init(hubVersion: "", tokenRequired: false)
        try TLVReader.forEach(in: tlv) { field in
            switch field.tag {
            case 1: hubVersion = try field.string()
            case 2: tokenRequired = try field.integer() != 0
            default: break
            }
        }
    }

    public func write(to writer: inout TLVWriter) {
        writer.write(1, string: hubVersion)
        writer.write(2, integer: UInt8(tokenRequired ? 1 : 0))
    }
}

/// A text saying why, used by HostExiting (6).
///
/// | tag | field | encoding |
/// |---|---|---|
/// | 1 | reason | UTF-8 |
public struct Reason: ControlPayload, Hashable {
    public var text: String

    public init(_ text: String) { self.text = text }

    public init(tlv: ByteBuffer) throws {
        self.init("")
        try TLVReader.forEach(in: tlv) { field in
            if field.tag == 1 { text = try field.string() }
        }
    }

    public func write(to writer: inout TLVWriter) { writer.write(1, string: text) }
}
