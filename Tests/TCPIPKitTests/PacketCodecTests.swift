import NIOCore
import NIOEmbedded
import NIOTestUtils
import TCPIPKit
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

    @Test func decoderRefusesAnOversizedFrameFromItsPrefix() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(PacketDecoder(maxFrameSize: 1024)))
        #expect(throws: WireError.self) { try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0x10, 0])) }
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
