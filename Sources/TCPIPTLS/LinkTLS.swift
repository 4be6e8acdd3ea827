import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import NIOTLS
import TCPIPCore

/// The hub's side of TLS 1.3: it presents its node key and asks every client for one. Which keys may join is decided
/// at registration (``AuthorizedPeers``), so any key completes the handshake; the key each connection proved reaches
/// the hub as a ``PeerAuthenticated`` event.
public struct HubTLS: LinkSecurity {
    let context: NIOSSLContext

    /// Builds the context (blocking: do it once, before the hub starts).
    public init(key: NodeKey) throws {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(key.certificate)], privateKey: .privateKey(key.privateKey))
        configuration.minimumTLSVersion = .tlsv13
        // Ask for (and require) a client certificate; the callback below replaces BoringSSL's chain checks.
        configuration.certificateVerification = .noHostnameVerification
        // Keys are pinned, never chained to a CA: the system's CA bundle would be parsed for nothing.
        configuration.trustRoots = .certificates([])
        context = try NIOSSLContext(configuration: configuration)
    }

    public func makeHandlers() throws -> [any ChannelHandler] {
        [
            NIOSSLServerHandler(context: context) { certificates, promise in
                // Any key may prove itself; the pin is the authorized-peers list, checked at registration.
                promise.succeed(certificates.first.flatMap(NodeKey.id(of:)) == nil ? .failed : .certificateVerified)
            },
            ProvenKeyHandler(),
        ]
    }

    public func explain(_ error: any Error, address: HostPort) -> TCPIPError? { nil }
}

/// A client's side of TLS 1.3: it presents its node key and accepts the hub only if the hub's key is the one pinned
/// (`--hub-id`, `TCPIP_HUB_ID` or `known_hubs`), or, with `--trust-new-hub`, the first one seen, which it then adds to
/// `known_hubs` with a warning.
public final class HubPin: LinkSecurity, @unchecked Sendable {
    /// Where the pin came from, for the refusal message.
    public enum Source: Sendable {
        case option
        case knownHubs(path: String)
        /// Trust on first use: add what is seen to this known_hubs file.
        case trustNew(path: String)
    }

    let context: NIOSSLContext
    /// The key the hub must prove; nil until a new hub is trusted (then the first key that completes a handshake,
    /// for this connection and every reconnection after it).
    private let expectedBox: NIOLockedValueBox<NodeID?>
    public var expected: NodeID? { expectedBox.withLockedValue { $0 } }
    let source: Source
    let address: HostPort
    private let seen = NIOLockedValueBox<NodeID?>(nil)
    private let onTrusted: @Sendable (NodeID) -> Void

    /// `expected` nil trusts the first key (only with `.trustNew`); `onTrusted` is told when that happens.
    public init(
        key: NodeKey, expected: NodeID?, source: Source, address: HostPort,
        onTrusted: @escaping @Sendable (NodeID) -> Void = { _ in }
    ) throws {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        configuration.certificateChain = [.certificate(key.certificate)]
        configuration.privateKey = .privateKey(key.privateKey)
        configuration.certificateVerification = .noHostnameVerification
        // The hub's key is checked against its pin by the callback in `makeHandlers`, never against a CA: loading the
        // system's CA bundle cost every TLS one-shot its parsing.
        configuration.trustRoots = .certificates([])
        context = try NIOSSLContext(configuration: configuration)
        expectedBox = NIOLockedValueBox(expected)
        self.source = source
        self.address = address
        self.onTrusted = onTrusted
    }

    /// The hub's key, once the handshake has shown it.
    public var hubID: NodeID? { seen.withLockedValue { $0 } }

    public var shownKey: NodeID? { hubID }

    public func makeHandlers() throws -> [any ChannelHandler] {
        let expected = self.expectedBox
        let seen = self.seen
        let handler = try NIOSSLClientHandler(context: context, serverHostname: nil) { certificates, promise in
            guard let id = certificates.first.flatMap(NodeKey.id(of:)) else { return promise.succeed(.failed) }
            seen.withLockedValue { $0 = id }
            // BoringSSL asks before the hub has proved it holds the key (CertificateVerify comes next): a new hub is
            // only remembered once the handshake completes (`TrustOnHandshake`).
            let pinned = expected.withLockedValue { $0 }
            promise.succeed(pinned == nil || pinned == id ? .certificateVerified : .failed)
        }
        return [handler, TrustOnHandshake(pin: self)]
    }

    /// The handshake with a hub nobody pinned completed: from now on its key is the pin.
    fileprivate func handshakeCompleted() {
        guard let id = hubID else { return }
        let isNew = expectedBox.withLockedValue { expected -> Bool in
            guard expected == nil else { return false }
            expected = id
            return true
        }
        if isNew { onTrusted(id) }
    }

    public func explain(_ error: any Error, address: HostPort) -> TCPIPError? {
        if let expected, let seen = hubID, seen != expected {
            let from =
                switch source {
                case .option: "--hub-id or TCPIP_HUB_ID"
                case .knownHubs(let path), .trustNew(let path): path
                }
            return TCPIPError(
                .permissionDenied,
                "the hub at \(address) proved key \(seen), but \(expected) was expected (from \(from)); nothing was "
                    + "sent. If the hub's key really changed, fix the pin.")
        }
        if hubID == nil, error is NIOSSLError || error is BoringSSLError {
            return TCPIPError(
                .unavailable,
                "TLS with the hub at \(address) failed before it showed a key (\(error)): is it a plaintext hub? "
                    + "(a plaintext hub on loopback needs no --hub-id)")
        }
        return nil
    }
}

/// Tells a ``HubPin`` that the handshake completed (the hub proved the key it showed).
final class TrustOnHandshake: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let pin: HubPin

    init(pin: HubPin) { self.pin = pin }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { pin.handshakeCompleted() }
        context.fireUserInboundEventTriggered(event)
    }
}

/// Fires ``PeerAuthenticated`` with the key the peer proved once the TLS handshake is done.
final class ProvenKeyHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent,
            let certificate = try? context.pipeline.syncOperations.nioSSL_peerCertificate(),
            let spki = try? certificate.extractPublicKey().toSPKIBytes()
        {
            context.fireUserInboundEventTriggered(PeerAuthenticated(id: NodeID(spki: spki), spki: spki))
        }
        context.fireUserInboundEventTriggered(event)
    }
}
