import NIOCore

/// One packet of a message (Message, 11).
///
/// A message is a sequence of bytes of any length up to the sender's limit, cut into parts that fit in frames. The
/// dataType holds ``Flags``; the payload is the message id (u32, chosen by the sender, unique on its connection) and
/// then raw bytes:
///
/// ```
/// +----------------+---------------------------+
/// | messageID u32  | bytes (payload length − 4) |
/// +----------------+---------------------------+
/// ```
///
/// A message is one part with `start` and `end` set, or a `start` part, any number of parts with neither, and an `end`
/// part. Parts of one message arrive in order (the hub keeps each sender's order); parts of different messages and
/// senders may interleave. A part with `abort` discards the message.
public struct MessagePart: Hashable, Sendable {
    public struct Flags: OptionSet, Hashable, Sendable {
        public var rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }

        /// The first part of a message.
        public static let start = Flags(rawValue: 1 << 0)
        /// The last part of a message.
        public static let end = Flags(rawValue: 1 << 1)
        /// The sender does not want a MessageReceived for this message.
        public static let noReceipt = Flags(rawValue: 1 << 2)
        /// The sender gave up on this message: discard what arrived of it.
        public static let abort = Flags(rawValue: 1 << 3)
        /// The sender addressed every listener (`tcpipctl send --all`), not this peer by name.
        public static let broadcast = Flags(rawValue: 1 << 4)
        /// The bytes are sealed to the recipient's key: `u64 sequence ‖ ciphertext ‖ tag` (docs/PROTOCOL.md).
        public static let sealed = Flags(rawValue: 1 << 5)
        /// With `sealed`: the sender's encapsulated key (65 bytes) comes first; it starts the sender's sealed session.
        public static let keyed = Flags(rawValue: 1 << 6)
    }

    /// Bytes of the part's own header inside the payload.
    public static let headerSize = 4

    public var messageID: UInt32
    public var flags: Flags
    public var bytes: ByteBuffer

    public init(messageID: UInt32, flags: Flags, bytes: ByteBuffer) {
        self.messageID = messageID
        self.flags = flags
        self.bytes = bytes
    }

    /// Reads a part from a Message packet.
    public init(_ packet: Packet) throws {
        var payload = packet.payload
        guard let id = payload.readInteger(as: UInt32.self) else {
            throw WireError.invalidValue("a Message payload must start with a 4-byte message id")
        }
        self.init(messageID: id, flags: Flags(rawValue: packet.header.dataType), bytes: payload)
    }

    /// The packet for this part. When `bytes` has 4 bytes of headroom before its reader index and is not shared,
    /// the id is written there and the bytes are not copied.
    public consuming func packet(_ header: PacketHeader) -> Packet {
        var header = header
        header.type = .message
        header.dataType = self.flags.rawValue
        let messageID = self.messageID
        var payload = (consume self).bytes
        if payload.readerIndex >= Self.headerSize {
            payload.moveReaderIndex(to: payload.readerIndex - Self.headerSize)
            payload.setInteger(messageID, at: payload.readerIndex)
        } else {
            var framed = ByteBufferAllocator().buffer(capacity: Self.headerSize + payload.readableBytes)
            framed.writeInteger(messageID)
            framed.writeImmutableBuffer(payload)
            payload = framed
        }
        return Packet(header: header, payload: payload)
    }
}

/// A recipient's answer to a message (MessageReceived, 12), sent back to the message's sender.
///
/// | tag | field | encoding |
/// |---|---|---|
/// | 1 | messageID | u32 |
/// | 2 | bytes | u64, bytes the recipient took |
/// | 3 | status | u8: 0 delivered (written out or stored), 1 refused, 2 could not store it, 3 too large |
/// | 4 | reason | UTF-8, why it was refused |
public struct MessageReceipt: ControlPayload, Hashable {
    public enum Status: UInt8, Sendable {
        case delivered = 0
        case refused = 1
        /// The recipient could not store it (disk full, read-only, I/O error, quota).
        case storageFailed = 2
        /// The message is larger than the recipient takes.
        case tooLarge = 3
    }

    public var messageID: UInt32
    public var bytes: UInt64
    public var status: Status
    public var reason: String?

    public init(messageID: UInt32, bytes: UInt64, status: Status = .delivered, reason: String? = nil) {
        self.messageID = messageID
        self.bytes = bytes
        self.status = status
        self.reason = reason
    }

    public init(tlv: ByteBuffer) throws {
        self.init(messageID: 0, bytes: 0)
        try TLVReader.forEach(in: tlv) { field in
            switch field.tag {
            case 1: messageID = try field.integer(as: UInt32.self)
            case 2: bytes = try field.integer()
            case 3: status = Status(rawValue: try field.integer(as: UInt8.self)) ?? .refused
            case 4: reason = try field.string()
            default: break
            }
        }
    }

    public func write(to writer: inout TLVWriter) {
        writer.write(1, integer: messageID)
        writer.write(2, integer: bytes)
        writer.write(3, integer: status.rawValue)
        writer.write(4, string: reason)
    }
}
