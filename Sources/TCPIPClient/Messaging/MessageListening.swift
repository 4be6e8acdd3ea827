import FoundationEssentials
import NIOCore
import TCPIPCore
import TCPIPWire

/// A message (or application packet) as `tcpipctl listen` hands it on.
public struct ReceivedMessage: Sendable {
    public var from: PeerRecord?
    public var fromID: UInt32
    /// True when the sender addressed every listener (`send --all`).
    public var broadcast: Bool
    public var receivedAt: WireTime
    public var bytes: ByteBuffer
    /// The application type, for packets received with `listen --type`.
    public var applicationType: PacketType?
    public var dataType: UInt16 = 0
    /// It came sealed to this node's key (and so from the key its sender proved).
    public var sealed = false

    /// `{"from":{"id":…,"name":…},"to":"me"|"all","receivedAt":…,"bytes":N,"sealed":B,"text":…}`; `base64` instead
    /// of `text` when the bytes are not valid UTF-8.
    public var json: JSON {
        var from: [(String, JSON)] = [("id", .int(Int64(fromID)))]
        from.append(("name", self.from.map { .string($0.name) } ?? .null))
        from.append(("key", self.from?.keyID.map { .string($0.description) } ?? .null))
        var fields: [(String, JSON)] = [
            ("from", .object(from)), ("to", .string(broadcast ? "all" : "me")),
            ("receivedAt", .string(WireClock.rfc3339(receivedAt))),
        ]
        if let applicationType {
            fields.append(("type", .int(Int64(applicationType.rawValue))))
            fields.append(("dataType", .int(Int64(dataType))))
        }
        fields.append(("bytes", .int(Int64(bytes.readableBytes))))
        if applicationType == nil { fields.append(("sealed", .bool(sealed))) }
        if let text = try? bytes.getUTF8ValidatedString(at: bytes.readerIndex, length: bytes.readableBytes) {
            fields.append(("text", .string(text)))
        } else {
            fields.append(("base64", .string(Data(bytes.readableBytesView).base64EncodedString())))
        }
        return .object(fields)
    }
}

/// What `tcpipctl listen` was asked to do.
public struct ListenRequest: Sendable {
    /// Hand on only messages from this peer id; refuse others with a receipt.
    public var from: UInt32?
    /// Stop after this many messages.
    public var count: Int?
    /// Take packets of this application type instead of messages.
    public var applicationType: PacketType?
    public var maxMessageSize = 64 << 20
    /// Asked before each packet: true ends listening (after the receipts of what was written go out).
    public var stopRequested: (@Sendable () -> Bool)?

    public init() {}
}

/// Receives messages, hands each to `deliver` (which writes it out), and only then acknowledges it.
public enum MessageListening {
    /// Returns when `count` messages were delivered. `deliver` throwing ``StandardOutput/Closed`` ends listening
    /// without acknowledging that message.
    public static func run(
        _ request: ListenRequest, session: ClientSession, deliver: (ReceivedMessage) throws -> Void
    ) async throws {
        session.acceptsMessages = request.applicationType == nil
        var assembler = MessageAssembler(maxMessageSize: request.maxMessageSize)
        assembler.sealing = session.configuration.sealing
        var delivered = 0
        let sender = session.sender

        // Receipts wait while more packets are at hand and go out together: one send per burst, not per message.
        var receipts: [Packet] = []
        func answer(_ receipt: MessageReceipt, to peer: UInt32) {
            receipts.append(receipt.packet(to: peer))
        }

        // A message that cannot be written is not acknowledged, but the ones written before it are.
        func deliverOrFlush(_ message: ReceivedMessage) async throws {
            do {
                try deliver(message)
            } catch {
                try? await sender.send(contentsOf: receipts)
                try? await sender.drain()
                throw error
            }
        }

        while request.count.map({ delivered < $0 }) ?? true {
            if request.stopRequested?() == true { break }
            if !receipts.isEmpty && !session.hasBufferedPackets {
                try await sender.send(contentsOf: receipts)
                receipts.removeAll(keepingCapacity: true)
            }
            let packet = try await session.next()
            let from = packet.header.idFrom
            if let type = request.applicationType {
                guard packet.header.type == type, request.from.map({ $0 == from }) ?? true else { continue }
                let message = ReceivedMessage(
                    from: try await session.peer(id: from), fromID: from, broadcast: packet.header.maskTo == .all,
                    receivedAt: WireClock.now(), bytes: packet.payload, applicationType: type,
                    dataType: packet.header.dataType
                )
                try await deliverOrFlush(message)
                delivered += 1
                continue
            }
            switch packet.header.type {
            case .message:
                // A malformed part from a peer is dropped, never the end of listening.
                guard let part = try? MessagePart(packet) else { continue }
                if let only = request.from, only != from {
                    if part.flags.contains(.start) && !part.flags.contains(.noReceipt) {
                        answer(
                            MessageReceipt(
                                messageID: part.messageID, bytes: 0, status: .refused,
                                reason: "\(session.me.name) takes messages only from peer \(only)"),
                            to: from
                        )
                    }
                    continue
                }
                let record = assembler.needsRecord(part) ? try await session.peer(id: from) : nil
                switch assembler.add(part, from: from, record: record) {
                case .incomplete, .discarded:
                    continue
                case .refused(let sender, let id, let status, let reason, let wantsReceipt):
                    if wantsReceipt {
                        answer(
                            MessageReceipt(messageID: id, bytes: 0, status: status, reason: reason), to: sender)
                    }
                case .complete(let assembled):
                    let message = ReceivedMessage(
                        from: try await session.peer(id: from), fromID: from,
                        broadcast: assembled.flags.contains(.broadcast),
                        receivedAt: WireClock.now(), bytes: assembled.bytes, sealed: assembled.sealed
                    )
                    try await deliverOrFlush(message)
                    delivered += 1
                    if !assembled.flags.contains(.noReceipt) {
                        answer(
                            MessageReceipt(
                                messageID: assembled.messageID, bytes: UInt64(assembled.bytes.readableBytes)), to: from)
                    }
                }
            case .clientDisconnecting:
                assembler.forget(sender: from)
            default:
                continue
            }
        }
        try await sender.send(contentsOf: receipts)
        try await sender.drain()
    }
}
