import NIOCore
import TCPIPTestSupport
import TCPIPWire
import Testing

@Suite struct FrameParserTests {
    static let packets: [Packet] =
        GoldenVectors.all.map(\.packet) + [
            Packet(
                header: PacketHeader(type: .message, maskTo: .client, idTo: 2),
                payload: ByteBuffer(repeating: 0xAB, count: 70_000)),
            Packet(header: PacketHeader(type: .close)),
        ]

    static var stream: ByteBuffer {
        var all = ByteBuffer()
        for packet in packets { all.writeImmutableBuffer(packet.encoded()) }
        return all
    }

    /// Feeds `stream` in pieces of the given sizes and collects every packet.
    static func parse(_ stream: ByteBuffer, pieces: some Sequence<Int>, parser: FrameParser = FrameParser()) throws
        -> [Packet]
    {
        var input = stream
        var pending = ByteBuffer()
        var out: [Packet] = []
        var sizes = pieces.makeIterator()
        while input.readableBytes > 0 {
            let size = min(sizes.next() ?? input.readableBytes, input.readableBytes)
            var piece = input.readSlice(length: size)!
            pending.writeBuffer(&piece)
            while let packet = try parser.nextPacket(from: &pending) { out.append(packet) }
        }
        #expect(pending.readableBytes == 0)
        return out
    }

    @Test func oneByteAtATime() throws {
        #expect(try Self.parse(Self.stream, pieces: repeatElement(1, count: Self.stream.readableBytes)) == Self.packets)
    }

    @Test(arguments: [1, 2, 3, 7, 17, 18, 19, 1000, 65536])
    func fixedChunkSizes(size: Int) throws {
        #expect(
            try Self.parse(Self.stream, pieces: repeatElement(size, count: Self.stream.readableBytes)) == Self.packets)
    }

    @Test(arguments: 0..<20)
    func randomSplits(seed: Int) throws {
        var generator = SeededGenerator(seed: UInt64(seed) + 1)
        let sizes = (0..<Self.stream.readableBytes).map { _ in Int.random(in: 1...300, using: &generator) }
        #expect(try Self.parse(Self.stream, pieces: sizes) == Self.packets)
    }

    @Test func manyFramesInOneRead() throws {
        #expect(try Self.parse(Self.stream, pieces: [Self.stream.readableBytes]) == Self.packets)
    }

    @Test func incompleteFrameConsumesNothing() throws {
        var partial = Self.stream.getSlice(at: 0, length: 10)!
        #expect(try FrameParser().nextPacket(from: &partial) == nil)
        #expect(partial.readableBytes == 10)
    }

    @Test(arguments: ["ffffffff", "7fffffff", "00100013"])
    func oversizedLengthIsRefusedFromThePrefixAlone(prefix: String) throws {
        // Only the four length bytes are there: the parser must refuse without waiting for (or allocating) the body.
        var buffer = Hex.buffer(prefix)
        #expect(throws: WireError.self) { try FrameParser().nextPacket(from: &buffer) }
        do {
            _ = try FrameParser().nextPacket(from: &buffer)
        } catch let error as WireError {
            #expect(error.isFrameTooLarge)
        }
    }

    @Test func largestAllowedFrameIsAccepted() throws {
        let payload = ByteBuffer(repeating: 1, count: FrameParser.defaultMaxPayloadSize)
        var buffer = Packet(header: PacketHeader(type: .message), payload: payload).encoded()
        let packet = try #require(try FrameParser().nextPacket(from: &buffer))
        #expect(packet.payload.readableBytes == FrameParser.defaultMaxPayloadSize)
        var oneMore = Packet(
            header: PacketHeader(type: .message),
            payload: ByteBuffer(repeating: 1, count: FrameParser.defaultMaxPayloadSize + 1)
        ).encoded()
        #expect(throws: WireError.self) { try FrameParser().nextPacket(from: &oneMore) }
    }

    @Test func configuredLimitApplies() throws {
        let parser = FrameParser(maxFrameSize: 100)
        var small = Packet(header: PacketHeader(type: .message), payload: ByteBuffer(repeating: 1, count: 82)).encoded()
        #expect(try parser.nextPacket(from: &small) != nil)
        var big = Packet(header: PacketHeader(type: .message), payload: ByteBuffer(repeating: 1, count: 83)).encoded()
        #expect(throws: WireError.self) { try parser.nextPacket(from: &big) }
    }

    @Test(arguments: [
        ("length shorter than the header", "0000000d 0001 0000 00 01 00000000 00000000"),
        ("unknown maskTo", "0000000e 0001 0000 04 01 00000000 00000000"),
        ("unsupported level", "0000000e 0001 0000 00 02 00000000 00000000"),
        ("level zero", "0000000e 0001 0000 00 00 00000000 00000000"),
    ])
    func badHeadersThrow(_ name: String, hex: String) throws {
        var buffer = Hex.buffer(hex)
        #expect(throws: WireError.self, "\(name)") { try FrameParser().nextPacket(from: &buffer) }
    }

    @Test(arguments: [
        ("field longer than the payload", "01 0010 616263"),
        ("cut-off field header", "01 00"),
        ("invalid UTF-8 name", "01 0002 c328"),
        ("integer wider than 8 bytes", "07 0009 000000000000000001"),
        ("flags wider than 32 bits", "07 0008 0000000100000000"),
    ])
    func badTLVPayloadsThrow(_ name: String, hex: String) {
        #expect(throws: WireError.self, "\(name)") { try Credentials(tlv: Hex.buffer(hex)) }
    }

    @Test func peerRecordWithoutIdIsRefused() {
        var writer = TLVWriter()
        writer.write(2, string: "nameless")
        #expect(throws: WireError.self) { try PeerRecord(tlv: writer.buffer) }
    }

    @Test(arguments: 0..<50)
    func garbageNeverCrashes(seed: Int) {
        var generator = SeededGenerator(seed: UInt64(seed) * 7919 + 3)
        let bytes = (0..<Int.random(in: 0...4096, using: &generator)).map { _ in
            UInt8.random(in: 0...255, using: &generator)
        }
        var buffer = ByteBuffer(bytes: bytes)
        let parser = FrameParser(maxFrameSize: 2048)
        do {
            while let packet = try parser.nextPacket(from: &buffer) {
                _ = try? Credentials(tlv: packet.payload)
                _ = try? PeerRecord(tlv: packet.payload)
                _ = try? Registered(tlv: packet.payload)
            }
        } catch {
            #expect(error is WireError)
        }
    }
}
