import NIOCore

/// One frame: a header and its payload bytes.
///
/// Bulk data (messages, file chunks, application packets) travels in `payload` as raw bytes; control packets carry a
/// TLV-encoded payload (see ``TLVWriter``) that the typed structs in `Messages/` read and write.
public struct Packet: Hashable, Sendable {
    public var header: PacketHeader
    public var payload: ByteBuffer

    public init(header: PacketHeader, payload: ByteBuffer = ByteBuffer()) {
        self.header = header
        self.payload = payload
    }

    /// The whole frame as bytes: length prefix, header and payload.
    public func encoded(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var out = allocator.buffer(capacity: PacketHeader.size + payload.readableBytes)
        out.writePacketHeader(header, payloadLength: payload.readableBytes)
        out.writeImmutableBuffer(payload)
        return out
    }

    /// Bytes this packet occupies on the wire.
    public var wireSize: Int { PacketHeader.size + payload.readableBytes }
}
