import Crypto
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TCPIPWire

#if canImport(Glibc)
    import Glibc
#endif

/// What the receiver daemon accepts and where it puts it.
public struct ReceiverConfiguration: Sendable {
    public var spool: Spool
    /// Peer names or ids allowed to send; empty allows everyone.
    public var allowFrom: [String] = []
    /// Largest file accepted, in bytes.
    public var maxFileSize: UInt64?
    /// Bytes that must stay free on the spool's file system after a file is stored.
    public var minFreeSpace: UInt64 = 0
    /// Largest chunk (original bytes) accepted, whatever a sender announces: the bound for inflating.
    public var maxChunkSize = 4 << 20
    /// Largest message stored.
    public var maxMessageSize = 64 << 20
    /// Store every file, even one already stored under the same sent name with the same SHA-256.
    public var alwaysStore = false
    /// Transfers one sender may have open at once (each holds a file descriptor): a hostile sender cannot take them
    /// all. Ours sends one file at a time.
    public var maxTransfersPerSender = 16
    /// Transfers open at once, from everyone.
    public var maxTransfers = 256

    public init(spool: Spool) { self.spool = spool }

    /// Why `bytes` more would not fit within `minFreeSpace`, or nil when they would (or the space is unknown).
    func spaceProblem(for bytes: UInt64) -> String? {
        guard let free = spool.freeBytes() else { return nil }
        let (needed, overflow) = bytes.addingReportingOverflow(minFreeSpace)
        guard overflow || free < needed else { return nil }
        return "not enough free space on the receiver: \(free) bytes free, \(overflow ? UInt64.max : needed) needed"
    }
}

/// Lands incoming files and messages in the spool: writes each transfer to a temporary file while hashing it, checks
/// size and SHA-256 at FileEnd, syncs, publishes without replacing, and only then answers DoneReceivingFile.
public final class FileReceiver {
    final class Transfer {
        let id: UInt32
        let from: UInt32
        let fromName: String
        let name: String
        let announcedSize: UInt64?
        let chunkSize: Int
        let compression: UInt8
        /// The SHA-256 the sender announced up front, which the whole file must match too.
        let announcedSHA256: [UInt8]?
        let startedAt = WireClock.now()
        var descriptor: Int32
        var path: String
        var hasher = SHA256()
        var received: UInt64 = 0
        var wireBytes: UInt64 = 0
        /// Set when the transfer failed; its remaining packets are ignored until FileEnd.
        var failed = false

        init(id: UInt32, from: UInt32, fromName: String, start: FileStart, descriptor: Int32, path: String) {
            self.id = id
            self.from = from
            self.fromName = fromName
            name = start.name
            announcedSize = start.size
            chunkSize = Int(start.chunkSize)
            compression = start.compression
            announcedSHA256 = start.sha256
            self.descriptor = descriptor
            self.path = path
        }
    }

    struct Key: Hashable {
        var from: UInt32
        var id: UInt32
    }

    /// A file that was published, for the hook and the log.
    public struct Published: Sendable {
        public var path: String
        public var storedAs: String
        /// The name the sender asked for.
        public var sentAs: String
        public var from: PeerRecord?
        public var fromID: UInt32
        public var size: UInt64
        public var sha256: String
    }

    public let configuration: ReceiverConfiguration
    private let logger: Logger
    private var transfers: [Key: Transfer] = [:]
    private var dead: Set<Key> = []
    private var assembler: MessageAssembler
    private let decompressor: ChunkDecompressor
    /// New transfers are refused (the daemon is stopping).
    public var refusingNew = false
    /// Syncs, publishes and answers verified files; its ``Committer/run(sender:onBatch:)`` must run beside
    /// ``handle(_:session:)``.
    public let committer: Committer

    /// What was stored, for files sent again; nil stores every file.
    private let index: SpoolIndex?

    /// `onPublished` is called after each file is published (the `--exec` hook).
    public init(
        configuration: ReceiverConfiguration, logger: Logger, index: SpoolIndex? = nil,
        onPublished: (@Sendable (Published) -> Void)? = nil
    ) throws {
        self.configuration = configuration
        self.logger = logger
        self.index = configuration.alwaysStore ? nil : index
        assembler = MessageAssembler(maxMessageSize: configuration.maxMessageSize)
        decompressor = try ChunkDecompressor()
        committer = Committer(spool: configuration.spool, logger: logger, index: self.index, onPublished: onPublished)
    }

    /// Transfers in progress, counting verified files not yet answered.
    public var inProgress: Int { transfers.count + committer.outstanding }

    /// Handles one packet; sends receipts through `session`. A malformed packet from a peer costs that peer its
    /// transfer (an `invalid` receipt when the transfer can be told), never this session or anyone else's transfer.
    public func handle(_ packet: Packet, session: ClientSession) async throws {
        do {
            try await handleWellFormed(packet, session: session)
        } catch let error as WireError {
            let from = packet.header.idFrom
            logger.warning(
                "ignored a malformed packet",
                metadata: ["type": "\(packet.header.type)", "from": "\(from)", "error": "\(error)"])
            guard let transferID = Self.transferID(in: packet) else { return }
            abandon(Key(from: from, id: transferID))
            let reason = "malformed \(packet.header.type): \(error)"
            try await session.send(
                FileReceipt(transferID: transferID, status: .invalid, reason: reason).packet(to: from))
        }
    }

    /// The transfer a file packet that did not decode belongs to, if that much can be read.
    static func transferID(in packet: Packet) -> UInt32? {
        switch packet.header.type {
        case .fileChunk:
            return packet.payload.getInteger(at: packet.payload.readerIndex, as: UInt32.self)
        case .fileStart, .fileEnd:
            var reader = TLVReader(packet.payload)
            while let field = try? reader.next() {
                if field.tag == 1, let id = try? field.integer(as: UInt32.self) { return id }
            }
            return nil
        default:
            return nil
        }
    }

    private func handleWellFormed(_ packet: Packet, session: ClientSession) async throws {
        let from = packet.header.idFrom
        switch packet.header.type {
        case .fileStart:
            let start = try FileStart(tlv: packet.payload)
            if let receipt = try await begin(start, from: from, session: session) {
                try await session.send(receipt.packet(to: from))
            }
        case .fileChunk:
            let chunk = try FileChunk(packet)
            let key = Key(from: from, id: chunk.transferID)
            guard let transfer = transfers[key] else { return }
            if let receipt = await write(chunk, to: transfer) {
                abandon(key)
                try await session.send(receipt.packet(to: from))
            }
        case .fileEnd:
            let end = try FileEnd(tlv: packet.payload)
            let key = Key(from: from, id: end.transferID)
            if dead.remove(key) != nil { return }
            guard let transfer = transfers.removeValue(forKey: key) else { return }
            if packet.header.dataType == FileEnd.abort {
                logger.info(
                    "sender aborted transfer",
                    metadata: [
                        "file": "\(escapedForLog(transfer.name))", "reason": "\(escapedForLog(end.reason ?? ""))",
                    ])
                discard(transfer)
                return
            }
            if let receipt = finish(transfer, end: end, fromPeer: try await session.peer(id: from)) {
                try await session.send(receipt.packet(to: from))
            }
        case .message:
            try await handleMessage(packet, session: session)
        case .clientDisconnecting:
            abandonAll(from: from, reason: "sender left")
            assembler.forget(sender: from)
        default:
            return
        }
    }

    /// Removes every unfinished transfer (the connection ended, or the daemon stops).
    public func abandonAll(from sender: UInt32? = nil, reason: String) {
        for (key, transfer) in transfers where sender == nil || key.from == sender {
            logger.info(
                "discarding unfinished transfer",
                metadata: ["file": "\(escapedForLog(transfer.name))", "reason": "\(reason)"])
            transfers[key] = nil
            discard(transfer)
        }
        if sender == nil { dead.removeAll() } else { dead = dead.filter { $0.from != sender } }
    }

    // MARK: steps

    private func begin(_ start: FileStart, from: UInt32, session: ClientSession) async throws -> FileReceipt? {
        let key = Key(from: from, id: start.transferID)
        func refuse(_ reason: String, _ status: FileReceipt.Status = .refused) -> FileReceipt {
            logger.warning(
                "refused file",
                metadata: [
                    "file": "\(escapedForLog(start.name.clipped))", "from": "\(from)",
                    "reason": "\(escapedForLog(reason))",
                ])
            dead.insert(key)
            return FileReceipt(transferID: start.transferID, status: status, reason: reason)
        }
        if let old = transfers.removeValue(forKey: key) { discard(old) }
        if refusingNew { return refuse("the receiver is shutting down", .unavailable) }
        if transfers.count >= configuration.maxTransfers
            || transfers.keys.lazy.filter({ $0.from == from }).count >= configuration.maxTransfersPerSender
        {
            return refuse("too many transfers in progress; try again later", .unavailable)
        }
        let sender = try await session.peer(id: from)
        if !configuration.allowFrom.isEmpty {
            let allowed = configuration.allowFrom.contains { $0 == String(from) || $0 == sender?.name }
            if !allowed {
                return refuse("\(session.me.name) does not take files from \(sender?.name ?? "peer \(from)")")
            }
        }
        if let problem = SpoolName.problem(withPath: start.name) {
            return refuse("unsafe file name '\(escapedForLog(start.name.clipped))': \(problem)", .invalid)
        }
        if let size = start.size, let limit = configuration.maxFileSize, size > limit {
            return refuse("the file is \(size) bytes, more than the receiver's limit of \(limit)")
        }
        guard start.chunkSize > 0, Int(start.chunkSize) <= configuration.maxChunkSize else {
            return refuse("chunk size \(start.chunkSize) is outside 1…\(configuration.maxChunkSize)", .invalid)
        }
        guard start.compression <= 1 else { return refuse("unknown compression \(start.compression)", .invalid) }
        if let digest = start.sha256, let index,
            let storedAs = index.stored(sentAs: start.name, sha256: digest.map { String(format2: $0) }.joined())
        {
            // Sent again (a retried cron job): acknowledged, not stored twice. Its chunks are ignored.
            logger.info(
                "already stored",
                metadata: [
                    "file": "\(escapedForLog(storedAs))",
                    "from": "\(escapedForLog(sender?.name ?? "peer \(from)"))",
                ])
            dead.insert(key)
            return FileReceipt(
                transferID: start.transferID, status: .alreadyStored, storedAs: storedAs, size: start.size ?? 0)
        }
        if let problem = configuration.spaceProblem(for: start.size ?? 0) { return refuse(problem, .storageFailed) }
        do {
            let (fd, path) = try configuration.spool.createTemporary(tag: "\(from)-\(start.transferID)")
            transfers[key] = Transfer(
                id: start.transferID, from: from, fromName: sender?.name ?? "", start: start, descriptor: fd, path: path
            )
            logger.debug("receiving file", metadata: ["file": "\(escapedForLog(start.name))", "from": "\(from)"])
            return nil
        } catch {
            return refuse("\(error)", .storageFailed)
        }
    }

    /// Inflates (bounded), hashes and writes a chunk off the event loops. Returns a receipt when the transfer failed.
    private func write(_ chunk: FileChunk, to transfer: Transfer) async -> FileReceipt? {
        let rawLength = Int(chunk.rawLength)
        if rawLength > transfer.chunkSize {
            return FileReceipt(
                transferID: transfer.id, status: .corrupt,
                reason: "a chunk of \(rawLength) bytes exceeds the announced chunk size \(transfer.chunkSize)")
        }
        let total = transfer.received + UInt64(rawLength)
        if let announced = transfer.announcedSize, total > announced {
            return FileReceipt(
                transferID: transfer.id, status: .corrupt, reason: "more bytes than the announced \(announced)")
        }
        if let limit = configuration.maxFileSize, total > limit {
            return FileReceipt(
                transferID: transfer.id, status: .refused,
                reason: "the file grew past the receiver's limit of \(limit) bytes")
        }
        if chunk.compressed && transfer.compression == 0 {
            return FileReceipt(
                transferID: transfer.id, status: .corrupt,
                reason: "a compressed chunk in a transfer announced uncompressed")
        }
        let decompressor = self.decompressor
        let descriptor = transfer.descriptor
        let hasher = transfer.hasher
        let offset = Int64(transfer.received)
        let outcome: Result<SHA256, any Error> = await Result.capturing {
            try await NIOThreadPool.singleton.runIfActive {
                var hasher = hasher
                let bytes =
                    chunk.compressed ? try decompressor.decompress(chunk.data, rawLength: rawLength) : chunk.data
                try bytes.withUnsafeReadableBytes { pointer in
                    hasher.update(bufferPointer: pointer)
                    try Spool.writeAll(descriptor, pointer)
                }
                Spool.startWriteback(descriptor, wrote: Int64(bytes.readableBytes), at: offset)
                return hasher
            }
        }
        switch outcome {
        case .success(let updated):
            transfer.hasher = updated
            transfer.received = total
            transfer.wireBytes += UInt64(chunk.data.readableBytes)
            return nil
        case .failure(let error as ChunkDecompressor.Failure):
            return FileReceipt(transferID: transfer.id, status: .corrupt, reason: error.description)
        case .failure(let error as SpoolError):
            return FileReceipt(
                transferID: transfer.id, status: .storageFailed,
                reason: error.isNoSpace ? "the receiver's disk is full" : error.description)
        case .failure(let error):
            return FileReceipt(transferID: transfer.id, status: .storageFailed, reason: "\(error)")
        }
    }

    /// Checks size and SHA-256. A verified file goes to the committer, which syncs, publishes and answers it; a
    /// damaged one is removed and answered here.
    private func finish(_ transfer: Transfer, end: FileEnd, fromPeer: PeerRecord?) -> FileReceipt? {
        let digest = Array(transfer.hasher.finalize())
        func fail(_ status: FileReceipt.Status, _ reason: String) -> FileReceipt {
            logger.warning("file failed", metadata: ["file": "\(escapedForLog(transfer.name))", "reason": "\(reason)"])
            discard(transfer)
            return FileReceipt(transferID: transfer.id, status: status, reason: reason)
        }
        if end.size != transfer.received || (transfer.announcedSize.map { $0 != transfer.received } ?? false) {
            return fail(.corrupt, "size mismatch: received \(transfer.received) bytes, the sender says \(end.size)")
        }
        guard end.sha256 == digest, transfer.announcedSHA256.map({ $0 == digest }) ?? true else {
            return fail(.corrupt, "SHA-256 mismatch: the file was damaged on the way")
        }
        let hex = digest.map { String(format2: $0) }.joined()
        let fromName = fromPeer?.name ?? transfer.fromName
        let (sentAs, from, size, wireBytes) = (transfer.name, transfer.from, transfer.received, transfer.wireBytes)
        let compression = transfer.compression == 1 ? "zlib" : "none"
        let receivedAt = WireClock.rfc3339(WireClock.now())
        let file = Spool.Finished(descriptor: transfer.descriptor, temporary: transfer.path, name: transfer.name) {
            storedAs in
            JSON.object([
                ("name", .string(storedAs)), ("sentAs", .string(sentAs)),
                ("from", .object([("id", .int(Int64(from))), ("name", .string(fromName))])),
                ("size", .int(Int64(size))), ("sha256", .string(hex)), ("compression", .string(compression)),
                ("wireBytes", .int(Int64(wireBytes))), ("receivedAt", .string(receivedAt)),
            ]).rendered()
        }
        // The committer owns the descriptor from here.
        transfer.descriptor = -1
        committer.enqueue(
            Committer.Job(
                file: file, transferID: transfer.id,
                published: Published(
                    path: "", storedAs: "", sentAs: sentAs, from: fromPeer, fromID: from, size: size, sha256: hex)))
        return nil
    }

    private func handleMessage(_ packet: Packet, session: ClientSession) async throws {
        guard let part = try? MessagePart(packet) else { return }
        let from = packet.header.idFrom
        switch assembler.add(part, from: from) {
        case .incomplete, .discarded:
            return
        case .refused(let sender, let id, let status, let reason, let wantsReceipt):
            if wantsReceipt {
                try await session.send(
                    MessageReceipt(messageID: id, bytes: 0, status: status, reason: reason).packet(to: sender))
            }
        case .complete(let message):
            let sender = try await session.peer(id: from)
            if !configuration.allowFrom.isEmpty
                && !configuration.allowFrom.contains(where: { $0 == String(from) || $0 == sender?.name })
            {
                if !message.flags.contains(.noReceipt) {
                    try await session.send(
                        MessageReceipt(messageID: message.messageID, bytes: 0, status: .refused, reason: "not allowed")
                            .packet(to: from))
                }
                return
            }
            let stamp = WireClock.rfc3339(WireClock.now()).replacingColons
            // The sender's name goes in the file name only when it is safe and short: the whole name must stay a valid
            // file name.
            let senderName =
                (sender?.name).flatMap { SpoolName.problem(with: $0) == nil && $0.utf8.count <= 64 ? $0 : nil }
                ?? "peer\(from)"
            let name = "message-\(stamp)-\(from)-\(message.messageID)-\(senderName).txt"
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
                logger.warning(
                    "could not store a message", metadata: ["from": "\(fromName)", "reason": "\(error)"])
            }
            guard !message.flags.contains(.noReceipt) else { return }
            switch result {
            case .success:
                try await session.send(
                    MessageReceipt(messageID: message.messageID, bytes: UInt64(bytes.count)).packet(to: from))
            case .failure(let error):
                try await session.send(
                    MessageReceipt(
                        messageID: message.messageID, bytes: 0, status: .storageFailed,
                        reason: "the receiver cannot store it: \(error)"
                    ).packet(to: from))
            }
        }
    }

    // MARK: helpers

    private func abandon(_ key: Key) {
        guard let transfer = transfers.removeValue(forKey: key) else { return }
        dead.insert(key)
        discard(transfer)
    }

    private func discard(_ transfer: Transfer) {
        if transfer.descriptor >= 0 {
            close(transfer.descriptor)
            transfer.descriptor = -1
        }
        unlink(transfer.path)
    }
}

extension Result where Failure == any Error {
    static func capturing(_ body: () async throws -> Success) async -> Result {
        do {
            return .success(try await body())
        } catch {
            return .failure(error)
        }
    }
}

extension String {
    init(format2 byte: UInt8) {
        let hex = String(byte, radix: 16)
        self = hex.count == 1 ? "0" + hex : hex
    }

    fileprivate var replacingColons: String { String(map { $0 == ":" ? "-" : $0 }) }

    /// At most 64 characters of text from the wire, for a reason or a log line (`…` marks the cut).
    var clipped: String { count <= 64 ? self : String(prefix(64)) + "…" }
}
