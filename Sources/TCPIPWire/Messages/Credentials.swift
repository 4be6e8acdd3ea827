import NIOCore

/// What a client says about itself: MyCredentials (4) at registration, CredentialsUpdate (9) from a client later.
///
/// | tag | field | encoding |
/// |---|---|---|
/// | 1 | name | UTF-8, required in MyCredentials |
/// | 2 | host | UTF-8 |
/// | 3 | user | UTF-8 |
/// | 4 | role | UTF-8 ("client", "listener", "receiver", …) |
/// | 5 | version | UTF-8 |
/// | 6 | token | UTF-8, MyCredentials only |
/// | 7 | flags | u32, see ``RegistrationFlags`` |
///
/// In a CredentialsUpdate, absent fields keep their value.
///
/// Each field has a limit, checked here at the decoder boundary: the hub copies name, host, user, role and version
/// into a PeerRecord that it nests inside other TLV fields (Registered, ClientData, PeerQueryResult), so fields that
/// were each within the TLV limit of 65,535 bytes must not add up past it.
public struct Credentials: ControlPayload, Hashable {
    /// Bytes of UTF-8 per field (host, user: 255; role, version: 64; token: 4096). The name's limit (255) is the
    /// hub's name rule, which refuses a longer one as invalid credentials before it goes into any record.
    public static let limits: [UInt8: (name: String, bytes: Int)] = [
        2: ("host", 255), 3: ("user", 255), 4: ("role", 64), 5: ("version", 64), 6: ("token", 4096),
    ]

    /// The longest name a peer may register, in UTF-8 bytes (the hub's name rule).
    public static let maxNameBytes = 255

    /// The largest payload accepted: every known field once, each at its limit (the name at ``maxNameBytes``, the
    /// flags as 4 bytes), with 3 bytes of tag and length each — 5,014 bytes. Anything larger is refused as a whole
    /// before a field is read, and a hub accepts no larger frame from a connection that has not registered yet.
    public static let maxPayloadSize =
        7 * 3 + maxNameBytes + limits.values.reduce(0) { $0 + $1.bytes } + MemoryLayout<UInt32>.size

    /// The largest MyCredentials frame, length prefix and header included: the most a hub reads from a connection
    /// before it has registered.
    public static let maxFrameSize = PacketHeader.size + maxPayloadSize

    public var name: String?
    public var host: String?
    public var user: String?
    public var role: String?
    public var version: String?
    public var token: String?
    public var flags: RegistrationFlags

    public init(
        name: String? = nil, host: String? = nil, user: String? = nil, role: String? = nil, version: String? = nil,
        token: String? = nil, flags: RegistrationFlags = []
    ) {
        self.name = name
        self.host = host
        self.user = user
        self.role = role
        self.version = version
        self.token = token
        self.flags = flags
    }

    public init(tlv: ByteBuffer) throws {
        self.init()
        guard tlv.readableBytes <= Self.maxPayloadSize else {
            throw WireError.invalidValue(
                "credentials of \(tlv.readableBytes) bytes, more than the limit of \(Self.maxPayloadSize)")
        }
        try TLVReader.forEach(in: tlv) { field in
            if let limit = Self.limits[field.tag], field.value.readableBytes > limit.bytes {
                throw WireError.invalidValue(
                    "the \(limit.name) is \(field.value.readableBytes) bytes, more than the limit of \(limit.bytes)")
            }
            switch field.tag {
            case 1: name = try field.string()
            case 2: host = try field.string()
            case 3: user = try field.string()
            case 4: role = try field.string()
            case 5: version = try field.string()
            case 6: token = try field.string()
            case 7: flags = RegistrationFlags(rawValue: try field.integer(as: UInt32.self))
            default: break
            }
        }
    }

    public func write(to writer: inout TLVWriter) {
        writer.write(1, string: name)
        writer.write(2, string: host)
        writer.write(3, string: user)
        writer.write(4, string: role)
        writer.write(5, string: version)
        writer.write(6, string: token)
        if !flags.isEmpty { writer.write(7, integer: flags.rawValue) }
    }
}

/// What a client asks of the hub when it registers.
public struct RegistrationFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Send the peers already connected (ClientData, dataType `present`) right after Registered.
    public static let wantsRoster = RegistrationFlags(rawValue: 1 << 0)
    /// Send ClientData (`joined`), CredentialsUpdate and ClientDisconnecting as peers come, change and go.
    public static let wantsUpdates = RegistrationFlags(rawValue: 1 << 1)
    /// If the name is taken, the hub may register this client as `name#ID` instead of refusing it.
    public static let allowRename = RegistrationFlags(rawValue: 1 << 2)
}

extension Credentials {
    /// Whether `name` has the form the hub gives a peer whose name was taken (`NAME#ID`): no one may ask for one, so
    /// `NAME#ID` is only ever the peer with that id, and a rename can never find its name squatted.
    public static func isRename(_ name: String) -> Bool {
        guard let hash = name.lastIndex(of: "#") else { return false }
        let digits = name[name.index(after: hash)...]
        return !digits.isEmpty && digits.allSatisfy { $0.isASCII && $0.isNumber }
    }

    /// Why `name` cannot be registered, or nil when it can: the hub's name rule, which clients and the authorized-peers
    /// file check too.
    public static func problem(withName name: String) -> String? {
        if name.isEmpty { return "the name is empty" }
        if name.utf8.count > maxNameBytes { return "the name is longer than \(maxNameBytes) bytes" }
        if name.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F..<0xA0).contains($0.value) }) {
            return "the name contains control characters"
        }
        if name.first == "#" || UInt32(name) != nil { return "a name cannot be a number or start with '#'" }
        return nil
    }
}
