import TCPIPCore
import TCPIPWire

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How a client connects and what it says about itself.
public struct ClientConfiguration: Sendable {
    /// The hub's address.
    public var server: HostPort = .defaultAddress
    /// The name to register. Unique among connected peers.
    public var name: String
    /// True when the name is the default (`USER@HOSTNAME`): the hub may then register `NAME#ID` if it is taken.
    public var nameIsDefault: Bool
    public var host: String
    public var user: String
    /// "client", "listener", "receiver", or anything an application likes.
    public var role = "client"
    public var token: Token?
    /// Time allowed to connect and register, and the default for waiting on answers.
    public var timeout: Duration = .seconds(30)
    /// Roster and update wishes (``RegistrationFlags``); `allowRename` is added from ``nameIsDefault``.
    public var flags: RegistrationFlags = []
    public var maxFrameSize = FrameParser.defaultMaxFrameSize
    /// TLS with the hub's key pinned (``LinkSecurity``, from TCPIPTLS); nil is plaintext.
    public var security: (any LinkSecurity)?
    public var version = tcpipVersion
    /// A socket already connected to the hub, used instead of `server`: how the hub's own store joins it (see
    /// ``HubServer/connectLocal()``). The session takes ownership of it.
    public var connectedSocket: Int32?
    /// How direct links are secured when the hub link is TLS: each end proves its own node key and pins the other's
    /// to the key the hub vouched for. Nil on a plaintext hub: a direct link is then plaintext, and the ticket alone
    /// admits its sender.
    public var directSecurity: DirectSecurity?
    /// This node's key (with TLS): files and messages to peers that proved keys are sealed to them and signed with it,
    /// and what is sealed to it is opened with it.
    public var sealing: SealingKey?

    /// A configuration with this machine's identity and the default name.
    public init(name: String? = nil) {
        host = Self.hostName()
        user = Self.userName()
        if let name {
            self.name = name
            nameIsDefault = false
        } else {
            self.name = "\(user)@\(host)"
            nameIsDefault = true
        }
    }

    /// The credentials this configuration registers with.
    public var credentials: Credentials {
        var flags = self.flags
        if nameIsDefault { flags.insert(.allowRename) }
        return Credentials(
            name: name, host: host, user: user, role: role, version: version, token: token?.text, flags: flags
        )
    }

    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func userName() -> String {
        if let user = getenv("USER"), let name = String(validatingCString: user), !name.isEmpty { return name }
        if let entry = getpwuid(geteuid()), let name = String(validatingCString: entry.pointee.pw_name) { return name }
        return "uid\(geteuid())"
    }
}

/// TLS for direct links (built by the command line, which holds the node key; TCPIPTLS makes the handlers).
public struct DirectSecurity: Sendable {
    /// A sender's side: proves this node's key, and accepts the receiver only if it proves `expected`.
    public var dialing: @Sendable (_ expected: NodeID, _ address: HostPort) throws -> any LinkSecurity
    /// A receiver's side: proves this node's key and asks each sender for its own; the key a sender proved comes up
    /// the pipeline as ``PeerAuthenticated`` and is checked against the ticket's. Made when a listener starts (a TLS
    /// context costs a one-shot client time it never needs).
    public var listening: @Sendable () throws -> any LinkSecurity

    public init(
        dialing: @escaping @Sendable (NodeID, HostPort) throws -> any LinkSecurity,
        listening: @escaping @Sendable () throws -> any LinkSecurity
    ) {
        self.dialing = dialing
        self.listening = listening
    }
}
