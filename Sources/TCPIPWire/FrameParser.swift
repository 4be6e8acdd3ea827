import NIOCore

/// Cuts a byte stream into packets.
///
/// A plain value: feed it the bytes received so far and ask for the next packet. "Need more bytes" returns nil and
/// consumes nothing; bytes that cannot be a frame throw. The announced length is checked against the limit as soon as
/// the four length bytes are there, so an absurd length never causes an allocation or a wait for its body.
public struct FrameParser: Sendable {
    /// Payload bytes allowed in one frame by default: 1 MiB.
    public static let defaultMaxPayloadSize = 1 << 20
    /// The default maximum size of a whole frame, header included: 1 MiB + 18 bytes.
    public static let defaultMaxFrameSize = defaultMaxPayloadSize + PacketHeader.size

    /// The largest whole frame (length prefix, header and payload) this parser accepts.
    public let maxFrameSize: Int

    public init(maxFrameSize: Int = FrameParser.defaultMaxFrameSize) {
        precondition(maxFrameSize >= PacketHeader.size, "a frame must at least hold its header")
        self.maxFrameSize = maxFrameSize
    }

    /// The largest payload a frame may carry under this parser's limit.
    public var maxPayloadSize: Int { maxFrameSize - PacketHeader.size }

    /// Returns the next complete packet at the front of `buffer`, removing its bytes, or nil when the frame is not
    /// complete yet (nothing is consumed then). The returned payload is a slice of `buffer`, not a copy.
    public func nextPacket(from buffer: inout ByteBuffer) throws -> Packet? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard Int(length) + PacketHeader.lengthPrefixSize <= maxFrameSize else {
            throw WireError.frameTooLarge(
                length: UInt64(length) + UInt64(PacketHeader.lengthPrefixSize), limit: maxFrameSize)
        }
        guard Int(length) >= PacketHeader.sizeAfterLength else { throw WireError.frameTooShort(length: length) }
        guard buffer.readableBytes >= PacketHeader.lengthPrefixSize + Int(length) else { return nil }

        var frame = buffer.getSlice(at: buffer.readerIndex + PacketHeader.lengthPrefixSize, length: Int(length))!
        let (type, dataType, mask, level, idTo, idFrom) = frame.readMultipleIntegers(
            as: (UInt16, UInt16, UInt8, UInt8, UInt32, UInt32).self
        )!
        guard level == PacketHeader.currentLevel else { throw WireError.unsupportedLevel(level) }
        guard let maskTo = MaskTo(rawValue: mask) else { throw WireError.unknownMaskTo(mask) }
        buffer.moveReaderIndex(forwardBy: PacketHeader.lengthPrefixSize + Int(length))
        let header = PacketHeader(
            type: PacketType(type), dataType: dataType, maskTo: maskTo, level: level, idTo: idTo, idFrom: idFrom
        )
        return Packet(header: header, payload: frame)
    }
}
