import Logging
import NIOCore
import NIOPosix
import TCPIPClient
import TCPIPCore
import TCPIPWire

/// Stores the messages a receiver daemon is sent, one file each (`message-TIME-ID-NUMBER-SENDER.txt`), and answers
/// each with a receipt when the sender asked for one. Separate from files: a message is assembled in memory (bounded
/// by ``ReceiverConfiguration/maxMessageSize``) and written in one step.
final class MessageStore {
    /// The file a message is stored in: `message-TIME-FROMID-ID-SENDER.txt`.
    static func fileName(from: UInt32, id: UInt32, sender: PeerRecord?) -> String {
        let stamp = WireClock.rfc3339(WireClock.now()).replacingColons
        // The sender's name goes in the file name only when it is safe and short: the whole name must stay a valid
        // file name.
        let senderName =
            (sender?.name).flatMap { SpoolName.problem(with: $0) == nil && $0.utf8.count <= 64 ? $0 : nil }
            ?? "peer\(from)"
        return "message-\(stamp)-\(from)-\(id)-\(senderName).txt"
    }

    /// Whether a spool entry is a stored message (`message-….txt` at the top), which has no metadata record.
    static func isMessageFile(_ name: String) -> Bool {
        !name.contains("/") && name.hasPrefix("message-") && name.hasSuffix(".txt")
    }

    private let configuration: ReceiverConfiguration
    private let logger: Logger
    private var assembler: MessageAssembler

    init(configuration: ReceiverConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        assembler = MessageAssembler(maxMessageSize: configuration.maxMessageSize)
        assembler.sealing = configuration.sealing
    }

    /// The sender left: its partial messages go.
    func forget(sender: UInt32) { assembler.forget(sender: sender) }

    func handle(_ packet: Packet, session: ClientSession) async throws {
        guard let part = try? MessagePart(packet) else { return }
        let from = packet.header.idFrom
        let record = assembler.needsRecord(part) ? try await session.peer(id: from) : nil
        switch assembler.add(part, from: from, record: record) {
        case .incomplete, .discarded:
            return
        case .refused(let sender, let id, let status, let reason, let wantsReceipt):
            if wantsReceipt {
                try await session.send(
                    MessageReceipt(messageID: id, bytes: 0, status: status, reason: reason).packet(to: sender))
            }
        case .complete(let message):
            let sender = try await session.peer(id: from)
            let wantsReceipt = !message.flags.contains(.noReceipt)
            let problem =
                configuration.allows(from, sender) ? sender.flatMap { configuration.senderProblem?($0) } : "not allowed"
            if let problem {
                if wantsReceipt {
                    try await session.send(
                        MessageReceipt(messageID: message.messageID, bytes: 0, status: .refused, reason: problem)
                            .packet(to: from))
                }
                return
            }
            let result = await store(message, from: from, sender: sender)
            guard wantsReceipt else { return }
            switch result {
            case .success:
                try await session.send(
                    MessageReceipt(messageID: message.messageID, bytes: UInt64(message.bytes.readableBytes)).packet(
                        to: from))
            case .failure(let error):
                try await session.send(
                    MessageReceipt(
                        messageID: message.messageID, bytes: 0, status: .storageFailed,
                        reason: "the receiver cannot store it: \(error)"
                    ).packet(to: from))
            }
        }
    }

    private func store(_ message: AssembledMessage, from: UInt32, sender: PeerRecord?) async -> Result<
        String, any Error
    > {
        let name = Self.fileName(from: from, id: message.messageID, sender: sender)
        let bytes = Array(message.bytes.readableBytesView)
        let spool = configuration.spool
        let result: Result<String, any Error>
        if let problem = configuration.spaceProblem(for: UInt64(bytes.count)) {
            result = .failure(SpoolError.noSpace(problem))
        } else {
            result = await Result.capturing {
                try await NIOThreadPool.singleton.runIfActive { try spool.store(bytes, as: name, tag: "message") }
            }
        }
        let fromName = escapedForLog(sender?.name ?? "peer \(from)")
        switch result {
        case .success(let stored):
            logger.info(
                "stored message",
                metadata: ["file": "\(escapedForLog(stored))", "from": "\(fromName)", "bytes": "\(bytes.count)"])
        case .failure(let error):
            logger.warning("could not store a message", metadata: ["from": "\(fromName)", "reason": "\(error)"])
        }
        return result
    }
}

extension String {
    fileprivate var replacingColons: String { String(map { $0 == ":" ? "-" : $0 }) }
}
