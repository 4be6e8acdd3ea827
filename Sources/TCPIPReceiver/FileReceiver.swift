import Crypto
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TCPIPClient
import TCPIPCore
import TCPIPWire

#if canImport(Glibc)
    import Glibc
#endif

/// Lands incoming files and messages in the spool. Files go through a ``TransferMachine``, which decides; this class
/// performs what it decides: makes each temporary file, inflates, hashes and writes chunks off the event loops, and
/// hands verified files to the ``Committer``, which syncs, publishes and only then answers DoneReceivingFile.
/// Messages go to a ``MessageStore``.
public final class FileReceiver {
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
    private var machine: TransferMachine
    private let messages: MessageStore
    private let decompressor: ChunkDecompressor
    /// Syncs, publishes and answers verified files; its ``Committer/run(sender:onBatch:)`` must run beside
    /// ``handle(_:session:)``.
    public let committer: Committer
    /// Direct links: what comes from one is answered on it, and its sender is the peer the hub introduced.
    private let direct: DirectListener?

    /// `index` remembers what was stored, for files sent again (unused with `alwaysStore`); `onPublished` is called
    /// after each file is published (the `--exec` hook).
    public init(
        configuration: ReceiverConfiguration, logger: Logger, receiverName: String = "", index: SpoolIndex? = nil,
        direct: DirectListener? = nil, onPublished: (@Sendable (Published) -> Void)? = nil
    ) throws {
        self.configuration = configuration
        self.logger = logger
        let index = configuration.alwaysStore ? nil : index
        machine = TransferMachine(policy: configuration.policy(receiverName: receiverName, index: index))
        messages = MessageStore(configuration: configuration, logger: logger)
        decompressor = try ChunkDecompressor()
        self.direct = direct
        committer = Committer(
            spool: configuration.spool, logger: logger, index: index, direct: direct, onPublished: onPublished)
    }

    /// Transfers in progress, counting verified files not yet answered.
    public var inProgress: Int { machine.open + committer.outstanding }

    /// New transfers are refused from now on (the daemon is stopping); those in progress may finish.
    public func stopTaking() { perform(machine.handle(.stopTaking)) }

    /// Handles one packet; sends receipts through `session`. A malformed packet from a peer costs that peer its
    /// transfer (an `invalid` receipt when the transfer can be told), never this session or anyone else's transfer.
    public func handle(_ packet: Packet, session: ClientSession) async throws {
        let from = packet.header.idFrom
        let event: TransferMachine.Event
        do {
            switch packet.header.type {
            case .fileStart:
                event = .start(try FileStart(tlv: packet.payload), from: from, sender: try await peer(from, session))
            case .fileChunk:
                event = .chunk(try FileChunk(packet), from: from)
            case .fileEnd:
                let end = try FileEnd(tlv: packet.payload)
                let aborted = packet.header.dataType == FileEnd.abort
                event = .end(
                    end, aborted: aborted, from: from, sender: aborted ? nil : try await peer(from, session))
            case .message:
                return try await messages.handle(packet, session: session)
            case .fileSeek:
                event = .seek(try FileSeek(tlv: packet.payload), from: from)
            case .clientDisconnecting:
                messages.forget(sender: from)
                event = .senderLeft(from)
            default:
                return
            }
        } catch let error as WireError {
            event = .malformed(
                packet.header.type, from: from, transferID: Self.transferID(in: packet), error: "\(error)")
        }
        var next: [TransferMachine.Event] = [event]
        while !next.isEmpty {
            for action in machine.handle(next.removeFirst()) {
                if let outcome = try await perform(action, session: session) { next.append(outcome) }
            }
        }
    }

    /// The sender of a packet: the peer the hub introduced on a direct link, else the hub's answer.
    private func peer(_ id: UInt32, _ session: ClientSession) async throws -> PeerRecord? {
        if let introduced = direct?.peer(id: id) { return introduced }
        return try await session.peer(id: id)
    }

    /// Sends an answer on the direct link it belongs to, else through the hub.
    private func reply(_ packet: Packet, _ session: ClientSession) async throws {
        for packet in direct?.send([packet]) ?? [packet] { try await session.send(packet) }
    }

    /// Removes every unfinished transfer (the connection ended, or the daemon stops).
    public func abandonAll(reason: String) { perform(machine.handle(.abandonAll(reason: reason))) }

    /// The transfer a file packet that did not decode belongs to, if that much can be read.
    package static func transferID(in packet: Packet) -> UInt32? {
        switch packet.header.type {
        case .fileChunk:
            return packet.payload.getInteger(at: packet.payload.readerIndex, as: UInt32.self)
        case .fileStart, .fileEnd, .fileSeek:
            var reader = TLVReader(packet.payload)
            while let field = try? reader.next() {
                if field.tag == 1, let id = try? field.integer(as: UInt32.self) { return id }
            }
            return nil
        default:
            return nil
        }
    }

    // MARK: actions

    /// Performs one action; returns the outcome the machine asked for, if it asked.
    private func perform(_ action: TransferMachine.Action, session: ClientSession) async throws -> TransferMachine
        .Event?
    {
        switch action {
        case .send(let receipt, let to):
            try await reply(receipt.packet(to: to), session)
        case .offer(let resume, let to):
            try await reply(resume.packet(to: to), session)
        case .create(let key, let tag, let partial):
            do {
                guard let partial else {
                    let (descriptor, path) = try configuration.spool.createTemporary(tag: tag)
                    return .created(key, TransferMachine.Temporary(descriptor: descriptor, path: path))
                }
                let spool = configuration.spool
                let maxAge = configuration.partialMaxAge
                let (descriptor, path, held, hasher) = try await NIOThreadPool.singleton.runIfActive {
                    // A long-running daemon ages out what nobody came back for here, too.
                    _ = spool.removePartials(olderThan: maxAge)
                    let (descriptor, path, held) = try spool.openPartial(partial.name)
                    if held == 0 { spool.writePartialRecord(partial.name, partial.record) }
                    // What was kept is read back for the hash; a file that cannot be read starts over.
                    guard held > 0, let hasher = try? sha256State(of: descriptor, upTo: held, path: path) else {
                        guard ftruncate(descriptor, 0) == 0 else {
                            let code = errno
                            close(descriptor)
                            throw SpoolError.writeFailed(code)
                        }
                        return (descriptor, path, UInt64(0), SHA256())
                    }
                    return (descriptor, path, held, hasher)
                }
                return .created(
                    key, TransferMachine.Temporary(descriptor: descriptor, path: path), held: held, hasher: hasher)
            } catch {
                return .createFailed(key, reason: "\(error)")
            }
        case .write(let key, let chunk, let temporary, let offset, let hasher):
            return await write(chunk, key: key, to: temporary, at: offset, hasher: hasher)
        case .commit(var commit):
            // What is published must be exactly what was checked: its size on disk too (a truncate that failed
            // would leave a stale tail).
            var info = stat()
            guard fstat(commit.temporary.descriptor, &info) == 0, UInt64(info.st_size) == commit.size else {
                perform([.discard(commit.temporary)])
                let receipt = FileReceipt(
                    transferID: commit.key.id, status: .storageFailed,
                    reason: "the stored bytes do not have the announced size")
                try await reply(receipt.packet(to: commit.key.from), session)
                return nil
            }
            if commit.temporary.path.hasPrefix(configuration.spool.partialDirectory + "/") {
                unlink(commit.temporary.path + ".json")
            }
            commit.temporary.path = configuration.spool.retirePartial(commit.temporary.path)
            if commit.container {
                switch await open(commit) {
                case .opened(let opened): commit = opened
                case .refused(let receipt):
                    try await reply(receipt.packet(to: commit.key.from), session)
                    return nil
                }
            }
            self.commit(commit)
        case .discard, .keep, .truncate, .log:
            perform([action])
        }
        return nil
    }

    private enum Opened {
        case opened(TransferMachine.Commit)
        case refused(FileReceipt)
    }

    /// Opens a sealed container the hub's store delivered into a new temporary file, off the event loops: what it holds
    /// is published only if it opens whole, signed by the key that queued it, under a safe name. The container goes
    /// either way; a failure is the receipt to send.
    private func open(_ commit: TransferMachine.Commit) async -> Opened {
        let spool = configuration.spool
        let key = configuration.sealing
        let maxMessageSize = configuration.maxMessageSize
        let maxFileSize = configuration.maxFileSize
        let container = commit.temporary
        defer { perform([.discard(container)]) }
        func failure(_ status: FileReceipt.Status, _ reason: String) -> Opened {
            logger.warning(
                "refused a sealed file",
                metadata: ["from": "\(commit.senderName)", "reason": "\(escapedForLog(reason))"])
            return .refused(FileReceipt(transferID: commit.key.id, status: status, reason: reason))
        }
        guard let key else { return failure(.refused, "the file is sealed to a key, and this receiver has none") }
        let outcome: Result<(TransferMachine.Temporary, SealedFileInfo, NodeID, UInt64, [UInt8]), any Error> =
            await Result.capturing {
                try await NIOThreadPool.singleton.runIfActive {
                    let (descriptor, path) = try spool.createTemporary(tag: "\(commit.key.from)-\(commit.key.id)-open")
                    let temporary = TransferMachine.Temporary(descriptor: descriptor, path: path)
                    do {
                        // Written through a write-only descriptor: read back by its name.
                        let input = Glibc.open(container.path, O_RDONLY | O_CLOEXEC)
                        guard input >= 0 else { throw SpoolError.writeFailed(errno) }
                        defer { close(input) }
                        let (info, senderID, size, sha256) = try SealedContainer.open(
                            from: input, to: descriptor, key: key, sender: commit.sender?.keyID)
                        return (temporary, info, senderID, size, sha256)
                    } catch {
                        Spool.removeTemporary(path)
                        close(descriptor)
                        throw error
                    }
                }
            }
        switch outcome {
        case .success(let (temporary, info, senderID, size, sha256)):
            var opened = commit
            opened.temporary = temporary
            opened.sentAs = info.name
            opened.message = info.message
            opened.size = size
            opened.sha256 = sha256
            opened.signedBy = senderID
            opened.announced = true
            opened.container = false
            // What it holds is checked as a transfer's announcement is: its name, then the receiver's limits.
            if let problem = SpoolName.problem(withPath: info.name) {
                perform([.discard(temporary)])
                return failure(
                    info.message ? .refused : .invalid,
                    "unsafe file name '\(escapedForLog(info.name.clipped))': \(problem)")
            }
            let limit = info.message ? UInt64(maxMessageSize) : maxFileSize
            if let limit, size > limit {
                perform([.discard(temporary)])
                return failure(
                    .refused,
                    info.message
                        ? "the message is larger than the receiver's limit of \(limit) bytes"
                        : "the file is \(size) bytes, more than the receiver's limit of \(limit)")
            }
            return .opened(opened)
        case .failure(let error as SealingFailure):
            return failure(error.kind == .refused ? .refused : .corrupt, error.description)
        case .failure(let error):
            return failure(.storageFailed, "\(error)")
        }
    }

    /// Performs the actions that need no I/O beyond closing a file: all that stopping and abandoning produce.
    private func perform(_ actions: [TransferMachine.Action]) {
        for action in actions {
            switch action {
            case .discard(let temporary):
                Spool.removeTemporary(temporary.path)
                close(temporary.descriptor)
                if temporary.path.hasPrefix(configuration.spool.partialDirectory + "/") {
                    unlink(temporary.path + ".json")
                }
            case .keep(let temporary):
                // Kept for a later attempt: what the kernel has is what the next attempt finds (after a power cut the
                // whole-file SHA-256 still catches anything lost).
                close(temporary.descriptor)
            case .truncate(let temporary):
                // Writes go at explicit offsets, and the size is checked before publishing: a truncate that failed
                // leaves a file that is refused, never a mixed one.
                _ = ftruncate(temporary.descriptor, 0)
            case .log(let level, let message, let metadata):
                logger.log(level: level, message, metadata: metadata)
            case .send, .offer, .create, .write, .commit:
                assertionFailure("\(action) needs a session")
            }
        }
    }

    /// Inflates (bounded by the transfer's chunk size), hashes and writes a chunk off the event loops.
    private func write(
        _ chunk: FileChunk, key: TransferMachine.Key, to temporary: TransferMachine.Temporary, at offset: UInt64,
        hasher: SHA256
    ) async -> TransferMachine.Event {
        let decompressor = self.decompressor
        let rawLength = Int(chunk.rawLength)
        let outcome: Result<SHA256, any Error> = await Result.capturing {
            try await NIOThreadPool.singleton.runIfActive {
                var hasher = hasher
                let bytes =
                    chunk.compressed ? try decompressor.decompress(chunk.data, rawLength: rawLength) : chunk.data
                try bytes.withUnsafeReadableBytes { pointer in
                    hasher.update(bufferPointer: pointer)
                    // At the machine's offset: the bytes on disk are exactly the ones hashed, whatever the file held.
                    try Spool.writeAll(temporary.descriptor, pointer, at: Int64(offset))
                }
                Spool.startWriteback(temporary.descriptor, wrote: Int64(bytes.readableBytes), at: Int64(offset))
                return hasher
            }
        }
        switch outcome {
        case .success(let updated):
            return .wrote(key, hasher: updated, raw: UInt64(rawLength), wire: UInt64(chunk.data.readableBytes))
        case .failure(let error as ChunkDecompressor.Failure):
            return .writeFailed(key, .corrupt, reason: error.description)
        case .failure(let error as SpoolError):
            return .writeFailed(
                key, .storageFailed, reason: error.isNoSpace ? "the receiver's disk is full" : error.description)
        case .failure(let error):
            return .writeFailed(key, .storageFailed, reason: "\(error)")
        }
    }

    /// Hands a verified file to the committer, which owns its descriptor from here.
    private func commit(_ commit: TransferMachine.Commit) {
        let hex = commit.sha256.hex
        let (sentAs, from, fromName, size, wireBytes) = (
            commit.sentAs, commit.key.from, commit.senderName, commit.size, commit.wireBytes
        )
        let fromKey: JSON = commit.sender?.keyID.map { .string($0.description) } ?? .null
        // A classic client's file carries no digest: only its size was checked (the SHA-256 is of what was stored).
        let classic = commit.sender?.isClassic == true
        let resumedFrom = commit.resumedFrom
        let message = commit.message
        let signedBy = commit.signedBy
        let compression = commit.compression == 1 ? "zlib" : "none"
        let receivedAt = WireClock.rfc3339(WireClock.now())
        // How the last bytes came: on a direct link (still open: its sender waits for this file's receipt) or through
        // the hub.
        let path = direct?.link(from: from) != nil ? "direct" : "relay"
        // A message queued with `send --queue` is stored as a message is, under a message's name.
        let name =
            commit.message ? MessageStore.fileName(from: from, id: commit.key.id, sender: commit.sender) : sentAs
        let file = Spool.Finished(
            descriptor: commit.temporary.descriptor, temporary: commit.temporary.path, name: name
        ) { storedAs in
            JSON.object([
                ("name", .string(storedAs)), ("sentAs", .string(sentAs)),
                (
                    "from",
                    .object([
                        ("id", .int(Int64(from))), ("name", .string(fromName)), ("key", fromKey),
                        ("wire", .string(classic ? "classic" : "tcpip")),
                    ])
                ),
                ("size", .int(Int64(size))), ("sha256", .string(hex)),
                ("verified", .string(classic ? "size" : "sha256")),
                ("compression", .string(compression)),
                ("wireBytes", .int(Int64(wireBytes))), ("resumedFrom", .int(Int64(resumedFrom))),
                ("receivedAt", .string(receivedAt)), ("kind", .string(message ? "message" : "file")),
                ("path", .string(path)),
                ("sealed", .bool(signedBy != nil)),
                ("signedBy", signedBy.map { .string($0.description) } ?? .null),
            ]).rendered()
        }
        committer.enqueue(
            Committer.Job(
                file: file, transferID: commit.key.id,
                // A message is indexed apart from files (see TransferMachine.indexName) and runs no --exec hook,
                // as a message sent as one does not.
                published: Published(
                    path: "", storedAs: "", sentAs: commit.message ? "\u{0}message/" + sentAs : sentAs,
                    from: commit.sender, fromID: from, size: size, sha256: hex),
                deduplicate: commit.announced, notify: !commit.message, sealed: signedBy != nil))
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
