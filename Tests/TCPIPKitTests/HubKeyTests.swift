import Logging
import NIOCore
import TCPIPCore
import TCPIPHub
import TCPIPWire
import Testing

/// The hub core's rules for keys (a TLS hub with an authorized-peers list), without sockets.
@Suite struct HubKeyTests {
    /// Stands in for TLS: the core only needs to know that links are secured.
    struct FakeTLS: LinkSecurity {
        func makeHandlers() throws -> [any ChannelHandler] { [] }
        func explain(_ error: any Error, address: HostPort) -> TCPIPError? { nil }
    }

    static let archiveKey = NodeID(bytes: Array(repeating: 1, count: 32))!
    static let cronKey = NodeID(bytes: Array(repeating: 2, count: 32))!
    static let newKey = NodeID(bytes: Array(repeating: 3, count: 32))!

    static func harness(enrolling: Bool = false) -> HubHarness {
        HubHarness { configuration in
            configuration.security = FakeTLS()
            configuration.authorizedPeers = AuthorizedPeers(entries: [
                .init(id: archiveKey, name: "archive", roles: ["receiver"]), .init(id: cronKey, name: "cron"),
            ])
            if enrolling { configuration.enrollToken = Token("let-me-in") }
        }
    }

    /// Opens a connection that proved `key` and registers with `credentials`.
    static func register(_ hub: inout HubHarness, key: NodeID?, _ credentials: Credentials) -> (
        ConnectionID, [HubAction]
    ) {
        let id = hub.open()
        if let key { _ = hub.core.authenticated(id, key: key) }
        return (id, hub.core.received(credentials.packet(PacketHeader(type: .myCredentials)), from: id, now: hub.now))
    }

    static func error(_ actions: [HubAction]) -> ErrorPayload? {
        actions.lazy.compactMap { $0.type == .error ? try? ErrorPayload(tlv: $0.packet!.payload) : nil }.first
    }

    @Test func aKeyRegistersOnlyItsNameAndRoleAndADefaultNameBecomesIt() throws {
        var hub = Self.harness()
        #expect(Self.error(Self.register(&hub, key: nil, Credentials(name: "cron")).1)?.code == .authenticationFailed)
        #expect(
            Self.error(Self.register(&hub, key: Self.cronKey, Credentials(name: "archive")).1)?.code
                == .authenticationFailed)
        #expect(
            Self.error(Self.register(&hub, key: Self.archiveKey, Credentials(name: "archive", role: "client")).1)?.code
                == .authenticationFailed)
        #expect(
            Self.error(Self.register(&hub, key: Self.newKey, Credentials(name: "new")).1)?.code
                == .authenticationFailed)
        let (_, actions) = Self.register(&hub, key: Self.cronKey, Credentials(name: "root@box", flags: [.allowRename]))
        let registered = try Registered(tlv: try #require(actions.first { $0.type == .registered }?.packet).payload)
        #expect(registered.peer.name == "cron")
        #expect(registered.peer.key == Self.cronKey.bytes)
    }

    /// A registered key cannot take another's name, or a role its line does not give, by updating its credentials.
    @Test func aCredentialsUpdateCannotStealANameOrARole() throws {
        var hub = Self.harness()
        let (cron, _) = Self.register(&hub, key: Self.cronKey, Credentials(name: "cron"))
        for update in [Credentials(name: "archive"), Credentials(name: "archive", role: "receiver")] {
            let actions = hub.send(update.packet(PacketHeader(type: .credentialsUpdate, maskTo: .hub)), from: cron)
            #expect(Self.error(actions)?.code == .authenticationFailed)
        }
        let (archive, actions) = Self.register(
            &hub, key: Self.archiveKey, Credentials(name: "archive", role: "receiver"))
        #expect(actions.contains { $0.type == .registered }, "the name stayed free")
        let roleChange = hub.send(
            Credentials(role: "client").packet(PacketHeader(type: .credentialsUpdate, maskTo: .hub)), from: archive)
        #expect(Self.error(roleChange)?.code == .authenticationFailed)
        // What the line allows still goes through.
        let host = hub.send(
            Credentials(host: "files").packet(PacketHeader(type: .credentialsUpdate, maskTo: .hub)), from: archive)
        #expect(Self.error(host) == nil)
    }

    @Test func enrolmentTakesOnlyPlainFreeNamesAndOnlyWhenTheRegistrationGoesThrough() throws {
        var hub = Self.harness(enrolling: true)
        // A name that would read back as another ("archive receiver" → archive with role receiver), a taken one.
        for name in ["archive receiver", "bob#x", "archive"] {
            let actions = Self.register(&hub, key: Self.newKey, Credentials(name: name, token: "let-me-in")).1
            #expect(Self.error(actions) != nil, "\(name)")
            #expect(!actions.contains { if case .enrolled = $0 { true } else { false } })
        }
        #expect(hub.core.configuration.authorizedPeers?.entries(for: Self.newKey).isEmpty == true)
        let (_, ok) = Self.register(&hub, key: Self.newKey, Credentials(name: "newbie", token: "let-me-in"))
        let enrolled = ok.compactMap { if case .enrolled(let entry) = $0 { entry } else { nil } }
        #expect(enrolled.map(\.name) == ["newbie"])
        #expect(try AuthorizedPeers(parsing: enrolled[0].line).entries == enrolled)
        // Once known, the key gets no second name from the token.
        let second = Self.register(&hub, key: Self.newKey, Credentials(name: "other", token: "let-me-in")).1
        #expect(Self.error(second)?.code == .authenticationFailed)
    }
}

@Suite struct AnnouncedKeyTests {
    /// The hub announces a key peers can seal to (P-256, its hash the ID), and nothing for another kind: an RSA-4096
    /// key's 550 bytes in a record would have cut off every peer that looked this one up. A record that carries one
    /// anyway still decodes, without it.
    @Test func onlyKeysPeersCanSealToAreAnnounced() throws {
        var hub = HubHarness()
        func registered(spki: [UInt8], name: String) throws -> PeerRecord {
            let id = hub.open()
            _ = hub.core.authenticated(id, key: NodeID(spki: spki), spki: spki)
            let actions = hub.core.received(
                Credentials(name: name).packet(PacketHeader(type: .myCredentials)), from: id, now: hub.now)
            let packet = try #require(actions.first { $0.type == .registered }?.packet)
            return try Registered(tlv: packet.payload).peer
        }
        let sealing = try registered(spki: Sealed.receiver.spki, name: "archive")
        #expect(sealing.publicKey == Sealed.receiver.spki)
        let rsaSized = (0..<550).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let other = try registered(spki: rsaSized, name: "legacy")
        #expect(other.key == NodeID(spki: rsaSized).bytes, "still known by its key")
        #expect(other.publicKey == nil)

        var writer = TLVWriter()
        PeerRecord(id: 3, name: "legacy", key: NodeID(spki: rsaSized).bytes).write(to: &writer)
        writer.write(11, bytes: ByteBuffer(bytes: rsaSized))
        let decoded = try PeerRecord(tlv: writer.buffer)
        #expect(decoded.name == "legacy" && decoded.publicKey == nil)
    }
}
