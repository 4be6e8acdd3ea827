import Logging
import NIOCore
import TCPIPCore
import TCPIPTestSupport
import TCPIPWire
import Testing

@testable import TCPIPHub

/// Drives a HubCore directly: no sockets, and a clock the test moves.
struct HubHarness {
    var core: HubCore
    var now: WireTime = 1_000_000_000
    var nextConnection: UInt64 = 1

    init(configure: (inout HubConfiguration) -> Void = { _ in }) {
        var configuration = HubConfiguration()
        configuration.pingInterval = .seconds(1)
        configure(&configuration)
        core = HubCore(
            configuration: configuration, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    mutating func open() -> ConnectionID {
        let id = ConnectionID(nextConnection)
        nextConnection += 1
        let actions = core.connected(id, address: "127.0.0.1:\(40000 + id.rawValue)", now: now)
        #expect(actions.map(\.type) == [.requestCredentials])
        return id
    }

    /// Opens and registers; returns the connection, the actions the registration caused, and the assigned peer.
    mutating func register(_ credentials: Credentials) -> (ConnectionID, [HubAction]) {
        let id = open()
        return (id, core.received(credentials.packet(PacketHeader(type: .myCredentials)), from: id, now: now))
    }

    mutating func join(_ name: String, flags: RegistrationFlags = []) -> (connection: ConnectionID, peer: UInt32) {
        let (id, actions) = register(Credentials(name: name, flags: flags))
        let registered = actions.first { $0.connection == id && $0.type == .registered }
        let payload = try! Registered(tlv: registered!.packet!.payload)
        return (id, payload.peer.id)
    }

    mutating func send(_ packet: Packet, from id: ConnectionID) -> [HubAction] {
        core.received(packet, from: id, now: now)
    }
}

extension HubAction {
    var connection: ConnectionID {
        switch self {
        case .send(let id, _), .close(let id): id
        case .enrolled: ConnectionID(0)
        }
    }
    var packet: Packet? {
        if case .send(_, let packet) = self { return packet }
        return nil
    }
    var type: PacketType? { packet?.header.type }
    var isClose: Bool {
        if case .close = self { return true }
        return false
    }
    var error: ErrorPayload? {
        guard let packet, packet.header.type == .error else { return nil }
        return try? ErrorPayload(tlv: packet.payload)
    }
}

@Suite struct HubCoreTests {
    @Test func registrationAssignsIdsFromOneAndSendsRosterOnlyWhenAsked() throws {
        var hub = HubHarness()
        let a = hub.join("alpha")
        let b = hub.join("beta")
        #expect(a.peer == 1)
        #expect(b.peer == 2)
        let (c, actions) = hub.register(Credentials(name: "gamma", role: "receiver", flags: [.wantsRoster]))
        #expect(actions.map(\.type) == [.registered, .clientData, .clientData])
        #expect(actions.allSatisfy { $0.connection == c })
        let registered = try Registered(tlv: actions[0].packet!.payload)
        #expect(registered.peer.id == 3)
        #expect(registered.peer.role == "receiver")
        #expect(registered.rosterCount == 2)
        #expect(registered.heartbeatMilliseconds == 1000)
        let roster = try actions.dropFirst().map { try PeerRecord(tlv: $0.packet!.payload) }
        #expect(roster.map(\.name) == ["alpha", "beta"])
        #expect(actions[1].packet!.header.dataType == ClientDataKind.present.rawValue)
    }

    @Test func joinAndLeaveReachWatchersOnly() throws {
        var hub = HubHarness()
        let watcher = hub.join("watcher", flags: [.wantsUpdates])
        _ = hub.join("quiet")
        let (newcomer, actions) = hub.register(Credentials(name: "newcomer"))
        let notices = actions.filter { $0.type == .clientData }
        #expect(notices.map(\.connection) == [watcher.connection])
        #expect(notices[0].packet!.header.dataType == ClientDataKind.joined.rawValue)
        #expect(try PeerRecord(tlv: notices[0].packet!.payload).name == "newcomer")

        let left = hub.core.disconnected(newcomer)
        #expect(left.map(\.connection) == [watcher.connection])
        #expect(left[0].type == .clientDisconnecting)
        #expect(left[0].packet!.header.dataType == DisconnectReason.left.rawValue)
    }

    @Test func joinStormCostsLinearPackets() {
        var hub = HubHarness()
        _ = hub.join("watcher", flags: [.wantsUpdates])
        var packets = 0
        for index in 0..<1000 {
            let id = hub.open()
            packets += 1
            packets +=
                hub.send(Credentials(name: "peer\(index)").packet(PacketHeader(type: .myCredentials)), from: id).count
        }
        // RequestCredentials + Registered per newcomer, one joined notice per watcher: 3 per join, not O(N).
        #expect(packets == 3000)
    }

    @Test func nameInUseIsRefusedUnlessRenameAllowed() throws {
        var hub = HubHarness()
        _ = hub.join("ops")
        let (second, refused) = hub.register(Credentials(name: "ops"))
        #expect(refused.first?.error?.code == .nameInUse)
        #expect(refused.last?.isClose == true && refused.last?.connection == second)
        let (_, renamed) = hub.register(Credentials(name: "ops", flags: [.allowRename]))
        let registered = try Registered(tlv: renamed[0].packet!.payload)
        #expect(registered.peer.name == "ops#2")
    }

    @Test(arguments: [nil, "wrong", "s3cret!", ""])
    func wrongTokenIsRefused(token: String?) {
        var hub = HubHarness { $0.token = Token("s3cret") }
        let (id, actions) = hub.register(Credentials(name: "x", token: token))
        #expect(actions.first?.error?.code == .authenticationFailed)
        #expect(actions.last == .close(id))
        #expect(hub.core.peerCount == 0)
    }

    @Test func rightTokenIsAccepted() {
        var hub = HubHarness { $0.token = Token("s3cret") }
        let (_, actions) = hub.register(Credentials(name: "x", token: "s3cret"))
        #expect(actions.first?.type == .registered)
    }

    @Test(arguments: ["", "a\u{1b}[2Jb", "line\nbreak", "123", "#7", String(repeating: "n", count: 256)])
    func invalidNamesAreRefused(name: String) {
        var hub = HubHarness()
        let (_, actions) = hub.register(Credentials(name: name))
        #expect(actions.first?.error?.code == .invalidCredentials)
    }

    @Test func packetBeforeRegistrationClosesTheConnection() {
        var hub = HubHarness()
        let id = hub.open()
        let actions = hub.send(Packet(header: PacketHeader(type: .message, maskTo: .all)), from: id)
        #expect(actions.first?.error?.code == .notRegistered)
        #expect(actions.last == .close(id))
    }

    @Test func routingToOneClientStampsTheSender() {
        var hub = HubHarness()
        let a = hub.join("a")
        let b = hub.join("b")
        let spoofed = Packet(
            header: PacketHeader(type: .message, maskTo: .client, idTo: b.peer, idFrom: 999),
            payload: ByteBuffer(string: "hi")
        )
        let actions = hub.send(spoofed, from: a.connection)
        #expect(actions.count == 1)
        #expect(actions[0].connection == b.connection)
        #expect(actions[0].packet?.header.idFrom == a.peer)
        #expect(actions[0].packet?.payload == ByteBuffer(string: "hi"))
    }

    @Test func routingToAllReachesEveryOtherClient() {
        var hub = HubHarness()
        let a = hub.join("a")
        let b = hub.join("b")
        let c = hub.join("c")
        let actions = hub.send(Packet(header: PacketHeader(type: .message, maskTo: .all)), from: a.connection)
        #expect(Set(actions.map(\.connection)) == [b.connection, c.connection])
        #expect(actions.allSatisfy { $0.packet?.header.idFrom == a.peer })
    }

    @Test func unknownDestinationGetsAnErrorAndTheConnectionStays() {
        var hub = HubHarness()
        let a = hub.join("a")
        let actions = hub.send(
            Packet(header: PacketHeader(type: .message, maskTo: .client, idTo: 42)), from: a.connection)
        #expect(actions.count == 1)
        #expect(actions[0].connection == a.connection)
        #expect(actions[0].error?.code == .unknownPeer)
        #expect(actions[0].error?.peerID == 42)
        #expect(hub.core.peerCount == 1)
    }

    @Test func unknownTypesAreRelayedUntouched() {
        var hub = HubHarness()
        let a = hub.join("a")
        let b = hub.join("b")
        let custom = Packet(
            header: PacketHeader(type: PacketType(5000), dataType: 77, maskTo: .client, idTo: b.peer),
            payload: ByteBuffer(bytes: [0, 1, 2, 255])
        )
        let actions = hub.send(custom, from: a.connection)
        var expected = custom
        expected.header.idFrom = a.peer
        #expect(actions == [.send(b.connection, expected)])
    }

    @Test func hubOnlyTypesFromClientsAreRefused() {
        var hub = HubHarness()
        let a = hub.join("a")
        _ = hub.join("b")
        let actions = hub.send(Packet(header: PacketHeader(type: .hostExiting, maskTo: .all)), from: a.connection)
        // Not relayed: the forger is told why and disconnected; b hears nothing (it asked for no updates).
        #expect(actions.first?.error?.code == .unsupported)
        #expect(actions.last == .close(a.connection))
        #expect(actions.count == 2)
        #expect(hub.core.peerCount == 1)
    }

    @Test func malformedControlPacketsCloseTheConnection() {
        var hub = HubHarness()
        let a = hub.join("a")
        // A Ping whose only field says 40 bytes and carries 1.
        let ping = Packet(header: PacketHeader(type: .ping), payload: ByteBuffer(bytes: [1, 0, 40, 1]))
        let actions = hub.send(ping, from: a.connection)
        #expect(actions.first?.error?.code == .malformed)
        #expect(actions.last == .close(a.connection))
        #expect(hub.core.peerCount == 0)
    }

    @Test func credentialFieldsPastTheirLimitsAreRefusedBeforeAnyRecordIsMade() {
        // 65,535 bytes is a legal TLV value, but a PeerRecord holding it would not fit in Registered's field.
        var hub = HubHarness()
        let (id, actions) = hub.register(Credentials(name: "x", host: String(repeating: "h", count: 65_535)))
        #expect(actions.first?.error?.code == .malformed)
        #expect(actions.last == .close(id))
        #expect(hub.core.peerCount == 0)
    }

    @Test func oneSourceMayKeepOnlyItsShareWaitingAndNeverLocksOutAnother() {
        var hub = HubHarness {
            $0.maxUnregistered = 100
            $0.maxUnregisteredPerSource = 3
        }
        _ = hub.join("a")
        for raw in UInt64(100)..<103 {
            let actions = hub.core.connected(ConnectionID(raw), address: "x", source: "127.0.0.2", now: hub.now)
            #expect(actions.map(\.type) == [.requestCredentials])
        }
        // The fourth from the same source is turned away; the three that wait stay.
        let fourth = hub.core.connected(ConnectionID(103), address: "x", source: "127.0.0.2", now: hub.now)
        #expect(fourth.first?.error?.code == .busy)
        #expect(fourth.last == .close(ConnectionID(103)))
        #expect(!hub.core.isOpen(ConnectionID(103)))
        #expect((100..<103).allSatisfy { hub.core.isOpen(ConnectionID($0)) })
        // Another source is not affected.
        let other = hub.core.connected(ConnectionID(104), address: "y", source: "127.0.0.1", now: hub.now)
        #expect(other.map(\.type) == [.requestCredentials])
        // Once one of the three registers, its source has room again.
        _ = hub.send(Credentials(name: "b").packet(PacketHeader(type: .myCredentials)), from: ConnectionID(100))
        #expect(hub.core.peerID(of: ConnectionID(100)) != nil)
        let again = hub.core.connected(ConnectionID(105), address: "x", source: "127.0.0.2", now: hub.now)
        #expect(again.map(\.type) == [.requestCredentials])
        // A refused registration and a closed connection give their place back too.
        _ = hub.send(Packet(header: PacketHeader(type: .ping)), from: ConnectionID(101))
        _ = hub.core.disconnected(ConnectionID(102))
        #expect(hub.core.unregisteredCount == 2)
    }

    @Test func pastTheTotalTheSourceHoldingMostIsShedNotTheNewcomer() {
        var hub = HubHarness {
            $0.maxUnregistered = 6
            $0.maxUnregisteredPerSource = 4
        }
        // The attacker holds 4, two others one each: full.
        for raw in UInt64(1)...4 { _ = hub.core.connected(ConnectionID(raw), address: "a", source: "A", now: hub.now) }
        _ = hub.core.connected(ConnectionID(5), address: "b", source: "B", now: hub.now)
        _ = hub.core.connected(ConnectionID(6), address: "c", source: "C", now: hub.now)
        #expect(hub.core.unregisteredCount == 6)
        // A newcomer is greeted; the attacker's oldest makes room, told why.
        let newcomer = hub.core.connected(ConnectionID(7), address: "d", source: "D", now: hub.now)
        #expect(newcomer.contains { $0.connection == ConnectionID(1) && $0.error?.code == .busy })
        #expect(newcomer.contains(.close(ConnectionID(1))))
        #expect(newcomer.last?.connection == ConnectionID(7) && newcomer.last?.type == .requestCredentials)
        #expect(!hub.core.isOpen(ConnectionID(1)))
        #expect([5, 6, 7].allSatisfy { hub.core.isOpen(ConnectionID($0)) })
        #expect(hub.core.unregisteredCount == 6)
        // However many the attacker sends, it keeps shedding its own: B, C and D stay.
        for raw in UInt64(8)..<40 {
            _ = hub.core.connected(ConnectionID(raw), address: "a", source: "A", now: hub.now)
        }
        #expect([5, 6, 7].allSatisfy { hub.core.isOpen(ConnectionID($0)) })
        #expect(hub.core.unregisteredCount == 6)
        // The hub's own connection is never counted nor shed.
        let local = hub.core.connected(ConnectionID(50), address: "local", now: hub.now, local: true)
        #expect(local.map(\.type) == [.requestCredentials])
        #expect(hub.core.unregisteredCount == 6)
    }

    @Test func whenEverySourceHoldsOneARandomOneIsShed() {
        var admission = Admission(perSource: 2, total: 4)
        var random = SeededGenerator(seed: 7)
        for raw in UInt64(1)...4 {
            #expect(admission.arrive(ConnectionID(raw), from: "s\(raw)", random: &random) == .admit)
        }
        var waiting: [UInt64] = [1, 2, 3, 4]
        var oldestShed = 0
        for raw in UInt64(5)..<200 {
            let decision = admission.arrive(ConnectionID(raw), from: "s\(raw)", random: &random)
            guard case .admitShedding(let victim) = decision, let index = waiting.firstIndex(of: victim.rawValue)
            else {
                Issue.record("\(decision) instead of shedding one that waits")
                return
            }
            if index == 0 { oldestShed += 1 }
            waiting.remove(at: index)
            waiting.append(raw)
            #expect(admission.count == 4)
        }
        // Not always the oldest: a flood of single connections cannot aim at the one closest to registering.
        #expect(oldestShed > 10 && oldestShed < 150, "the oldest was shed \(oldestShed) times in 195")
        #expect(admission.waiting(from: "s199") == 1)
    }

    @Test func sourcesAreAddressesAndIPv6Slash64s() throws {
        #expect(Admission.source(of: try SocketAddress(ipAddress: "192.0.2.7", port: 1)) == "192.0.2.7")
        let one = Admission.source(of: try SocketAddress(ipAddress: "2001:db8:1:2:aaaa::1", port: 1))
        let two = Admission.source(of: try SocketAddress(ipAddress: "2001:db8:1:2:bbbb::9", port: 2))
        let other = Admission.source(of: try SocketAddress(ipAddress: "2001:db8:1:3::1", port: 1))
        #expect(one == two && one == "2001:db8:1:2::/64")
        #expect(other != one)
        #expect(Admission.source(of: try SocketAddress(ipAddress: "::ffff:192.0.2.7", port: 1)) == "192.0.2.7")
    }

    @Test func hubAnswersPingWithItsTime() throws {
        var hub = HubHarness()
        let a = hub.join("a")
        hub.now += 5
        let actions = hub.send(
            PingPayload(sequence: 9, sentAt: 123).packet(PacketHeader(type: .ping)), from: a.connection)
        let reply = try PingPayload(tlv: try #require(actions.first?.packet).payload)
        #expect(actions.first?.type == .pingResponse)
        #expect(reply == PingPayload(sequence: 9, sentAt: 123, answeredAt: hub.now))
    }

    @Test func peerQueryFindsByNameAndById() throws {
        var hub = HubHarness()
        let a = hub.join("a")
        let b = hub.join("bee")
        for query in [PeerQuery(requestID: 5, name: "bee"), PeerQuery(requestID: 5, id: b.peer)] {
            let actions = hub.send(query.packet(PacketHeader(type: .peerQuery)), from: a.connection)
            let result = try PeerQueryResult(tlv: try #require(actions.first?.packet).payload)
            #expect(result.requestID == 5)
            #expect(result.peer?.id == b.peer)
        }
        let missing = hub.send(
            PeerQuery(requestID: 6, name: "nobody").packet(PacketHeader(type: .peerQuery)), from: a.connection)
        #expect(try PeerQueryResult(tlv: missing[0].packet!.payload).peer == nil)
    }

    @Test func credentialsUpdateReachesWatchersAndKeepsTheId() throws {
        var hub = HubHarness()
        let watcher = hub.join("w", flags: [.wantsUpdates])
        let a = hub.join("a")
        let actions = hub.send(
            Credentials(name: "a2", role: "receiver").packet(PacketHeader(type: .credentialsUpdate)), from: a.connection
        )
        #expect(Set(actions.map(\.connection)) == [watcher.connection, a.connection])
        let record = try PeerRecord(tlv: actions[0].packet!.payload)
        #expect(record.id == a.peer)
        #expect(record.name == "a2")
        #expect(record.role == "receiver")
        let clash = hub.send(Credentials(name: "w").packet(PacketHeader(type: .credentialsUpdate)), from: a.connection)
        #expect(clash.first?.error?.code == .nameInUse)
        // The old name is free again, the new one is taken.
        #expect(hub.register(Credentials(name: "a")).1.first?.type == .registered)
        #expect(hub.register(Credentials(name: "a2")).1.first?.error?.code == .nameInUse)
    }

    @Test func closeIsAPoliteGoodbye() {
        var hub = HubHarness()
        let watcher = hub.join("w", flags: [.wantsUpdates])
        let a = hub.join("a")
        let actions = hub.send(Packet(header: PacketHeader(type: .close)), from: a.connection)
        #expect(actions.map(\.connection) == [watcher.connection, a.connection])
        #expect(actions[0].type == .clientDisconnecting)
        #expect(actions[1].isClose)
        #expect(hub.core.disconnected(a.connection).isEmpty)
    }

    @Test func silentPeersAreDroppedAfterThreeHeartbeats() {
        var hub = HubHarness()
        let watcher = hub.join("w", flags: [.wantsUpdates])
        let silent = hub.join("silent")
        let busy = hub.join("busy")
        hub.now += 1_000_000
        let pings = hub.core.tick(now: hub.now)
        #expect(
            Set(pings.filter { $0.type == .ping }.map(\.connection)) == [
                watcher.connection, silent.connection, busy.connection,
            ])
        hub.now += 1_500_000
        _ = hub.send(Packet(header: PacketHeader(type: .pingResponse)), from: watcher.connection)
        hub.now += 1_500_000
        let actions = hub.core.tick(now: hub.now, busy: [busy.connection])
        #expect(actions.contains { $0.connection == silent.connection && $0.error?.code == .heartbeatTimeout })
        #expect(actions.contains(.close(silent.connection)))
        #expect(
            actions.contains {
                $0.connection == watcher.connection && $0.type == .clientDisconnecting
                    && $0.packet?.header.dataType == DisconnectReason.timedOut.rawValue
            })
        #expect(!actions.contains(.close(watcher.connection)))
        #expect(!actions.contains(.close(busy.connection)))
    }

    @Test func unregisteredConnectionsAreClosedAtTheDeadline() {
        var hub = HubHarness { $0.registrationTimeout = .seconds(5) }
        let id = hub.open()
        hub.now += 4_900_000
        #expect(!hub.core.tick(now: hub.now).contains(.close(id)))
        hub.now += 200_000
        let actions = hub.core.tick(now: hub.now)
        #expect(actions.contains { $0.error?.code == .registrationTimeout })
        #expect(actions.contains(.close(id)))
    }

    @Test func shutdownTellsEveryone() {
        var hub = HubHarness()
        let a = hub.join("a")
        let b = hub.join("b")
        let actions = hub.core.shutdown(reason: "bye")
        #expect(Set(actions.filter { $0.type == .hostExiting }.map(\.connection)) == [a.connection, b.connection])
        #expect(actions.filter(\.isClose).count == 2)
    }

    @Test func stalledDestinationIsDroppedAndItsSendersAreTold() {
        var hub = HubHarness()
        let sender = hub.join("sender")
        let stuck = hub.join("stuck")
        let actions = hub.core.stalled(stuck.connection, waiting: [sender.connection])
        #expect(
            actions.contains {
                $0.connection == sender.connection && $0.error?.code == .peerStalled && $0.error?.peerID == stuck.peer
            })
        #expect(actions.contains(.close(stuck.connection)))
        #expect(hub.core.peerCount == 1)
    }
}

@Suite struct HubGroupTests {
    @Test func groupPacketsGoToTheNamedPeersOnly() {
        var hub = HubHarness()
        let sender = hub.join("sender")
        let a = hub.join("a")
        let b = hub.join("b")
        _ = hub.join("c")
        #expect(
            hub.send(
                Recipients(ids: [a.peer, b.peer]).packet(PacketHeader(type: .recipients)), from: sender.connection
            ).isEmpty)
        let actions = hub.send(
            Packet(header: PacketHeader(type: .message, maskTo: .group), payload: ByteBuffer(string: "x")),
            from: sender.connection)
        #expect(actions.map(\.connection) == [a.connection, b.connection])
        #expect(actions.map { $0.packet?.header.idTo } == [a.peer, b.peer])
        #expect(actions.allSatisfy { $0.packet?.header.idFrom == sender.peer })
    }

    @Test func unknownGroupMembersAreReported() {
        var hub = HubHarness()
        let sender = hub.join("sender")
        let a = hub.join("a")
        let actions = hub.send(
            Recipients(ids: [a.peer, 99]).packet(PacketHeader(type: .recipients)), from: sender.connection)
        #expect(actions.count == 1)
        #expect(actions[0].error?.code == .unknownPeer)
        #expect(actions[0].error?.peerID == 99)
    }

    @Test func senderIsToldWhenAGroupMemberLeaves() {
        var hub = HubHarness()
        let sender = hub.join("sender")
        let a = hub.join("a")
        let b = hub.join("b")
        _ = hub.send(
            Recipients(ids: [a.peer, b.peer]).packet(PacketHeader(type: .recipients)), from: sender.connection)
        let left = hub.core.disconnected(a.connection)
        #expect(left.map(\.connection) == [sender.connection])
        #expect(left.first?.type == .clientDisconnecting)
        #expect(left.first?.packet?.header.idFrom == a.peer)
        let actions = hub.send(Packet(header: PacketHeader(type: .message, maskTo: .group)), from: sender.connection)
        #expect(actions.map(\.connection) == [b.connection])
    }
}
