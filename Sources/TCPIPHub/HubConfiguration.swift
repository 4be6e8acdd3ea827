import NIOCore
import TCPIPCore
import TCPIPWire

/// The hub's limits and settings. Clients cannot raise any of them.
public struct HubConfiguration: Sendable {
    /// Where to listen. Port 0 picks a free port.
    public var listen: HostPort = .defaultAddress
    /// The token clients must present, or nil for none (loopback only, unless ``allowInsecure``).
    public var token: Token?
    /// Listen on a non-loopback address without a token.
    public var allowInsecure = false
    /// The largest frame accepted, header included (default 1 MiB + 18 bytes).
    public var maxFrameSize = FrameParser.defaultMaxFrameSize
    /// Time between the hub's pings; a peer silent for three of them is dropped (default 15 s).
    public var pingInterval: Duration = .seconds(15)
    /// Time a new connection has to send MyCredentials (default 5 s).
    public var registrationTimeout: Duration = .seconds(5)
    /// Bytes the hub queues towards one connection before it stops reading the connections that feed it
    /// (default 8 MiB). Reading pauses at half of this, leaving room for frames already in flight.
    public var maxQueuedBytes = 8 << 20

    /// The receive buffer the hub asks the kernel for on each connection: a sixteenth of `maxQueuedBytes` (64 KiB to
    /// 1 MiB; the kernel doubles it). When a peer closes or half-closes, NIO reads everything already received at once,
    /// whatever the backpressure says; a fixed buffer (not one the kernel grows to 32 MB) bounds that burst.
    var receiveBufferSize: Int { min(max(maxQueuedBytes / 16, 64 << 10), 1 << 20) }
    /// Time a destination may make no progress reading before it is dropped (default 30 s).
    public var writeTimeout: Duration = .seconds(30)
    /// Event-loop threads for the connections (accepting, TLS, framing, writing); the core has one more of its own.
    /// Default: one per core but the one the core's loop takes (at least one). On 2 cores, one connection loop beside
    /// the core's carried 2 and 4 TLS senders at 0.40 GB/s, two loops at 0.29–0.36: the senders and the receiver need
    /// the cores too.
    public var threads = max(1, System.coreCount - 1)
    /// Connections waiting to register (TLS handshakes included), at most, from all sources together (default 256).
    /// Past it a newcomer is still admitted and a waiting connection is shed (``Admission``). Each may hold one
    /// MyCredentials-sized frame (``Credentials/maxFrameSize``) and its TLS handshake until its registration deadline,
    /// so this bounds what the hub holds for connections that have not registered.
    public var maxUnregistered = 256
    /// Connections waiting to register from one source address (an IPv6 /64) at once (default 10); the next one from
    /// that source is told `busy` and closed.
    public var maxUnregisteredPerSource = 10
    /// TLS for every connection (``LinkSecurity``, from TCPIPTLS); nil is plaintext.
    public var security: (any LinkSecurity)?
    /// The hub's own node ID (with TLS): the key its local connections (its store) are announced with.
    public var ownID: NodeID?
    /// Who may join, by key (`--authorized-peers`); nil lets any key, or any plaintext client, register any name.
    public var authorizedPeers: AuthorizedPeers?
    /// Where `authorizedPeers` was read from: read again when it changes and on SIGHUP, appended to at enrolment.
    public var authorizedPeersFile: AuthorizedPeersFile?
    /// A secret that lets an unknown key add itself to the authorized peers once (`--enroll-token-file`).
    public var enrollToken: Token?
    /// Listen on a non-loopback address without TLS (`--insecure-plaintext`).
    public var allowPlaintext = false
    /// Where to listen for clients of the seed's classic 1024-byte wire (`--classic-listen`), or nil for nowhere.
    /// Plaintext only, no key, no token: loopback unless ``allowPlaintext``.
    public var classicListen: HostPort?
    /// Peer ids fit in 16 bits (there is a classic listener: its clients see every peer's id in 16 bits).
    var classicIDs: Bool { classicListen != nil }
    /// The version the hub announces.
    public var version = tcpipVersion
    /// Tests that play a hostile hub change what it writes to its peers here (after its own checks and routing). Not
    /// an option of `tcpipd`.
    package var rewriteOutbound: (@Sendable ([Packet]) -> [Packet])?

    public init() {}

    /// Refuses settings that would make the hub insecure or unusable.
    public func validate() throws {
        if !listen.isLoopback && security == nil && !allowPlaintext {
            throw TCPIPError.usage(
                "refusing to listen on \(listen) without TLS: pass --tls (or --authorized-peers), "
                    + "or --insecure-plaintext to send everything in clear to anyone who can reach this address"
            )
        }
        if !listen.isLoopback && (token?.isEmpty ?? true) && authorizedPeers == nil && !allowInsecure {
            throw TCPIPError.usage(
                "refusing to listen on \(listen) letting anyone join: pass --authorized-peers FILE, set a token "
                    + "(TCPIP_TOKEN or --token-file), or pass --insecure-no-token to accept anyone who can reach it"
            )
        }
        if let classicListen, !classicListen.isLoopback && !allowPlaintext {
            throw TCPIPError.usage(
                "refusing to take classic clients on \(classicListen): the classic wire has no encryption and no "
                    + "authentication; pass --insecure-plaintext to let anyone who can reach it join in clear"
            )
        }
        if (authorizedPeers != nil || enrollToken != nil) && security == nil {
            throw TCPIPError.usage("--authorized-peers and --enroll-token-file need TLS (keys are proved by TLS)")
        }
        if enrollToken != nil && authorizedPeers == nil {
            throw TCPIPError.usage("--enroll-token-file needs --authorized-peers (where enrolled keys are added)")
        }
        guard maxFrameSize >= PacketHeader.size + 1024 else {
            throw TCPIPError.usage("--max-frame-size must be at least \(PacketHeader.size + 1024) bytes")
        }
        guard maxFrameSize <= Int(UInt32.max) else { throw TCPIPError.usage("--max-frame-size is larger than 4 GiB") }
        guard maxQueuedBytes >= 2 * maxFrameSize else {
            throw TCPIPError.usage("--max-queued-bytes must be at least twice --max-frame-size")
        }
        guard (1...1024).contains(threads) else { throw TCPIPError.usage("--threads must be from 1 to 1024") }
        guard maxUnregistered > 0 else { throw TCPIPError.usage("--max-unregistered must be at least 1") }
        guard maxUnregisteredPerSource > 0 else {
            throw TCPIPError.usage("--max-unregistered-per-source must be at least 1")
        }
        guard pingInterval > .zero, registrationTimeout > .zero, writeTimeout > .zero else {
            throw TCPIPError.usage("intervals and timeouts must be positive")
        }
    }
}
