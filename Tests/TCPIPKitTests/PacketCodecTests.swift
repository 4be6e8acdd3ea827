import NIOCore
import NIOEmbedded
import NIOTestUtils
import TCPIPCore
import TCPIPWire
import Testing

@Suite struct PacketCodecTests {
    static let packets: [Packet] = [
        Packet(header: PacketHeader(type: .ping, maskTo: .hub), payload: PingPayload(sequence: 1, sentAt: 2).encoded()),
        Packet(
            header: PacketHeader(type: .message, maskTo: .client, idTo: 3),
            payload: ByteBuffer(repeating: 7, count: 3000)),
        Packet(header: PacketHeader(type: .close)),
    ]

    @Test func decoderHandlesEveryChunking() throws {
        // NIO's verifier feeds each input whole, byte by byte, in random splits and several in one read.
        let pairs = Self.packets.map { ($0.encoded(), [$0]) }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { PacketDecoder() }
    }

    @Test func batcherHandsOnEachReadsPacketsTogetherAndThemBeforeAnError() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([
            ByteToMessageHandler(PacketDecoder(maxFrameSize: 1024)), PacketBatcher(),
        ])
        // All three packets and half of a fourth in one read: one array of three.
        var bytes = ByteBuffer()
        for packet in Self.packets.prefix(1) + Self.packets.suffix(2) where packet.payload.readableBytes < 1000 {
            bytes.writeImmutableBuffer(packet.encoded())
        }
        let fourth = Self.packets[0].encoded()
        bytes.writeImmutableBuffer(fourth.getSlice(at: 0, length: 10)!)
        try channel.writeInbound(bytes)
        #expect(try channel.readInbound(as: [Packet].self)?.map(\.header.type) == [.ping, .close])
        // The rest of the fourth, then a frame too large: the fourth arrives, then the error.
        var rest = fourth.getSlice(at: 10, length: fourth.readableBytes - 10)!
        rest.writeBytes([0, 0, 0x10, 0])
        #expect(throws: WireError.self) { try channel.writeInbound(rest) }
        #expect(try channel.readInbound(as: [Packet].self)?.map(\.header.type) == [.ping])
        _ = try? channel.finish()
    }

    @Test func decoderRefusesAnOversizedFrameFromItsPrefix() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(PacketDecoder(maxFrameSize: 1024)))
        #expect(throws: WireError.self) { try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0x10, 0])) }
        _ = try? channel.finish()
    }

    /// What `PacketSender` writes: a batch framed into shared buffers of at most 64 KiB (small payloads copied in,
    /// large ones as they are), which decodes to the same packets in the same order.
    @Test func aBatchIsFramedIntoFewBuffersAndDecodesToTheSamePackets() throws {
        let channel = EmbeddedChannel(handler: PacketEncoder())
        let context = try channel.pipeline.syncOperations.context(handlerType: PacketEncoder.self)
        let lines = (0..<5000).map {
            Packet(header: PacketHeader(type: .message, maskTo: .group), payload: ByteBuffer(string: "line \($0)"))
        }
        let batch = lines.prefix(2500) + Self.packets + lines.suffix(2500) + [Self.packets[1]]
        let written = channel.eventLoop.makePromise(of: Void.self)
        PacketEncoder.write(Array(batch), to: context, promise: written)
        #expect(throws: Never.self) { try written.futureResult.wait() }
        var bytes = ByteBuffer()
        var buffers: [ByteBuffer] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            buffers.append(buffer)
            bytes.writeImmutableBuffer(buffer)
        }
        #expect(buffers.allSatisfy { $0.readableBytes <= 64 << 10 })
        #expect(buffers.count < 20, "shared buffers, not one or two per packet: \(buffers.count)")
        #expect(buffers.contains { $0 == Self.packets[1].payload }, "a large payload is not copied")
        let decoder = EmbeddedChannel()
        try decoder.pipeline.syncOperations.addHandlers([
            ByteToMessageHandler(PacketDecoder(maxFrameSize: 1 << 20)), PacketBatcher(),
        ])
        try decoder.writeInbound(bytes)
        var decoded: [Packet] = []
        while let some = try decoder.readInbound(as: [Packet].self) { decoded += some }
        #expect(decoded == Array(batch))
        _ = try? decoder.finish()
        _ = try? channel.finish()
    }

    @Test func encoderWritesHeaderAndPayloadWithoutCopyingLargePayloads() throws {
        let channel = EmbeddedChannel(handler: PacketEncoder())
        let big = Self.packets[1]
        try channel.writeOutbound(big)
        let header = try #require(try channel.readOutbound(as: ByteBuffer.self))
        let payload = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(header.readableBytes == PacketHeader.size)
        #expect(payload == big.payload)
        var joined = header
        joined.writeImmutableBuffer(payload)
        #expect(joined == big.encoded())

        try channel.writeOutbound(Self.packets[0])
        #expect(try channel.readOutbound(as: ByteBuffer.self) == Self.packets[0].encoded())
        _ = try channel.finish()
    }
}
