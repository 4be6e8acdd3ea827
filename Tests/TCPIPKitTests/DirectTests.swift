import Logging
import NIOCore
import NIOEmbedded
import TCPIPCore
import TCPIPReceiver
import TCPIPTestSupport
import TCPIPWire
import Testing

@testable import TCPIPHub

/// Introductions at the hub, and the receiver's direct listener on an EmbeddedChannel.
@Suite struct DirectTests {
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    @Test func theHubIntroducesWithOneTicketForBothAndHidesHintsFromEveryoneElse() throws {
        var hub = HubHarness()
        let bob = hub.join("bob")
        let alice = hub.join("alice")
        // bob listens on every address at port 7000 and names one more address; the hub puts the one it sees first.
        #expect(
            hub.send(
                DirectHints(port: 7000, hints: ["192.0.2.9:7000"]).packet(
                    PacketHeader(type: .directHints, maskTo: .hub)), from: bob.connection
            ).isEmpty)
        let actions = hub.send(
            IntroductionRequest(requestID: 5, peer: bob.peer).packet(
                PacketHeader(type: .introductionRequest, maskTo: .hub)), from: alice.connection)
        let answer = try #require(actions.first { $0.connection == alice.connection }?.packet)
        let notice = try #require(actions.first { $0.connection == bob.connection }?.packet)
        let introduction = try Introduction(tlv: answer.payload)
        #expect(introduction.requestID == 5)
        #expect(introduction.peer.id == bob.peer)
        #expect(introduction.hints == ["127.0.0.1:7000", "192.0.2.9:7000"])
        let told = try IntroductionNotice(tlv: notice.payload)
        #expect(notice.header.type == .introductionNotice && notice.header.idFrom == alice.peer)
        #expect(told.peer.id == alice.peer && told.ticket == introduction.ticket)
        #expect(introduction.ticket?.count == 32)
        // A second introduction is a new ticket.
        let again = hub.send(
            IntroductionRequest(requestID: 6, peer: bob.peer).packet(
                PacketHeader(type: .introductionRequest, maskTo: .hub)), from: alice.connection)
        let second = try Introduction(
            tlv: try #require(again.first { $0.connection == alice.connection }?.packet).payload)
        #expect(second.ticket != introduction.ticket)
        // A peer without hints: an introduction with neither ticket nor hints, and nothing to the peer.
        let plain = hub.send(
            IntroductionRequest(requestID: 7, peer: alice.peer).packet(
                PacketHeader(type: .introductionRequest, maskTo: .hub)), from: bob.connection)
        #expect(plain.count == 1)
        let none = try Introduction(tlv: try #require(plain.first?.packet).payload)
        #expect(none.ticket == nil && none.hints.isEmpty)
        // Nobody else learns bob's hints: a lookup's record carries none.
        let record = String(
            decoding: try #require(hub.core.record(of: bob.peer)).encoded().readableBytesView, as: UTF8.self)
        #expect(!record.contains("7000"))
        // An unknown peer is an error, not silence; a forged Introduction from a client is never relayed.
        let unknown = hub.send(
            IntroductionRequest(requestID: 8, peer: 999).packet(PacketHeader(type: .introductionRequest, maskTo: .hub)),
            from: alice.connection)
        #expect(unknown.first?.packet?.header.type == .error)
        let forged = hub.send(
            IntroductionNotice(ticket: Array(repeating: 1, count: 32), peer: PeerRecord(id: 1, name: "x")).packet(
                PacketHeader(type: .introductionNotice, maskTo: .client, idTo: bob.peer)), from: alice.connection)
        #expect(!forged.contains { $0.connection == bob.connection && $0.packet?.header.type == .introductionNotice })
        // Hints that are not IP literals are a protocol violation.
        var writer = TLVWriter()
        writer.write(2, string: "files.example.com:7000")
        let bad = hub.send(
            Packet(header: PacketHeader(type: .directHints, maskTo: .hub), payload: writer.buffer), from: bob.connection
        )
        #expect(bad.contains { $0.packet?.header.type == .error })
    }

    /// A ticket issued to one key does not admit a connection that proved another.
    @Test func aTicketAdmitsOnlyTheKeyItWasIssuedTo() throws {
        let listener = DirectListener(unboundWith: nil, logger: Self.quiet)
        listener.reset(me: 3, wake: {})
        let key = NodeID(bytes: Array(repeating: 1, count: 32))!
        let other = NodeID(bytes: Array(repeating: 2, count: 32))!
        let ticket = Array(repeating: UInt8(5), count: 32)
        for (proven, admitted) in [(other, false), (key, true)] {
            listener.expect(
                IntroductionNotice(ticket: ticket, peer: PeerRecord(id: 7, name: "alice", key: key.bytes)))
            let channel = EmbeddedChannel()
            try listener.addHandlers(to: channel)
            channel.pipeline.fireChannelActive()
            channel.pipeline.fireUserInboundEventTriggered(PeerAuthenticated(id: proven))
            try channel.writeInbound(
                DirectHello(ticket: ticket, from: 7, to: 3).packet(PacketHeader(type: .directHello, maskTo: .client))
                    .encoded())
            var reply = try #require(try channel.readOutbound(as: ByteBuffer.self))
            let packet = try #require(try FrameParser().nextPacket(from: &reply))
            #expect(packet.header.type == (admitted ? .directWelcome : .error), "proven \(proven)")
            #expect((listener.peer(id: 7) != nil) == admitted)
            _ = try? channel.finish()
        }
    }

    /// An admitted link for peer 7 on `listener` (which must expect `ticket`).
    static func admit(_ listener: DirectListener, ticket: [UInt8]) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try listener.addHandlers(to: channel)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(
            DirectHello(ticket: ticket, from: 7, to: 3).packet(PacketHeader(type: .directHello, maskTo: .client))
                .encoded())
        return channel
    }

    static func reply(_ channel: EmbeddedChannel) throws -> Packet? {
        guard var bytes = try channel.readOutbound(as: ByteBuffer.self) else { return nil }
        return try FrameParser().nextPacket(from: &bytes)
    }

    /// The same sender admitted twice: the first link is closed (outside the listener's lock: its handler runs at once
    /// and takes it), the second serves.
    @Test func aSecondLinkFromTheSameSenderReplacesTheFirst() throws {
        let listener = DirectListener(unboundWith: nil, logger: Self.quiet)
        listener.reset(me: 3, wake: {})
        let peer = PeerRecord(id: 7, name: "alice")
        listener.expect(IntroductionNotice(ticket: Array(repeating: 1, count: 32), peer: peer))
        listener.expect(IntroductionNotice(ticket: Array(repeating: 2, count: 32), peer: peer))
        let first = try Self.admit(listener, ticket: Array(repeating: 1, count: 32))
        #expect(try Self.reply(first)?.header.type == .directWelcome)
        let second = try Self.admit(listener, ticket: Array(repeating: 2, count: 32))
        #expect(try Self.reply(second)?.header.type == .directWelcome)
        #expect(!first.isActive && second.isActive)
        #expect(listener.admittedCount == 2 && listener.peer(id: 7) != nil)
        _ = try? second.finish()
    }

    /// A sender whose hello beats its ticket (the hub sends the notice and the Introduction together) waits for it.
    @Test func aHelloWaitsForATicketStillOnItsWay() throws {
        let listener = DirectListener(unboundWith: nil, logger: Self.quiet)
        listener.reset(me: 3, wake: {})
        let ticket = Array(repeating: UInt8(4), count: 32)
        let channel = try Self.admit(listener, ticket: ticket)
        #expect(try Self.reply(channel) == nil)
        listener.expect(IntroductionNotice(ticket: ticket, peer: PeerRecord(id: 7, name: "alice")))
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(50))
        #expect(try Self.reply(channel)?.header.type == .directWelcome)
        // A ticket that never comes: refused once the wait is over.
        let stranger = try Self.admit(listener, ticket: Array(repeating: 9, count: 32))
        stranger.embeddedEventLoop.advanceTime(by: .seconds(3))
        #expect(try Self.reply(stranger)?.header.type == .error)
        _ = try? channel.finish()
    }

    /// A sender that does not read its answers loses its link; the answers go through the hub instead of waiting.
    @Test func answersToASenderThatDoesNotReadGoThroughTheHub() throws {
        let listener = DirectListener(unboundWith: nil, logger: Self.quiet)
        listener.reset(me: 3, wake: {})
        let ticket = Array(repeating: UInt8(6), count: 32)
        listener.expect(IntroductionNotice(ticket: ticket, peer: PeerRecord(id: 7, name: "alice")))
        let channel = try Self.admit(listener, ticket: ticket)
        #expect(try Self.reply(channel)?.header.type == .directWelcome)
        let receipt = FileReceipt(transferID: 1, status: .stored).packet(to: 7)
        #expect(listener.send([receipt]).isEmpty)
        channel.embeddedEventLoop.run()
        #expect(try Self.reply(channel)?.header.type == .doneReceivingFile)
        channel.isWritable = false
        #expect(listener.send([receipt]).count == 1)
        #expect(listener.peer(id: 7) == nil)
        _ = try? channel.finish()
    }
}
