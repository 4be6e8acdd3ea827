import Logging
import NIOCore
import NIOEmbedded
import TCPIPWire
import Testing

@testable import TCPIPHub

/// The router's backpressure, on embedded channels whose writability the test sets.
@Suite struct HubRouterTests {
    final class Hub {
        let loop = EmbeddedEventLoop()
        let router: HubRouter

        init() {
            let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
            router = HubRouter(
                core: HubCore(configuration: HubConfiguration(), logger: logger), loop: loop, logger: logger)
        }

        /// A connection that has registered as `name`; returns its channel, its handler and its peer id.
        func register(_ name: String, flags: RegistrationFlags = []) throws -> (
            EmbeddedChannel, HubConnectionHandler, UInt32
        ) {
            let handler = HubConnectionHandler(router: router, loop: loop)
            let channel = EmbeddedChannel(loop: loop)
            try channel.pipeline.syncOperations.addHandler(handler)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            try channel.writeInbound(
                Credentials(name: name, flags: flags).packet(PacketHeader(type: .myCredentials, maskTo: .hub)).encoded()
            )
            var id: UInt32 = 0
            for packet in try Self.written(channel) where packet.header.type == .registered {
                id = try Registered(tlv: packet.payload).peer.id
            }
            return (channel, handler, id)
        }

        /// The packets the hub wrote to `channel` so far, once the tasks between the connections and the router ran.
        static func written(_ channel: EmbeddedChannel) throws -> [Packet] {
            channel.embeddedEventLoop.run()
            var bytes = ByteBuffer()
            while var piece = try channel.readOutbound(as: ByteBuffer.self) { bytes.writeBuffer(&piece) }
            var packets: [Packet] = []
            while let packet = try FrameParser().nextPacket(from: &bytes) { packets.append(packet) }
            return packets
        }
    }

    @Test func aWatcherThatDoesNotReadNeverHoldsBackAPeerThatJoins() throws {
        let hub = Hub()
        let (watcher, watcherHandler, watcherID) = try hub.register("watcher", flags: [.wantsUpdates])
        watcher.isWritable = false
        watcher.pipeline.fireChannelWritabilityChanged()
        // The hub tells the watcher about the newcomer; that notice must not stop the newcomer's reads.
        let (newcomer, newcomerHandler, _) = try hub.register("newcomer")
        #expect(hub.router.mayRead(newcomerHandler.id))
        #expect(try Hub.written(watcher).map(\.header.type) == [.clientData])
        // Data the newcomer relays to the full watcher does hold it back.
        try newcomer.writeInbound(
            Packet(
                header: PacketHeader(type: .message, dataType: 3, maskTo: .client, idTo: watcherID),
                payload: ByteBuffer(bytes: [0, 0, 0, 1, 65])
            ).encoded())
        hub.loop.run()
        #expect(!hub.router.mayRead(newcomerHandler.id))
        // Until the watcher drains.
        watcher.isWritable = true
        watcher.pipeline.fireChannelWritabilityChanged()
        hub.loop.run()
        #expect(hub.router.mayRead(newcomerHandler.id))
        _ = watcherHandler
        _ = try? watcher.finish()
        _ = try? newcomer.finish()
    }

    typealias C = ConnectionID

    @Test func aSourceWaitsForEveryDestinationItFilledAndOnlyThose() {
        var pressure = HubBackpressure()
        let (a, b, c, source) = (C(1), C(2), C(3), C(9))
        pressure.wrote(relayed: true, from: source, to: a, writable: false)
        pressure.wrote(relayed: true, from: source, to: b, writable: false)
        pressure.wrote(relayed: true, from: source, to: c, writable: true)
        #expect(!pressure.mayRead(source))
        #expect(pressure.held == [source])
        #expect(pressure.writabilityChanged(a, writable: true, now: .now()) == [])
        #expect(!pressure.mayRead(source))
        #expect(pressure.writabilityChanged(b, writable: true, now: .now()) == [source])
        #expect(pressure.mayRead(source))
        #expect(pressure.held.isEmpty)
    }

    @Test func theHubsOwnNoticesHoldNobodyBack() {
        var pressure = HubBackpressure()
        pressure.wrote(relayed: false, from: C(9), to: C(1), writable: false)
        pressure.wrote(relayed: true, from: nil, to: C(1), writable: false)
        #expect(pressure.mayRead(C(9)))
        #expect(pressure.held.isEmpty)
    }

    @Test func aDestinationThatGoesAwayReleasesItsWaitersAndAStalledOneIsReported() {
        var pressure = HubBackpressure()
        let start = NIODeadline.now()
        _ = pressure.writabilityChanged(C(1), writable: false, now: start)
        pressure.wrote(relayed: true, from: C(8), to: C(1), writable: false)
        pressure.wrote(relayed: true, from: C(9), to: C(1), writable: false)
        #expect(pressure.stalled(since: start).isEmpty)
        let stalled = pressure.stalled(since: start + .seconds(1))
        #expect(stalled.map(\.destination) == [C(1)])
        #expect(stalled.first?.waiting == [C(8), C(9)])
        #expect(pressure.removed(C(1)) == [C(8), C(9)])
        #expect(pressure.mayRead(C(8)) && pressure.mayRead(C(9)))
        #expect(pressure.stalled(since: start + .seconds(1)).isEmpty)
        // A source that goes away stops waiting.
        pressure.wrote(relayed: true, from: C(8), to: C(2), writable: false)
        #expect(pressure.removed(C(8)) == [])
        #expect(pressure.writabilityChanged(C(2), writable: true, now: .now()) == [])
    }

    // MARK: the frame limit before registration

    /// A connection as the hub's server sets it up (decoder, encoder, handler), not yet registered.
    static func unregistered(_ hub: Hub) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(loop: hub.loop)
        try channel.pipeline.syncOperations.addHandler(HubConnectionHandler(router: hub.router, loop: hub.loop))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        #expect(try Hub.written(channel).map(\.header.type) == [.requestCredentials])
        return channel
    }

    static let largestCredentials = Credentials(
        name: String(repeating: "n", count: 255), host: String(repeating: "h", count: 255),
        user: String(repeating: "u", count: 255), role: String(repeating: "r", count: 64),
        version: String(repeating: "v", count: 64), token: String(repeating: "t", count: 4096),
        flags: RegistrationFlags(rawValue: 0x8000_0000))

    @Test func beforeRegisteringAFrameLargerThanTheLargestMyCredentialsIsRefusedFromItsLength() throws {
        let hub = Hub()
        let channel = try Self.unregistered(hub)
        // Only the length: the hub must not wait for (or make room for) the body it announces.
        var length = ByteBuffer()
        length.writeInteger(UInt32(Credentials.maxFrameSize - PacketHeader.lengthPrefixSize + 1))
        try channel.writeInbound(length)
        let answer = try Hub.written(channel)
        #expect(answer.map(\.header.type) == [.error])
        #expect(try ErrorPayload(tlv: answer[0].payload).code == .frameTooLarge)
        #expect(!channel.isActive)
    }

    @Test func theLargestLegalMyCredentialsRegistersAndAFullSizeFrameRightBehindItIsRelayed() throws {
        let hub = Hub()
        let (other, _, otherID) = try hub.register("other")
        let channel = try Self.unregistered(hub)
        var bytes = Self.largestCredentials.packet(PacketHeader(type: .myCredentials, maskTo: .hub)).encoded()
        #expect(bytes.readableBytes == Credentials.maxFrameSize)
        // In the same read: a frame of the hub's full size, legal only once registered (a pipelined client's).
        let big = ByteBuffer(repeating: 7, count: FrameParser.defaultMaxPayloadSize)
        var message = Packet(header: PacketHeader(type: .message, maskTo: .client, idTo: otherID), payload: big)
            .encoded()
        bytes.writeBuffer(&message)
        try channel.writeInbound(bytes)
        #expect(try Hub.written(channel).map(\.header.type) == [.registered])
        let relayed = try Hub.written(other)
        #expect(relayed.map(\.header.type) == [.message])
        #expect(relayed.last?.payload.readableBytes == FrameParser.defaultMaxPayloadSize)
        #expect(channel.isActive)
    }

    @Test func packetsReadBeforeAConnectionErrorAreStillCarriedOut() throws {
        let hub = Hub()
        let (other, _, otherID) = try hub.register("other")
        let channel = try Self.unregistered(hub)
        // MyCredentials and a message in one read; the connection then fails (a reset, a TLS peer's FIN without
        // close_notify) before the router has registered it: the message still reaches its recipient.
        var bytes = Credentials(name: "leaving").packet(PacketHeader(type: .myCredentials, maskTo: .hub)).encoded()
        var message = Packet(
            header: PacketHeader(type: .message, maskTo: .client, idTo: otherID), payload: ByteBuffer(string: "bye")
        ).encoded()
        bytes.writeBuffer(&message)
        try channel.writeInbound(bytes)
        channel.pipeline.fireErrorCaught(ChannelError.ioOnClosedChannel)
        let relayed = try Hub.written(other)
        #expect(relayed.map(\.header.type).contains(.message))
        #expect(relayed.last?.payload == ByteBuffer(string: "bye"))
        _ = try? channel.finish()
    }

    @Test func aConnectionThatClosesItsInputBeforeRegisteringGetsNoLargerFrame() throws {
        let hub = Hub()
        let (other, _, otherID) = try hub.register("other")
        let channel = try Self.unregistered(hub)
        // Refused credentials (a number as the name), then a frame legal only once registered, then FIN: the frame is
        // cut with the pre-registration limit, refused, and never reaches anyone.
        var bytes = Credentials(name: "12").packet(PacketHeader(type: .myCredentials, maskTo: .hub)).encoded()
        var big = Packet(
            header: PacketHeader(type: .message, maskTo: .client, idTo: otherID),
            payload: ByteBuffer(repeating: 1, count: 64 << 10)
        ).encoded()
        bytes.writeBuffer(&big)
        try channel.writeInbound(bytes)
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        let answer = try Hub.written(channel)
        #expect(answer.map(\.header.type).contains(.error))
        #expect(!channel.isActive)
        #expect(try Hub.written(other).allSatisfy { $0.header.type != .message })
    }

    @Test func credentialsOneByteOverTheLargestAreRefused() throws {
        var credentials = Self.largestCredentials
        credentials.token = String(repeating: "t", count: 4092)
        // 4 bytes less of token and an unknown field of 5 bytes: one byte over, though every field is within limits.
        var writer = TLVWriter()
        credentials.write(to: &writer)
        writer.write(99, bytes: ByteBuffer(bytes: [1, 2]))
        #expect(writer.buffer.readableBytes == Credentials.maxPayloadSize + 1)
        #expect(throws: WireError.self) { try Credentials(tlv: writer.buffer) }
    }

    @Test(arguments: [1, 7, 64, 4096])
    func framesCutAtAnyPointArriveWholeAndNothingIsHeldAfterwards(chunk: Int) throws {
        let hub = Hub()
        let (other, _, otherID) = try hub.register("other")
        let channel = EmbeddedChannel(loop: hub.loop)
        let handler = HubConnectionHandler(router: hub.router, loop: hub.loop)
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        var bytes = Credentials(name: "cut").packet(PacketHeader(type: .myCredentials, maskTo: .hub)).encoded()
        let payload = ByteBuffer(bytes: (0..<3000).map { UInt8($0 % 251) })
        var message = Packet(header: PacketHeader(type: .message, maskTo: .client, idTo: otherID), payload: payload)
            .encoded()
        bytes.writeBuffer(&message)
        while bytes.readableBytes > 0 {
            let piece = bytes.readSlice(length: min(chunk, bytes.readableBytes))!
            try channel.writeInbound(piece)
        }
        hub.loop.run()
        // An idle connection holds no buffer.
        #expect(handler.bufferedBytes == 0)
        #expect(try Hub.written(channel).map(\.header.type) == [.requestCredentials, .registered])
        let relayed = try Hub.written(other)
        #expect(relayed.map(\.header.type) == [.message])
        #expect(relayed.first?.payload == payload)
    }
}
