import NIOCore
import TCPIPCore
import TCPIPWire

/// A whole message, put back together.
public struct AssembledMessage: Sendable {
    public var from: UInt32
    public var messageID: UInt32
    /// The flags of its first part (`noReceipt`, `broadcast`).
    public var flags: MessagePart.Flags
    public var bytes: ByteBuffer
    /// It was sealed to this node's key by the key its sender proved.
    public var sealed = false
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
        /// A sealed message's number of its last part in the session: the next must follow it (a part left out is
        /// refused). Nil: the message came unsealed.
        var sequence: UInt64?
        var sealed: Bool { sequence != nil }
    }

    /// The largest message accepted.
    public let maxMessageSize: Int
    /// The most messages that may be in progress at once (from all senders together).
    public let maxInProgress: Int
    private var partials: [Key: Partial] = [:]
    private var refused: Set<Key> = []
    /// This node's key: sealed parts are opened with it, and a peer that proved a key must seal.
    public var sealing: SealingKey?
    /// Each sender's sealed session, from the part that carried its encapsulated key.
    private var openers: [UInt32: MessageOpener] = [:]
    /// The encapsulated keys of the sessions opened on this connection: a session replayed whole (its keyed part
    /// again, then its parts) is refused. Bounded: the oldest are forgotten.
    private var sessionsSeen: Set<[UInt8]> = []
    private var sessionsSeenOrder: [[UInt8]] = []
    static let sessionsRemembered = 4096

    public init(maxMessageSize: Int, maxInProgress: Int = 64) {
        self.maxMessageSize = maxMessageSize
        self.maxInProgress = maxInProgress
    }

    /// Messages in progress now.
    public var inProgress: Int { partials.count }

    /// Whether ``add(_:from:record:)`` needs the sender's record for `part`: to open a sealed session (the key it
    /// proved), or to tell whether an unsealed part comes from a peer that should have sealed it.
    public func needsRecord(_ part: MessagePart) -> Bool {
        sealing != nil && !part.flags.contains(.abort)
            && (part.flags.contains(.keyed) || !part.flags.contains(.sealed))
    }

    /// Adds one part from peer `sender`; `record` is its record when ``needsRecord(_:)`` said so.
    public mutating func add(_ part: MessagePart, from sender: UInt32, record: PeerRecord? = nil) -> Outcome {
        let key = Key(from: sender, messageID: part.messageID)
        var part = part
        var sequence: UInt64?  // the part's in its sealed session; nil when it came unsealed
        if part.flags.contains(.sealed) {
            switch open(part, from: sender, record: record) {
            case .success(let opened):
                part.bytes = opened.plain
                part.flags.subtract([.sealed, .keyed])
                sequence = opened.sequence
            case .failure(let failure):
                return refuse(
                    key, .refused, failure.description, wantsReceipt: !part.flags.contains(.noReceipt),
                    ended: part.flags.contains(.end) || !part.flags.contains(.start))
            }
        } else if sealing != nil, !part.flags.contains(.abort), let keyID = record?.keyID {
            return refuse(
                key, .refused,
                "an unsealed message from key \(keyID): messages from peers that prove a key must be sealed (a hub that "
                    + "stripped the sealing could have changed it)",
                wantsReceipt: !part.flags.contains(.noReceipt), ended: part.flags.contains(.end))
        }
        let sealed = sequence != nil
        if sealed, !part.flags.contains(.start), partials[key].map({ !$0.sealed }) ?? false {
            // A sealed part cannot finish a message begun unsealed.
            return refuse(key, .refused, "a message mixes sealed and unsealed parts", wantsReceipt: true, ended: true)
        }
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
                    AssembledMessage(
                        from: sender, messageID: part.messageID, flags: part.flags, bytes: part.bytes, sealed: sealed))
            }
            guard partials.count < maxInProgress else {
                return refuse(key, .refused, "too many messages in progress", wantsReceipt: wantsReceipt, ended: false)
            }
            partials[key] = Partial(flags: part.flags, bytes: part.bytes, sequence: sequence)
            return .incomplete
        }
        guard var partial = partials.removeValue(forKey: key), partial.sealed == sealed else {
            if part.flags.contains(.end) { refused.remove(key) }
            return .discarded
        }
        if sealed {
            // One message's parts go consecutively in the session: a gap is a part the hub left out.
            guard let last = partial.sequence, let sequence, sequence == last &+ 1 else {
                return refuse(
                    key, .refused, "a part of a sealed message is missing (left out on the way)",
                    wantsReceipt: !partial.flags.contains(.noReceipt), ended: part.flags.contains(.end))
            }
            partial.sequence = sequence
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
                AssembledMessage(
                    from: sender, messageID: part.messageID, flags: partial.flags, bytes: partial.bytes,
                    sealed: sealed))
        }
        partials[key] = partial
        return .incomplete
    }

    /// Drops whatever a sender that left had in progress.
    public mutating func forget(sender: UInt32) {
        openers[sender] = nil
        partials = partials.filter { $0.key.from != sender }
        refused = refused.filter { $0.from != sender }
    }

    /// Opens a sealed part: the first of a sender's session carries the encapsulated key, checked against the key the
    /// sender proved (auth mode: only that key's holder could have made it).
    private mutating func open(_ part: MessagePart, from sender: UInt32, record: PeerRecord?) -> Result<
        (plain: ByteBuffer, sequence: UInt64), SealingFailure
    > {
        guard let own = sealing else {
            return .failure(SealingFailure(.refused, "the message is sealed to a key, and this side has none"))
        }
        var bytes = part.bytes
        do {
            var opener: MessageOpener
            var newSession: [UInt8]?
            if part.flags.contains(.keyed) {
                guard let record, let from = SealingRecipient(record) else {
                    return .failure(SealingFailure(.refused, "a sealed message from a peer that proved no key"))
                }
                guard let enc = bytes.readBytes(length: Sealing.encapsulatedKeySize) else {
                    return .failure(SealingFailure(.corrupt, "a sealed message without its key"))
                }
                guard !sessionsSeen.contains(enc) else {
                    return .failure(SealingFailure(.corrupt, "a sealed session replayed (its key came before)"))
                }
                opener = try MessageOpener(encapsulatedKey: enc, key: own, sender: from)
                newSession = enc
            } else {
                guard let current = openers[sender] else {
                    return .failure(SealingFailure(.corrupt, "a sealed message part before its sender's key"))
                }
                opener = current
            }
            let plain = try opener.open(
                bytes, messageID: part.messageID, flags: part.flags.subtracting(.keyed).rawValue)
            // A new session is kept, and its key remembered, only once its first part opened: a key copied onto
            // another body must not displace the session or mark the genuine part as a replay.
            openers[sender] = opener
            if let newSession { remember(session: newSession) }
            return .success((plain, opener.next - 1))  // `next` follows the part just opened
        } catch let failure as SealingFailure {
            return .failure(failure)
        } catch {
            return .failure(SealingFailure(.corrupt, "\(error)"))
        }
    }

    private mutating func remember(session enc: [UInt8]) {
        sessionsSeen.insert(enc)
        sessionsSeenOrder.append(enc)
        if sessionsSeenOrder.count > Self.sessionsRemembered {
            sessionsSeen.remove(sessionsSeenOrder.removeFirst())
        }
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
