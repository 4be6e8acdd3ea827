import Logging
import NIOCore
import TCPIPCore
import TCPIPHub
import TCPIPWire
import Testing

/// The role `store` belongs to the hub's own (local) connection: no peer can pose as the store, so receivers may
/// believe who queued a file the store delivers.
@Suite struct HubStoreRoleTests {
    static let token = Token("s3cret")

    @Test func onlyTheLocalConnectionMayRegisterOrTakeTheRoleStore() throws {
        var hub = HubHarness { $0.token = Self.token }
        let (stranger, refused) = hub.register(Credentials(name: "store", role: "store", token: "s3cret"))
        #expect(refused.first?.error?.code == .invalidCredentials)
        #expect(refused.last?.isClose == true)
        #expect(!hub.core.isOpen(stranger))

        var open = HubHarness()
        let peer = open.join("mallory")
        let update = Credentials(role: "store").packet(PacketHeader(type: .credentialsUpdate, maskTo: .hub))
        let answer = open.send(update, from: peer.connection)
        #expect(answer.first?.error?.code == .invalidCredentials, "a registered peer cannot switch to it either")
        #expect(open.core.isOpen(peer.connection))

        // The hub's own connection needs no token.
        let local = ConnectionID(99)
        _ = hub.core.connected(local, address: "local", now: hub.now, local: true)
        let registered = hub.core.received(
            Credentials(name: "store", role: "store").packet(PacketHeader(type: .myCredentials)), from: local,
            now: hub.now)
        #expect(registered.first?.type == .registered, "\(registered)")
    }

    @Test func aPeerQueryForTheStoreFindsTheHubsOwnConnectionOnly() throws {
        var hub = HubHarness()
        let asker = hub.join("cron")
        let query = PeerQuery(requestID: 7, store: true).packet(PacketHeader(type: .peerQuery, maskTo: .hub))
        var answer = try PeerQueryResult(tlv: hub.send(query, from: asker.connection)[0].packet!.payload)
        #expect(answer.requestID == 7 && answer.peer == nil, "no store yet")

        let local = ConnectionID(99)
        _ = hub.core.connected(local, address: "local", now: hub.now, local: true)
        _ = hub.core.received(
            Credentials(name: "store", role: "store", flags: [.allowRename, .wantsUpdates]).packet(
                PacketHeader(type: .myCredentials)), from: local, now: hub.now)
        // A second local store connection that does not watch the roster (a courier) is not the one queries find.
        let courier = ConnectionID(100)
        _ = hub.core.connected(courier, address: "local", now: hub.now, local: true)
        _ = hub.core.received(
            Credentials(name: "store", role: "store", flags: [.allowRename]).packet(
                PacketHeader(type: .myCredentials)), from: courier, now: hub.now)
        answer = try PeerQueryResult(tlv: hub.send(query, from: asker.connection)[0].packet!.payload)
        #expect(answer.peer?.id == hub.core.peerID(of: local))
        #expect(answer.peer?.role == "store")

        _ = hub.core.disconnected(local)
        answer = try PeerQueryResult(tlv: hub.send(query, from: asker.connection)[0].packet!.payload)
        #expect(answer.peer == nil, "gone with its connection")
    }
}
