import NIOCore
import TCPIPClient
import TCPIPTestSupport
import TCPIPWire
import Testing

@Suite struct MessageAssemblerTests {
    static let partSize = MessageChunking.maxPartBytes(maxFrameSize: FrameParser.defaultMaxFrameSize)

    static func randomBytes(_ count: Int, seed: UInt64) -> ByteBuffer {
        var generator = SeededGenerator(seed: seed)
        return ByteBuffer(bytes: generator.bytes(count))
    }

    /// Parts go through real packets and the frame parser, as they would on the wire.
    static func roundTrip(_ parts: [MessagePart]) throws -> [MessagePart] {
        try parts.map { part in
            var wire = part.packet(PacketHeader(type: .message, maskTo: .group)).encoded()
            return try MessagePart(try #require(try FrameParser().nextPacket(from: &wire)))
        }
    }

    @Test(arguments: [0, 1, partSize - 1, partSize, partSize + 1, 3 * partSize + 17, 5 << 20])
    func chunkingAndReassemblyKeepEveryByte(size: Int) throws {
        let message = Self.randomBytes(size, seed: UInt64(size) + 1)
        let parts = try Self.roundTrip(MessageChunking.parts(of: message, messageID: 7, partSize: Self.partSize))
        #expect(parts.count == max(1, (size + Self.partSize - 1) / Self.partSize))
        #expect(parts.first?.flags.contains(.start) == true)
        #expect(parts.last?.flags.contains(.end) == true)
        #expect(parts.allSatisfy { $0.bytes.readableBytes <= Self.partSize })
        var assembler = MessageAssembler(maxMessageSize: 64 << 20)
        var result: AssembledMessage?
        for (index, part) in parts.enumerated() {
            switch assembler.add(part, from: 3) {
            case .incomplete: #expect(index < parts.count - 1)
            case .complete(let message): result = message
            default: Issue.record("unexpected outcome")
            }
        }
        let assembled = try #require(result)
        #expect(assembled.bytes == message)
        #expect(assembled.messageID == 7)
        #expect(assembled.from == 3)
        #expect(assembler.inProgress == 0)
    }

    @Test func interleavedMessagesFromTwoSendersReassembleSeparately() throws {
        let a = Self.randomBytes(10_000, seed: 1)
        let b = Self.randomBytes(7_000, seed: 2)
        // Both senders happen to use the same message id.
        let partsA = MessageChunking.parts(of: a, messageID: 1, partSize: 1000)
        let partsB = MessageChunking.parts(of: b, messageID: 1, partSize: 1000)
        var assembler = MessageAssembler(maxMessageSize: 1 << 20)
        var done: [UInt32: ByteBuffer] = [:]
        for index in 0..<max(partsA.count, partsB.count) {
            for (sender, parts) in [(UInt32(10), partsA), (UInt32(20), partsB)] where index < parts.count {
                if case .complete(let message) = assembler.add(parts[index], from: sender) {
                    done[sender] = message.bytes
                }
            }
        }
        #expect(done[10] == a)
        #expect(done[20] == b)
    }

    @Test func tooLargeIsRefusedOnceAndTheRestIgnored() {
        var assembler = MessageAssembler(maxMessageSize: 2500)
        let parts = MessageChunking.parts(of: Self.randomBytes(5000, seed: 3), messageID: 4, partSize: 1000)
        var refusals = 0
        for part in parts {
            switch assembler.add(part, from: 1) {
            case .refused(_, let id, let status, let reason, let wantsReceipt):
                refusals += 1
                #expect(status == .tooLarge)
                #expect(id == 4)
                #expect(wantsReceipt)
                #expect(reason.contains("larger than"))
            case .complete: Issue.record("a too-large message must not complete")
            default: break
            }
        }
        #expect(refusals == 1)
        #expect(assembler.inProgress == 0)
    }

    @Test func abortDiscardsAndAForgottenSenderLeavesNothing() {
        var assembler = MessageAssembler(maxMessageSize: 1 << 20)
        let parts = MessageChunking.parts(of: Self.randomBytes(3000, seed: 4), messageID: 9, partSize: 1000)
        _ = assembler.add(parts[0], from: 1)
        #expect(assembler.inProgress == 1)
        guard case .discarded = assembler.add(MessagePart(messageID: 9, flags: .abort, bytes: ByteBuffer()), from: 1)
        else {
            Issue.record("abort should discard")
            return
        }
        #expect(assembler.inProgress == 0)
        _ = assembler.add(parts[0], from: 2)
        assembler.forget(sender: 2)
        #expect(assembler.inProgress == 0)
        // A middle part without its start is ignored, not an error.
        guard case .discarded = assembler.add(parts[1], from: 3) else {
            Issue.record("a part without start should be discarded")
            return
        }
    }

    @Test func tooManyMessagesInProgressAreRefused() {
        var assembler = MessageAssembler(maxMessageSize: 1 << 20, maxInProgress: 2)
        for id in 1...2 {
            _ = assembler.add(
                MessagePart(messageID: UInt32(id), flags: .start, bytes: ByteBuffer(string: "x")), from: 1)
        }
        guard
            case .refused = assembler.add(
                MessagePart(messageID: 3, flags: .start, bytes: ByteBuffer(string: "x")), from: 1)
        else {
            Issue.record("a third message in progress should be refused")
            return
        }
    }

    @Test func partWithHeadroomIsFramedWithoutCopying() throws {
        var buffer = ByteBufferAllocator().buffer(capacity: 100)
        buffer.moveWriterIndex(forwardBy: 4)
        buffer.moveReaderIndex(forwardBy: 4)
        buffer.writeString("payload")
        let packet = MessagePart(messageID: 0x0102_0304, flags: [.start, .end], bytes: buffer).packet(
            PacketHeader(type: .message))
        #expect(Array(packet.payload.readableBytesView) == [1, 2, 3, 4] + Array("payload".utf8))
        #expect(packet.header.dataType == MessagePart.Flags([.start, .end]).rawValue)
    }

    @Test func receiptsRoundTrip() throws {
        let receipt = MessageReceipt(messageID: 5, bytes: 1 << 40, status: .refused, reason: "no")
        #expect(try MessageReceipt(tlv: receipt.encoded()) == receipt)
    }
}
