import NIOCore

/// An error report (Error, 64): a machine-readable code and a human text.
///
/// | tag | field | encoding |
/// |---|---|---|
/// | 1 | code | u16, see ``ErrorCode`` |
/// | 2 | message | UTF-8 |
/// | 3 | peerID | u32, the peer the error concerns (an unknown idTo, a stalled receiver) |
/// | 4 | packetType | u16, the type of the packet that caused it |
public struct ErrorPayload: ControlPayload, Hashable, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String
    public var peerID: UInt32?
    public var packetType: PacketType?

    public init(code: ErrorCode, message: String, peerID: UInt32? = nil, packetType: PacketType? = nil) {
        self.code = code
        self.message = message
        self.peerID = peerID
        self.packetType = packetType
    }

    public init(tlv: ByteBuffer) throws {
        self.init(code: ErrorCode(rawValue: 0), message: "")
        try TLVReader.forEach(in: tlv) { field in
            switch field.tag {
            case 1: code = ErrorCode(rawValue: try field.integer(as: UInt16.self))
            case 2: message = try field.string()
            case 3: peerID = try field.integer(as: UInt32.self)
            case 4: packetType = PacketType(try field.integer(as: UInt16.self))
            default: break
            }
        }
    }

    public func write(to writer: inout TLVWriter) {
        writer.write(1, integer: code.rawValue)
        writer.write(2, string: message)
        writer.write(3, integer: peerID)
        writer.write(4, integer: packetType?.rawValue)
    }

    public var description: String { "\(code): \(message)" }
}

/// Codes carried by the Error packet. Unknown codes are kept as numbers.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Bytes that are not a valid frame or payload. The connection is closed.
    public static let malformed = ErrorCode(rawValue: 1)
    /// A frame over the hub's maximum. The connection is closed.
    public static let frameTooLarge = ErrorCode(rawValue: 2)
    /// A packet other than MyCredentials before registration. The connection is closed.
    public static let notRegistered = ErrorCode(rawValue: 3)
    /// A missing or wrong token. The connection is closed.
    public static let authenticationFailed = ErrorCode(rawValue: 4)
    /// The name is used by another connected peer. The connection is closed.
    public static let nameInUse = ErrorCode(rawValue: 5)
    /// No connected peer has that id or name. The connection stays open.
    public static let unknownPeer = ErrorCode(rawValue: 6)
    /// MyCredentials did not arrive within the registration deadline. The connection is closed.
    public static let registrationTimeout = ErrorCode(rawValue: 7)
    /// The peer was silent for three heartbeats. The connection is closed.
    public static let heartbeatTimeout = ErrorCode(rawValue: 8)
    /// The destination made no progress reading for the write deadline and was dropped.
    public static let peerStalled = ErrorCode(rawValue: 9)
    /// Credentials the hub cannot accept (an empty or over-long name, a bad character).
    public static let invalidCredentials = ErrorCode(rawValue: 10)
    /// A packet type only the hub may send, or a type the hub does not handle sent to the hub.
    public static let unsupported = ErrorCode(rawValue: 11)
    /// The hub is shutting down.
    public static let shuttingDown = ErrorCode(rawValue: 12)
    /// Too many connections are waiting to register: try again later. The connection is closed.
    public static let busy = ErrorCode(rawValue: 13)

    public var description: String {
        switch self {
        case .malformed: "malformed"
        case .frameTooLarge: "frame-too-large"
        case .notRegistered: "not-registered"
        case .authenticationFailed: "authentication-failed"
        case .nameInUse: "name-in-use"
        case .unknownPeer: "unknown-peer"
        case .registrationTimeout: "registration-timeout"
        case .heartbeatTimeout: "heartbeat-timeout"
        case .peerStalled: "peer-stalled"
        case .invalidCredentials: "invalid-credentials"
        case .unsupported: "unsupported"
        case .shuttingDown: "shutting-down"
        case .busy: "busy"
        default: "error-\(rawValue)"
        }
    }
}
