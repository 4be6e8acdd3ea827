import NIOCore

/// A control packet's payload: a typed value read from and written to TLV fields.
public protocol ControlPayload: Sendable {
    /// Reads the value, skipping tags it does not know.
    init(tlv: ByteBuffer) throws
    /// Writes the value's fields.
    func write(to writer: inout TLVWriter)
}

extension ControlPayload {
    /// The payload bytes.
    public func encoded() -> ByteBuffer {
        var writer = TLVWriter()
        write(to: &writer)
        return writer.buffer
    }

    /// A packet with this payload.
    public func packet(_ header: PacketHeader) -> Packet {
        Packet(header: header, payload: encoded())
    }
}

/// Time on the wire: microseconds since 1970-01-01T00:00:00Z.
public typealias WireTime = UInt64
