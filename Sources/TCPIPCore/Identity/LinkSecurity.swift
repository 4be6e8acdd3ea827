import NIOCore

/// What secures a link (TLS, in the TCPIPTLS module): handlers that go first in each connection's pipeline. Kept as a
/// protocol so that the hub and client modules (and the fuzz build, which compiles them with sanitizers) link no TLS
/// library.
public protocol LinkSecurity: Sendable {
    /// The handlers for one new connection, made on its event loop.
    func makeHandlers() throws -> [any ChannelHandler]
    /// A clear error for a failure of the secured link (a pin mismatch, a peer that does not speak TLS), or nil.
    func explain(_ error: any Error, address: HostPort) -> TCPIPError?
    /// The key the other end showed in the handshake, once it did (nil when this side does not check one).
    var shownKey: NodeID? { get }
}

extension LinkSecurity {
    public var shownKey: NodeID? { nil }
}

/// Fired up the pipeline once a TLS handshake proved which key the peer holds.
public struct PeerAuthenticated: Sendable, Hashable {
    public var id: NodeID
    /// The key itself (DER SubjectPublicKeyInfo), whose SHA-256 is `id`: peers seal to it (PeerRecord tag 11).
    public var spki: [UInt8]?
    public init(id: NodeID, spki: [UInt8]? = nil) {
        self.id = id
        self.spki = spki
    }
}
