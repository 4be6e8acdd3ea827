import TCPIPWire

/// An error a program reports to its user, with the exit status (sysexits.h) that tells a script what to do next.
public struct TCPIPError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure: each maps to one exit status.
    public struct Kind: Hashable, Sendable {
        /// The process exit status for this kind.
        public let exitStatus: Int32
        private init(_ status: Int32) { exitStatus = status }

        /// 64: the command was used wrongly.
        public static let usage = Kind(64)
        /// 65: bad input data (a checksum mismatch, a refused frame).
        public static let dataError = Kind(65)
        /// 66: an input file does not exist or cannot be read.
        public static let noInput = Kind(66)
        /// 68: no connected peer has that name or id.
        public static let unknownPeer = Kind(68)
        /// 69: the hub cannot be reached.
        public static let unavailable = Kind(69)
        /// 70: a bug or an unexpected answer.
        public static let internalError = Kind(70)
        /// 73: an output cannot be created (the receiver could not store: no space, read-only, I/O error, quota).
        public static let cannotCreate = Kind(73)
        /// 75: a temporary failure (timeout, hub or peer gone): retry later.
        public static let temporary = Kind(75)
        /// 77: refused: the token or identity, or a receiver's policy (allow-from, size cap, not a receiver).
        public static let permissionDenied = Kind(77)
    }

    public let kind: Kind
    public let message: String
    /// The hub's error code, when this error is the hub's refusal.
    public var hubCode: ErrorCode?

    public init(_ kind: Kind, _ message: String, hubCode: ErrorCode? = nil) {
        self.kind = kind
        self.message = message
        self.hubCode = hubCode
    }

    public var exitStatus: Int32 { kind.exitStatus }
    public var description: String { message }

    public static func usage(_ message: String) -> TCPIPError { .init(.usage, message) }
    public static func unavailable(_ message: String) -> TCPIPError { .init(.unavailable, message) }
    public static func temporary(_ message: String) -> TCPIPError { .init(.temporary, message) }
    public static func unknownPeer(_ message: String) -> TCPIPError { .init(.unknownPeer, message) }
    public static func internalError(_ message: String) -> TCPIPError { .init(.internalError, message) }
}
