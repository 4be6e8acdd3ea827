import NIOCore

/// The payload of Ping (1) and PingResponse (2).
///
/// | tag | field | encoding |
/// |---|---|---|
/// | 1 | sequence | u32, chosen by the pinger, echoed |
/// | 2 | sentAt | u64, the pinger's clock in microseconds since the Unix epoch, echoed |
/// | 3 | answeredAt | u64, the responder's clock when it answered (PingResponse only) |
///
/// From the pinger's send time t0, receive time t1 and `answeredAt` h: round trip = t1 − t0, clock offset of the
/// responder = h − (t0 + t1) / 2.
public struct PingPayload: ControlPayload, Hashable {
    public var sequence: UInt32
    public var sentAt: WireTime
    public var answeredAt: WireTime?

    public init(sequence: UInt32, sentAt: WireTime, answeredAt: WireTime? = nil) {
        self.sequence = sequence
        self.sentAt = sentAt
        self.answeredAt = answeredAt
    }

    public init(tlv: ByteBuffer) throws {
        self.init(sequence: 0, sentAt: 0)
        try TLVReader.forEach(in: tlv) { field in
            switch field.tag {
            case 1: sequence = try field.integer(as: UInt32.self)
            case 2: sentAt = try field.integer()
            case 3: answeredAt = try field.integer()
            default: break
            }
        }
    }

    public func write(to writer: inout TLVWriter) {
        writer.write(1, integer: sequence)
        writer.write(2, integer: sentAt)
        writer.write(3, integer: answeredAt)
    }

    /// The answer to this ping, stamped with the responder's clock.
    public func answered(at time: WireTime) -> PingPayload {
        PingPayload(sequence: sequence, sentAt: sentAt, answeredAt: time)
    }
}
