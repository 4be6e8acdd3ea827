/// Bytes that do not form a valid frame or payload. The connection that sent them cannot be trusted to stay in sync
/// and is closed.
public struct WireError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Code: Hashable, Sendable {
        case frameTooLarge(length: UInt64, limit: Int)
        case frameTooShort(length: UInt32)
        case unsupportedLevel(UInt8)
        case unknownMaskTo(UInt8)
        case truncatedField(tag: UInt8)
        case fieldOutsideFrame(tag: UInt8, length: Int, remaining: Int)
        case invalidUTF8(tag: UInt8)
        case integerTooWide(tag: UInt8, width: Int)
        case missingField(String)
        case invalidValue(String)
    }

    private let code: Code
    private init(_ code: Code) { self.code = code }

    public static func frameTooLarge(length: UInt64, limit: Int) -> WireError {
        .init(.frameTooLarge(length: length, limit: limit))
    }
    public static func frameTooShort(length: UInt32) -> WireError { .init(.frameTooShort(length: length)) }
    public static func unsupportedLevel(_ level: UInt8) -> WireError { .init(.unsupportedLevel(level)) }
    public static func unknownMaskTo(_ value: UInt8) -> WireError { .init(.unknownMaskTo(value)) }
    public static func truncatedField(tag: UInt8) -> WireError { .init(.truncatedField(tag: tag)) }
    public static func fieldOutsideFrame(tag: UInt8, length: Int, remaining: Int) -> WireError {
        .init(.fieldOutsideFrame(tag: tag, length: length, remaining: remaining))
    }
    public static func invalidUTF8(tag: UInt8) -> WireError { .init(.invalidUTF8(tag: tag)) }
    public static func integerTooWide(tag: UInt8, width: Int) -> WireError {
        .init(.integerTooWide(tag: tag, width: width))
    }
    public static func missingField(_ name: String) -> WireError { .init(.missingField(name)) }
    public static func invalidValue(_ what: String) -> WireError { .init(.invalidValue(what)) }

    /// True when the frame was refused for its announced length alone.
    public var isFrameTooLarge: Bool {
        if case .frameTooLarge = code { return true }
        return false
    }

    /// True when the "length" was the start of a TLS record (a content type of 20 to 23, then version 3.x): a
    /// plaintext peer talking to a TLS one, not a frame.
    public var looksLikeTLSRecord: Bool {
        guard case .frameTooLarge(let length, _) = code, length >= 4 else { return false }
        let prefix = length - 4
        return (20...23).contains(prefix >> 24) && (prefix >> 16) & 0xFF == 3
    }

    public var description: String {
        switch code {
        case .frameTooLarge(let length, let limit):
            "frame of \(length) bytes is larger than the maximum of \(limit) bytes"
        case .frameTooShort(let length):
            "frame length \(length) is shorter than the \(PacketHeader.sizeAfterLength)-byte header"
        case .unsupportedLevel(let level):
            "unsupported protocol level \(level) (this side speaks \(PacketHeader.currentLevel))"
        case .unknownMaskTo(let value):
            "unknown maskTo \(value) (0 hub, 1 client, 2 all, 3 group)"
        case .truncatedField(let tag):
            "field \(tag) is cut off by the end of the payload"
        case .fieldOutsideFrame(let tag, let length, let remaining):
            "field \(tag) announces \(length) bytes but only \(remaining) remain in the frame"
        case .invalidUTF8(let tag):
            "field \(tag) is not valid UTF-8"
        case .integerTooWide(let tag, let width):
            "field \(tag) holds a \(width)-byte integer; at most 8 bytes are allowed"
        case .missingField(let name):
            "required field \(name) is missing"
        case .invalidValue(let what):
            "invalid value: \(what)"
        }
    }
}
