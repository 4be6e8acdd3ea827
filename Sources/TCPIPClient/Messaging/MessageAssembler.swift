import NIOCore
import TCPIPWire

/// A whole message, put back together.
public struct AssembledMessage: Sendable {
    public var from: UInt32
    public var messageID: UInt32
    /// The flags of its first part (`noReceipt`, `broadcast`).
    public var flags: MessagePart.Flags
    public var bytes: ByteBuffer
}

/// Puts messages back together from their parts, separately per sender and message id, with a size limit.
public struct MessageAssembler {
    public enum Outcome: Sendable {
        /// More parts to come.
        case incomplete
        case complete(AssembledMessage)
        /// The message broke a limit; its remaining parts are ignored. Answer with a receipt of `status` (refused, or
        /// too large) if `wantsReceipt`.
        case refused(
            from: UInt32, messageID: UInt32, status: MessageReceipt.Status, reason: String, wantsReceipt: Bool)
        /// The sender aborted the message, or a part came without its start; nothing to answer.
        case discarded
    }

    private struct Key: Hashable {
        var from: UInt32
        var messageID: UInt32
    }

    private struct Partial {
        var flags: MessagePart.Flags
        var bytes: ByteBuffer
    }

    /// The largest message accepted.
    public let maxMessageSize: Int
    /// The most messages that may be in progress at once (from all senders together).
    public let maxInProgress: Int
    private var partials: [Key: Partial] = [:]
    private var refused: Set<Key> = []

    public init(maxMessageSize: Int, maxInProgress: Int = 64) {
        self.maxMessageSize = maxMessageSize
        self.maxInProgress = maxInProgress
    }

    /// Messages in progress now.
    public var inProgress: Int { partials.count }

    public mutating func add(_ part: MessagePart, from sender: UInt32) -> Outcome {
        let key = Key(from: sender, messageID: part.messageID)
        if part.flags.contains(.abort) {
            partials[key] = nil
            refused.remove(key)
            return .discarded
        }
        if part.flags.contains(.start) {
            partials[key] = nil
            refused.remove(key)
            let wantsReceipt = !part.flags.contains(.noReceipt)
            if part.bytes.readableBytes > maxMessageSize {
                return refuse(
                    key, .tooLarge, "the message is larger than \(maxMessageSize) bytes", wantsReceipt: wantsReceipt,
                    ended: part.flags.contains(.end))
            }
            if part.flags.contains(.end) {
                return .complete(
                    AssembledMessage(from: sender, messageID: part.messageID, flags: part.flags, bytes: part.bytes))
            }
            guard partials.count < maxInProgress else {
                return refuse(key, .refused, "too many messages in progress", wantsReceipt: wantsReceipt, ended: false)
            }
            partials[key] = Partial(flags: part.flags, bytes: part.bytes)
            return .incomplete
        }
        guard var partial = partials.removeValue(forKey: key) else {
            if part.flags.contains(.end) { refused.remove(key) }
            return .discarded
        }
        guard partial.bytes.readableBytes + part.bytes.readableBytes <= maxMessageSize else {
            return refuse(
                key, .tooLarge, "the message is larger than \(maxMessageSize) bytes",
                wantsReceipt: !partial.flags.contains(.noReceipt), ended: part.flags.contains(.end))
        }
        var bytes = part.bytes
        partial.bytes.writeBuffer(&bytes)
        if part.flags.contains(.end) {
            return .complete(
                AssembledMessage(from: sender, messageID: part.messageID, flags: partial.flags, bytes: partial.bytes))
        }
        partials[key] = partial
        return .incomplete
    }

    /// Drops whatever a sender that left had in progress.
    public mutating func forget(sender: UInt32) {
        partials = partials.filter { $0.key.from != sender }
        refused = refused.filter { $0.from != sender }
    }

    private mutating func refuse(
        _ key: Key, _ status: MessageReceipt.Status, _ reason: String, wantsReceipt: Bool, ended: Bool
    ) -> Outcome {
        partials[key] = nil
        if !ended { refused.insert(key) }
        return .refused(
            from: key.from, messageID: key.messageID, status: status, reason: reason, wantsReceipt: wantsReceipt)
    }
}

/// Cuts a message into parts that fit in frames.
public enum MessageChunking {
    /// The largest number of message bytes one part carries under a frame limit.
    public static func maxPartBytes(maxFrameSize: Int) -> Int {
        maxFrameSize - PacketHeader.size - MessagePart.headerSize
    }

    /// Splits `bytes` into parts of at most `partSize` bytes; an empty message is one empty part.
    public static func parts(of bytes: ByteBuffer, messageID: UInt32, partSize: Int, flags: MessagePart.Flags = [])
        -> [MessagePart]
    {
        precondition(partSize > 0)
        var remaining = bytes
        var parts: [MessagePart] = []
        repeat {
            let slice = remaining.readSlice(length: min(partSize, remaining.readableBytes))!
            var partFlags = flags
            if parts.isEmpty { partFlags.insert(.start) } else { partFlags.remove(.broadcast) }
            if remaining.readableBytes == 0 { partFlags.insert(.end) }
            parts.append(MessagePart(messageID: messageID, flags: partFlags, bytes: slice))
        } while remaining.readableBytes > 0
        return parts
    }
}
