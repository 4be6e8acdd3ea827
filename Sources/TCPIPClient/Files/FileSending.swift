import Crypto
import FoundationEssentials
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TCPIPCore
import TCPIPWire

#if canImport(Glibc)
    import Glibc
#endif

/// What `tcpipctl send-file` was asked to do.
public struct FileSendRequest: Sendable {
    public struct Source: Sendable {
        /// A path, or nil for stdin.
        public var path: String?
        /// The name the receiver is asked to store it under: a file name, or a relative path for a file in a tree.
        public var name: String
        /// Why this source cannot be sent (found before opening it, e.g. an unreadable directory).
        public var problem: String?
        /// Who queued it, when the hub's store delivers it (FileStart tag 9).
        public var origin: PeerRecord?
        /// A message sent as a file (`send --queue`; FileStart tag 10).
        public var message = false
        /// The file is a sealed container (the hub's store delivering one): FileStart tag 12.
        public var container = false

        public init(path: String?, name: String) {
            self.path = path
            self.name = name
        }
    }

    public var sources: [Source]
    public var recipients: [String]
    public var waitForPeer: Duration?
    /// A recipient that is not connected gets the files through the hub's store (`send-file --queue`; one recipient).
    public var queue = false
    /// zlib level for per-chunk compression, or nil for none.
    public var compressionLevel: Int32?
    /// Original bytes per chunk.
    public var chunkSize = 512 << 10
    public var timeout: Duration = .seconds(30)
    /// Whether the files may go point to point to a single receiver (``DirectMode``).
    public var direct: DirectMode = .auto
    /// The first transfer id; the others follow. A fallback to the hub numbers its transfers apart from the direct
    /// attempt's, so a late receipt of that attempt cannot settle one of them.
    public var firstTransferID: UInt32 = 1
    /// Called with (file name, bytes so far, total if known) while sending, for progress display.
    public var progress: (@Sendable (String, UInt64, UInt64?, Bool) -> Void)?
    /// Checks each connected recipient before anything is sent to it (its key against known_peers or `--to-key`);
    /// not the hub's store standing in for one that is away (the store proves the hub's key, not the receiver's).
    public var checkRecipient: (@Sendable (PeerRecord) throws -> Void)?
    /// This node's key: files to receivers that proved keys are sealed to them and signed with it. Nil: the
    /// session's (``ClientConfiguration/sealing``).
    public var sealing: SealingKey?

    /// The key it seals with in `session`: its own, else the session's.
    func sealing(in session: ClientSession) -> SealingKey? { sealing ?? session.configuration.sealing }

    public init(sources: [Source], recipients: [String]) {
        self.sources = sources
        self.recipients = recipients
    }

    /// Opens every input up front. An input that cannot be read is `.failure` (it gets a 66 result of its own and the
    /// others are sent), unless `allOrNothing`: then the first one fails the whole request (66) before anything is
    /// sent.
    public func openInputs(allOrNothing: Bool = false) throws -> [Result<Int32, TCPIPError>] {
        var opened: [Result<Int32, TCPIPError>] = []
        for source in sources {
            let input = Self.open(source)
            if allOrNothing, case .failure(let error) = input {
                for case .success(let descriptor) in opened where descriptor > 0 { close(descriptor) }
                throw error
            }
            opened.append(input)
        }
        return opened
    }

    /// Opens one input: stdin is descriptor 0; a source found unreadable before is `.failure`.
    static func open(_ source: Source) -> Result<Int32, TCPIPError> {
        guard let path = source.path else { return .success(0) }
        if let problem = source.problem { return .failure(TCPIPError(.noInput, problem)) }
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            return .failure(TCPIPError(.noInput, "cannot read \(path): \(String(cString: strerror(errno)))"))
        }
        var info = stat()
        if fstat(fd, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR {
            close(fd)
            return .failure(TCPIPError(.noInput, "\(path) is a directory"))
        }
        return .success(fd)
    }
}

/// Streams files to receivers chunk by chunk (read, hash, compress, send, with a bounded amount in flight) and
/// collects DoneReceivingFile from each.
public enum FileSending {
    /// Sends `request`'s files. `descriptors` are its inputs opened up front (``FileSendRequest/openInputs(allOrNothing:)``,
    /// one per source); nil opens each when its turn comes, so that a long-lived sender (the hub's store) holds one
    /// file open at a time. Every descriptor given is closed exactly once, sent or not (see ``SendInputs``).
    public static func run(
        _ request: FileSendRequest, descriptors: [Result<Int32, TCPIPError>]?, session: ClientSession,
        logger: Logger = Logger(label: "tcpipctl")
    ) async throws -> [FileResult] {
        let inputs = SendInputs(descriptors)
        defer { inputs.closeRest() }
        var request = request
        request.sealing = request.sealing(in: session)
        let recipients = try await resolveReceivers(request, session: session)
        // Point to point when there is one receiver (several share one upload through the hub's group routing) and
        // the files are for it, not for the hub's store.
        guard request.direct != .never, recipients.count == 1, let peer = recipients.first,
            peer.role == ClientSession.receiverRole
        else {
            return try await relay(request, inputs: inputs, session: session, recipients: recipients)
        }
        let tracker = FileTracker(recipients: recipients.map(\.id))
        var broken: (any Error)?
        do {
            try await DirectDialer.run(to: peer, hub: session, logger: logger) { link in
                try await keepingAlive(
                    session,
                    // A receipt the receiver sent through the hub (its link to us broke after the file was stored) still
                    // settles the file, so the fallback does not send it again.
                    receipts: { packet in
                        guard packet.header.type == .doneReceivingFile, packet.header.idFrom == peer.id,
                            let receipt = try? FileReceipt(tlv: packet.payload)
                        else { return }
                        tracker.receipt(receipt, from: peer.id, now: WireClock.now())
                    }
                ) {
                    try await transfer(request, inputs: inputs, session: link, recipients: recipients, tracker: tracker)
                }
            }
        } catch let error as DirectDialer.Unavailable {
            if request.direct == .only {
                throw TCPIPError(.temporary, "no direct link to \(escapedForLog(peer.name)): \(error)")
            }
            logger.debug("through the hub", metadata: ["why": "\(error)"])
            return try await relay(request, inputs: inputs, session: session, recipients: recipients)
        } catch {
            broken = error
        }
        var results = tracker.results()
        for index in results.indices { results[index].route = .direct }
        if broken == nil, tracker.failure == nil, results.allSatisfy({ !$0.retryable }) { return results }
        let why = tracker.failure?.message ?? broken.map { "\($0)" } ?? "no answer"
        logger.info("the direct link broke; the rest goes through the hub", metadata: ["why": "\(why)"])
        // What was not settled goes again through the hub (a resumable file resumes where the receiver's part ends),
        // except a stream once begun (stdin, a pipe, a FIFO): it cannot be read twice.
        func readableAgain(_ result: FileResult) -> Bool {
            var info = stat()
            guard let path = result.path, stat(path, &info) == 0 else { return false }
            return (info.st_mode & S_IFMT) == S_IFREG
        }
        let settled = Dictionary(
            results.filter { !$0.retryable || !readableAgain($0) }.map { result -> (UInt32, FileResult) in
                guard result.retryable else { return (result.transferID, result) }
                var result = result
                result.status = .left
                result.reason = "the direct link broke and a stream cannot be read twice: \(why)"
                return (result.transferID, result)
            },
            uniquingKeysWith: { a, _ in a })
        if request.direct == .only {
            // No fallback: what the direct link did not settle is left (75), files it never reached included.
            var byID = Dictionary(results.map { ($0.transferID, $0) }, uniquingKeysWith: { a, _ in a })
            for (index, source) in request.sources.enumerated() {
                let id = request.firstTransferID + UInt32(index)
                var result =
                    byID[id]
                    ?? FileResult(
                        name: source.name, path: source.path, recipient: peer, startedAt: WireClock.now(),
                        transferID: id)
                if result.retryable {
                    result.status = .left
                    result.reason = "the direct link broke: \(why)"
                    result.route = .direct
                }
                byID[id] = result
            }
            return byID.keys.sorted().compactMap { byID[$0] }
        }
        var again = request
        again.sources = []
        var positions: [Int] = []
        for (index, source) in request.sources.enumerated()
        where settled[request.firstTransferID + UInt32(index)] == nil {
            again.sources.append(source)
            positions.append(index)
        }
        again.firstTransferID = request.firstTransferID + 0x4000_0000
        // Inputs not reached yet keep the descriptors opened for them (a pipe named on the command line cannot be
        // opened twice); those begun, all regular files, are opened again.
        let handed = inputs.handOver(positions, sources: request.sources)
        inputs.closeRest()
        var relayed: [FileResult] = []
        if !again.sources.isEmpty {
            do {
                relayed = try await relay(again, inputs: SendInputs(handed), session: session, recipients: recipients)
            } catch let error as TCPIPError where error.kind == .temporary || error.kind == .unavailable {
                // The hub failed too: what the direct link settled stands, the rest is left (75).
                relayed = again.sources.enumerated().map { offset, source in
                    var result = FileResult(
                        name: source.name, path: source.path, recipient: peer, startedAt: WireClock.now(),
                        transferID: again.firstTransferID + UInt32(offset))
                    result.status = .left
                    result.reason = "the direct link broke (\(why)), and then the hub: \(error.message)"
                    return result
                }
            }
        }
        // In the order of the sources: each file's direct result if it was settled there, else its relayed one.
        var byIndex: [Int: [FileResult]] = [:]
        for result in relayed {
            let offset = Int(result.transferID) - Int(again.firstTransferID)
            guard positions.indices.contains(offset) else { continue }
            byIndex[positions[offset], default: []].append(result)
        }
        for (id, result) in settled { byIndex[Int(id) - Int(request.firstTransferID), default: []].append(result) }
        return byIndex.keys.sorted().flatMap { byIndex[$0] ?? [] }
    }

    /// Sends through the hub.
    private static func relay(
        _ request: FileSendRequest, inputs: SendInputs, session: ClientSession, recipients: [PeerRecord]
    ) async throws -> [FileResult] {
        let tracker = FileTracker(recipients: recipients.map(\.id))
        try await transfer(request, inputs: inputs, session: session, recipients: recipients, tracker: tracker)
        if let failure = tracker.failure { throw failure }
        return tracker.results()
    }

    /// Runs `body` while answering the hub's pings on `session` from another task: a sender busy on a direct link
    /// must not be dropped by the hub as silent (the receiver would then drop its transfers). What else arrives
    /// meanwhile goes to `receipts`, then is dropped.
    static func keepingAlive<Result: Sendable>(
        _ session: ClientSession, receipts: @escaping @Sendable (Packet) -> Void = { _ in },
        _ body: () async throws -> Result
    ) async throws -> Result {
        let hub = Unchecked(session)
        let stop = NIOLockedValueBox(false)
        let pump = Task {
            while !stop.withLockedValue({ $0 }) {
                guard let packet = try? await hub.value.next() else { return }
                receipts(packet)
            }
        }
        func end() async {
            stop.withLockedValue { $0 = true }
            session.sender.wake()
            await pump.value
        }
        do {
            let result = try await body()
            await end()
            return result
        } catch {
            await end()
            throw error
        }
    }

    /// Sends the files to `recipients` on `session` and collects their receipts into `tracker`.
    private static func transfer(
        _ request: FileSendRequest, inputs: SendInputs, session: ClientSession, recipients: [PeerRecord],
        tracker: FileTracker
    ) async throws {
        let sender = session.sender
        try await sender.send(
            Recipients(ids: recipients.map(\.id)).packet(PacketHeader(type: .recipients, maskTo: .hub)))
        try await ReceiptCollector.run(
            session: session, tracker: tracker, timeout: request.timeout, receiptType: .doneReceivingFile,
            produce: {
                try await sendAll(request, inputs: inputs, recipients: recipients, sender: sender, tracker: tracker)
            },
            receipt: { packet, now in
                // A malformed receipt (from any peer) is ignored: the file then waits for a good one or times out.
                guard let receipt = try? FileReceipt(tlv: packet.payload) else { return }
                tracker.receipt(receipt, from: packet.header.idFrom, now: now)
            },
            other: { packet in
                guard packet.header.type == .fileResume, let resume = try? FileResume(tlv: packet.payload) else {
                    return
                }
                tracker.offer(resume, from: packet.header.idFrom)
            }
        )
    }

    /// The recipients, each a connected receiver. A peer that is not a receiver (a listener, a plain client) would
    /// refuse every file: say so at once (77), with nothing sent, as `send` does for a peer that takes no messages.
    public static func resolveReceivers(_ request: FileSendRequest, session: ClientSession) async throws -> [PeerRecord]
    {
        // --dry-run comes here directly, and must refuse what a real run would.
        let sealing = request.sealing(in: session)
        let recipients: [PeerRecord]
        do {
            recipients = try await MessageSending.resolveRecipients(
                request.recipients, all: false, waitForPeer: request.waitForPeer, session: session,
                check: request.checkRecipient, sealed: sealing != nil
            )
        } catch let error as TCPIPError where request.queue && error.kind == .unknownPeer {
            guard request.recipients.count == 1, let name = request.recipients.first else { throw error }
            guard var store = try await session.lookUpStore() else {
                throw TCPIPError.unknownPeer("\(error.message), and the hub keeps no store to queue for it")
            }
            // The store stands in for the receiver: its answers are about the file queued for `name`.
            store.name = name
            if sealing != nil {
                // What is queued is sealed to the receiver's key, which the store saw it register with; the sender's
                // pins (known_peers, --to-key) are checked against it as they are for a receiver that is connected.
                let entries = try await StoreQuerying.run(
                    .receiver, all: false, name: name, session: session, timeout: request.timeout)
                struct Known: Decodable {
                    var key: String?
                    var publicKey: String?
                }
                guard let entry = entries.first else {
                    throw TCPIPError.unknownPeer(
                        "\(error.message), and no receiver of that name is known to the hub's store")
                }
                guard let known = try? JSONDecoder().decode(Known.self, from: Data(entry.utf8)),
                    let id = known.key.flatMap(NodeID.init),
                    let spki = known.publicKey.flatMap({ Data(base64Encoded: $0) }),
                    SealingRecipient(id: id, spki: Array(spki)) != nil
                else {
                    throw TCPIPError(
                        .permissionDenied,
                        "the hub's store knows no key for '\(escapedForLog(name))' (it never registered with one while "
                            + "the store was on): nothing to seal the file to; nothing was queued")
                }
                store.key = id.bytes
                store.publicKey = Array(spki)
            }
            // Without a key (a plaintext link) the record proves none: a pin (--to-key, known_peers) refuses it.
            try request.checkRecipient?(store)
            return [store]
        }
        // One upload goes to every receiver: sealed to all of their keys, or to none. A receiver with a key refuses a
        // file that is not sealed, and a classic client has no key to seal to: they take their files separately.
        // (A peer with a key ID came with its public key: resolveRecipients refused any other when sealing.)
        if sealing != nil, recipients.contains(where: { $0.keyID != nil }),
            let keyless = recipients.first(where: { $0.keyID == nil })
        {
            throw TCPIPError.usage(
                "'\(escapedForLog(keyless.name))' proves no key to seal to, and the other receivers take only sealed "
                    + "files: send it its files separately")
        }
        // A classic client takes files too (the hub's classic listener speaks for it).
        for peer in recipients where peer.role != ClientSession.receiverRole && !peer.isClassic {
            throw TCPIPError(
                .permissionDenied,
                "\(escapedForLog(peer.name)) does not take files: it is a \(escapedForLog(peer.role)), not a receiver")
        }
        return recipients
    }

    /// Files at least this large are sent resumable (to one receiver): the round trip for FileResume costs them
    /// nothing that matters.
    public static let resumableSize = 4 << 20

    /// Whether a file's status says it changed: its size, modification or change time, or inode.
    static func changed(_ before: stat, _ after: stat) -> Bool {
        before.st_size != after.st_size || before.st_ino != after.st_ino
            || before.st_mtim.tv_sec != after.st_mtim.tv_sec || before.st_mtim.tv_nsec != after.st_mtim.tv_nsec
            || before.st_ctim.tv_sec != after.st_ctim.tv_sec || before.st_ctim.tv_nsec != after.st_ctim.tv_nsec
    }

    /// A small regular file whole (`size` bytes, or what is there: one byte more shows it grew), with `headroom` free
    /// in front for the chunk's header.
    static func readSmall(_ descriptor: Int32, size: Int, headroom: Int, path: String) throws -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: headroom + size + 1)
        buffer.moveWriterIndex(forwardBy: headroom)
        buffer.moveReaderIndex(forwardBy: headroom)
        while buffer.readableBytes <= size {
            let held = buffer.readableBytes
            let got = buffer.withUnsafeMutableWritableBytes {
                pread(descriptor, $0.baseAddress, size + 1 - held, off_t(held))
            }
            if got < 0 && errno == EINTR { continue }
            guard got >= 0 else {
                throw TCPIPError(.noInput, "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if got == 0 { break }
            buffer.moveWriterIndex(forwardBy: got)
        }
        return buffer
    }

    /// The SHA-256 state over the first `count` bytes of a file, or the whole file when nil, on the thread pool.
    static func hashState(of descriptor: Int32, upTo count: UInt64? = nil, path: String) async throws -> SHA256 {
        try await NIOThreadPool.singleton.runIfActive { try sha256State(of: descriptor, upTo: count, path: path) }
    }

    private static func sendAll(
        _ request: FileSendRequest, inputs: SendInputs, recipients: [PeerRecord], sender: PacketSender,
        tracker: FileTracker
    ) async throws {
        // A classic client takes only uncompressed files: with one among the recipients, nothing is compressed.
        let level = recipients.contains(where: \.isClassic) ? nil : request.compressionLevel
        var compression = try level.map { try CompressionPipeline(level: $0) }
        let group = PacketHeader(type: .fileStart, maskTo: .group)
        var outbox = Outbox(sender: sender, limit: request.chunkSize)
        // Sending to the hub's store (`--queue`): each file names the receiver it is for.
        let queueFor = recipients.count == 1 && recipients[0].role == ClientSession.storeRole ? recipients[0].name : nil
        // Sealed end to end when this side has a key and every receiver proved one the hub could name (classic
        // clients and plaintext links have none: nothing to seal to).
        let sealTo: [SealingRecipient]? = request.sealing.flatMap { _ in
            guard queueFor == nil else { return nil }
            let keys = recipients.compactMap(SealingRecipient.init)
            return keys.count == recipients.count && !keys.isEmpty ? keys : nil
        }
        // Queued for a receiver that is away: each file is sealed whole to its key and goes as a sealed container,
        // which the store keeps and delivers without being able to read or change it (its name stays visible, for
        // `tcpipctl queue` and `receipts`; the name the receiver publishes is the sealed one).
        let containerFor: SealingRecipient? =
            queueFor == nil
            ? nil
            : request.sealing.flatMap { _ in
                recipients.first.flatMap(SealingRecipient.init)
            }
        files: for (index, source) in request.sources.enumerated() {
            let transferID = request.firstTransferID + UInt32(index)
            var descriptor: Int32
            switch inputs.take(index, source) {
            case .success(let opened): descriptor = opened
            case .failure(let error):
                tracker.unreadable(
                    transferID, name: source.name, path: source.path, recipients: recipients, reason: error.message,
                    now: WireClock.now())
                continue
            }
            defer { if descriptor > 0 { close(descriptor) } }
            if let containerFor, let own = request.sealing {
                do {
                    let input = descriptor
                    let info = SealedFileInfo(
                        name: source.name, sha256: nil, message: source.message, senderSPKI: own.spki)
                    // Records of at least 64 KiB whatever the wire's chunks: their tags and framing stay small beside
                    // what they hold (a receiver allows for that much over its message limit).
                    let chunkSize = max(request.chunkSize, 64 << 10)
                    descriptor = try await NIOThreadPool.singleton.runIfActive {
                        let output = try MessageQueueing.unlinkedTemporary("tcpip-sealed")
                        do {
                            _ = try SealedContainer.seal(
                                from: input, to: output, recipients: [containerFor], info: info, signer: own,
                                chunkSize: chunkSize)
                            _ = lseek(output, 0, SEEK_SET)
                            return output
                        } catch {
                            close(output)
                            throw error
                        }
                    }
                    if input > 0 { close(input) }
                } catch {
                    tracker.begin(
                        transferID, name: source.name, path: source.path, recipients: recipients, now: WireClock.now())
                    tracker.failed(transferID, .unreadable, reason: "cannot seal: \(error)", now: WireClock.now())
                    continue
                }
            }
            var info = stat()
            let size: UInt64? =
                fstat(descriptor, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG ? UInt64(info.st_size) : nil
            tracker.begin(
                transferID, name: source.name, path: source.path, recipients: recipients, now: WireClock.now())
            // A regular file is hashed first, so the receiver can tell at FileStart that it already has it (a retried
            // job re-sends everything). stdin cannot be read twice: it is never deduplicated.
            var announced: [UInt8]?
            // A small regular file (one chunk) is read once, here, and hashed and sent from memory: two trips to the
            // thread pool and a 1 MiB hashing buffer per file made 10,000 files of 4 KiB three times slower than
            // rsync. A read of one chunk from a local file does not hold the task long.
            var whole: ByteBuffer?
            if let size, size <= UInt64(request.chunkSize), queueFor == nil {
                do {
                    let bytes = try Self.readSmall(
                        descriptor, size: Int(size), headroom: FileChunk.headerSize, path: source.path ?? source.name)
                    announced = bytes.withUnsafeReadableBytes { Array(SHA256.hash(data: $0)) }
                    whole = bytes
                } catch let error as TCPIPError {
                    tracker.failed(transferID, .unreadable, reason: error.message, now: WireClock.now())
                    continue
                }
            } else if let size, queueFor != nil || recipients.count > 1 || size < UInt64(Self.resumableSize) {
                // A large file to one receiver is not read twice: it is hashed as it is sent, and the receiver offers
                // what it holds of it (a part, or a stored file of the same name and size) for this side to check.
                // Others are hashed first, so the receiver can say at FileStart that it has them already.
                do {
                    announced = Array(
                        try await Self.hashState(of: descriptor, path: source.path ?? source.name).finalize())
                } catch let error as TCPIPError {
                    tracker.failed(transferID, .unreadable, reason: error.message, now: WireClock.now())
                    continue
                }
            }
            // The file changed while it was read (a log still being written): that file is aborted and reported
            // (retry later), the others go on.
            // Tells the receivers to drop what they have of this file.
            func abort(_ reason: String) async throws {
                let end = FileEnd(transferID: transferID, size: 0, sha256: [], reason: reason)
                try await outbox.add(
                    Packet(
                        header: PacketHeader(type: .fileEnd, dataType: FileEnd.abort, maskTo: .group),
                        payload: end.encoded()))
            }
            func abandonChanged() async throws {
                _ = try await compression?.drain()
                try await abort("the file changed while being sent")
                tracker.failed(
                    transferID, .changed, reason: "\(source.path ?? source.name) changed while being sent",
                    now: WireClock.now())
            }
            // A file big enough to be worth it, to one receiver, is resumable: the receiver first says what it holds of
            // it from an earlier attempt (FileResume), and the chunks start there if this file has the same bytes.
            // To the hub's store always: it says no (unknown receiver, full store) before any chunk crosses.
            let resumable =
                size != nil && recipients.count == 1
                && ((size ?? 0) >= UInt64(Self.resumableSize) || queueFor != nil)
            var start = FileStart(
                transferID: transferID, name: source.name, size: size, chunkSize: UInt32(request.chunkSize),
                compression: compression == nil ? 0 : 1, sha256: announced, resumable: resumable
            )
            start.queueFor = queueFor
            start.origin = source.origin
            start.message = source.message
            start.container = source.container
            if containerFor != nil { start.container = true }
            var sealer: FileSealer?
            if let sealTo, let own = request.sealing {
                do {
                    let info = SealedFileInfo(
                        name: source.name, sha256: announced, message: source.message, senderSPKI: own.spki)
                    let made = try FileSealer(recipients: sealTo, info: info, signer: own)
                    // The name, digest and kind travel inside; the hub sees a placeholder.
                    start.sealed = made.header
                    start.name = "sealed"
                    start.sha256 = nil
                    start.message = false
                    sealer = made
                } catch {
                    tracker.failed(transferID, .unreadable, reason: "cannot seal: \(error)", now: WireClock.now())
                    continue
                }
            }
            // A chunk as it goes out: sealed in order when the transfer is.
            func chunkPacket(_ data: ByteBuffer, compressed: Bool, rawLength: UInt32) throws -> Packet {
                guard sealer != nil else {
                    return FileChunk(transferID: transferID, rawLength: rawLength, compressed: compressed, data: data)
                        .packet(group)
                }
                let sealed = try sealer!.seal(data, compressed: compressed, rawLength: rawLength)
                return FileChunk(
                    transferID: transferID, rawLength: rawLength, compressed: compressed, data: sealed, sealed: true
                ).packet(group)
            }
            try await outbox.add(start.packet(group))
            let reader = InputReader(descriptor: descriptor, headroom: FileChunk.headerSize)
            // Hashed once: a regular file before sending (the digest announced) or, a large one to one receiver, while
            // sending, like a stream. Whether a regular file changed meanwhile is told by its status at the end (size,
            // times, inode), not by hashing every byte again; the receiver checks the digest over what it got.
            var hasher = SHA256()
            var sent: UInt64 = 0
            var resumedFrom: UInt64 = 0
            if resumable, let size {
                try await outbox.flush()
                tracker.awaitingOffer(transferID, now: WireClock.now())
                guard let offer = await tracker.nextOffer(transferID) else {
                    // Refused, already stored, its receiver gone, or no answer: whatever the receiver holds is closed.
                    try await abort("no resume offer")
                    continue
                }
                var seek: UInt64 = 0
                if offer.offset > 0, offer.offset <= size, let prefix = offer.prefixSHA256,
                    let held = try? await Self.hashState(
                        of: descriptor, upTo: offer.offset, path: source.path ?? source.name),
                    Array(held.finalize()) == prefix
                {
                    seek = offer.offset
                    // Hashed as it is sent: from the state over what the receiver holds.
                    hasher = held
                }
                try await outbox.add(
                    FileSeek(transferID: transferID, offset: seek).packet(
                        PacketHeader(type: .fileSeek, maskTo: .group)))
                guard lseek(descriptor, off_t(seek), SEEK_SET) >= 0 else {
                    try await abort("cannot seek")
                    tracker.failed(
                        transferID, .unreadable, reason: "cannot seek in \(source.path ?? source.name)",
                        now: WireClock.now())
                    continue
                }
                sent = seek
                resumedFrom = seek
            }
            // The first report says where this file starts (0, or where a resume picks up): rates count from there.
            request.progress?(source.name, sent, size, false)
            var wire: UInt64 = 0
            var aborted = false
            var atEnd = false
            while !atEnd {
                // A pipe may make the read wait: what is queued goes first, so the receiver hears of the transfer.
                if size == nil { try await outbox.flush() }
                var (bytes, end): (ByteBuffer?, Bool)
                if let read = whole {
                    whole = nil
                    (bytes, end) = (read, true)
                } else {
                    (bytes, end) = try await reader.readFull(upTo: request.chunkSize)
                }
                atEnd = end
                // `consume`: the chunk's buffer must have one owner when its header is written into the headroom,
                // or the write copies the whole chunk (9 % of the sender's CPU before this).
                guard let chunk = consume bytes else { break }
                guard tracker.wanted(transferID) else {
                    aborted = true
                    break
                }
                if announced == nil { chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) } }
                let rawLength = UInt32(chunk.readableBytes)
                sent += UInt64(chunk.readableBytes)
                if compression != nil {
                    for ready in try await compression!.submit(chunk) {
                        wire += UInt64(ready.data.readableBytes)
                        try await outbox.add(
                            chunkPacket(ready.data, compressed: ready.compressed, rawLength: ready.rawLength))
                    }
                } else {
                    wire += UInt64(chunk.readableBytes)
                    try await outbox.add(chunkPacket(consume chunk, compressed: false, rawLength: rawLength))
                }
                request.progress?(source.name, sent, size, false)
                if let size, sent > size {
                    // The file grew while being sent: what the receiver checks would not match what was announced.
                    // (Chunks still being compressed need not go: the receiver drops the transfer at the abort.)
                    try await abandonChanged()
                    continue files
                }
            }
            for ready in try await compression?.drain() ?? [] {
                wire += UInt64(ready.data.readableBytes)
                try await outbox.add(chunkPacket(ready.data, compressed: ready.compressed, rawLength: ready.rawLength))
            }
            let digest = announced ?? Array(hasher.finalize())
            var after = stat()
            if size != nil, !aborted, fstat(descriptor, &after) != 0 || Self.changed(info, after) {
                // Changed after it was hashed: what was announced may not match what was sent.
                try await abandonChanged()
                continue
            }
            var end = FileEnd(
                transferID: transferID, size: sent, sha256: digest, reason: aborted ? "no receiver wants it" : nil)
            if let sealer, !aborted {
                // The size and digest go sealed after the last chunk, signed: the hub sees neither.
                end.sealed = try sealer.trailer(size: sent, sha256: digest)
                end.size = 0
                end.sha256 = []
            }
            try await outbox.add(
                Packet(
                    header: PacketHeader(
                        type: .fileEnd, dataType: aborted ? FileEnd.abort : FileEnd.complete, maskTo: .group),
                    payload: end.encoded())
            )
            request.progress?(source.name, sent, size, true)
            tracker.ended(
                transferID, bytes: sent, wireBytes: wire, sha256: digest.hex,
                resumedFrom: resumedFrom, now: WireClock.now())
            if tracker.nobodyLeft { break }
        }
        try await outbox.flush()
        try await sender.drain()
    }
}

/// A value one task hands to another while it waits for it (the hub's session while a direct link runs).
final class Unchecked<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// The inputs of one send, given open or opened when their turn comes. Each descriptor is closed exactly once: by the
/// send when it is done with that file, or, for those it never reached (the receiver left, the link broke), by
/// ``closeRest()`` when the send ends. After that the producer, which may still be running (it is cancelled, not
/// awaited), gets no descriptor: a long-lived sender (the hub's store) must neither leak one nor close one twice.
final class SendInputs: Sendable {
    private struct State {
        /// Descriptors given and not yet taken, by source index.
        var untaken: [Int: Int32] = [:]
        var ended = false
    }
    private let given: [Result<Int32, TCPIPError>]?
    private let state: NIOLockedValueBox<State>

    init(_ given: [Result<Int32, TCPIPError>]?) {
        self.given = given
        var state = State()
        for (index, input) in (given ?? []).enumerated() {
            if case .success(let descriptor) = input, descriptor > 0 { state.untaken[index] = descriptor }
        }
        self.state = NIOLockedValueBox(state)
    }

    /// Source `index`'s input, now the caller's to close; a failure once the send has ended.
    func take(_ index: Int, _ source: FileSendRequest.Source) -> Result<Int32, TCPIPError> {
        let ended = TCPIPError(.noInput, "\(source.name): the send ended before it")
        guard let given else {
            guard !state.withLockedValue({ $0.ended }) else { return .failure(ended) }
            return FileSendRequest.open(source)
        }
        guard index < given.count else { return .failure(ended) }
        guard case .success(let descriptor) = given[index], descriptor > 0 else { return given[index] }
        // Only the first taker gets it, and only before closeRest() closed it.
        return state.withLockedValue { $0.untaken.removeValue(forKey: index) }.map { .success($0) } ?? .failure(ended)
    }

    /// The inputs of sources `indices`, for a send of those sources alone (in that order): descriptors never taken are
    /// handed over (no longer this one's to close), failures stay failures, and inputs already taken are opened again
    /// by path. Nil when this send opens each input on its turn: the new one does too.
    func handOver(_ indices: [Int], sources: [FileSendRequest.Source]) -> [Result<Int32, TCPIPError>]? {
        guard let given else { return nil }
        return indices.map { index in
            guard index < given.count, index < sources.count else {
                return .failure(TCPIPError(.noInput, "no such input"))
            }
            if case .failure = given[index] { return given[index] }
            if let descriptor = state.withLockedValue({ $0.untaken.removeValue(forKey: index) }) {
                return .success(descriptor)
            }
            if case .success(0) = given[index] { return given[index] }
            return FileSendRequest.open(sources[index])
        }
    }

    /// Closes every descriptor given that was never taken; later takes get none.
    func closeRest() {
        let rest = state.withLockedValue { state in
            state.ended = true
            defer { state.untaken = [:] }
            return Array(state.untaken.values)
        }
        for descriptor in rest { close(descriptor) }
    }
}

/// Compresses chunks on NIO's thread pool, several at once (one compressor each), and hands them back in order: the
/// sender hashes and reads while zlib runs on the other cores.
private struct CompressionPipeline {
    struct Ready {
        var data: ByteBuffer
        var compressed: Bool
        var rawLength: UInt32
    }

    private let compressors: [ChunkCompressor]
    private var pending: [Task<Ready, any Error>] = []
    private var submitted = 0

    init(level: Int32) throws {
        compressors = try (0..<max(2, min(4, System.coreCount))).map { _ in try ChunkCompressor(level: level) }
    }

    /// Starts compressing `chunk`; returns the chunks that are done, oldest first, waiting for the oldest only when
    /// every compressor is busy.
    mutating func submit(_ chunk: ByteBuffer) async throws -> [Ready] {
        var ready: [Ready] = []
        if pending.count == compressors.count { ready.append(try await pending.removeFirst().value) }
        // The compressor this chunk gets was last used by the chunk just awaited (or none).
        let compressor = compressors[submitted % compressors.count]
        submitted += 1
        pending.append(
            Task {
                let rawLength = UInt32(chunk.readableBytes)
                let packed = try await NIOThreadPool.singleton.runIfActive { compressor.compress(chunk) }
                return packed.map { Ready(data: $0, compressed: true, rawLength: rawLength) }
                    ?? Ready(data: chunk, compressed: false, rawLength: rawLength)
            })
        return ready
    }

    /// Waits for every chunk still being compressed; returns them in order.
    mutating func drain() async throws -> [Ready] {
        var ready: [Ready] = []
        while !pending.isEmpty { ready.append(try await pending.removeFirst().value) }
        return ready
    }
}

/// Packets on their way out, sent together once they add up to `limit` bytes: a small file's FileStart, chunk and
/// FileEnd leave with the next files' in one send (one trip to the event loop), not three sends per file, while a
/// full chunk still leaves at once.
private struct Outbox {
    let sender: PacketSender
    let limit: Int
    private var packets: [Packet] = []
    private var bytes = 0

    init(sender: PacketSender, limit: Int) {
        self.sender = sender
        self.limit = limit
    }

    mutating func add(_ packet: Packet) async throws {
        packets.append(packet)
        bytes += packet.wireSize
        if bytes >= limit { try await flush() }
    }

    mutating func flush() async throws {
        guard !packets.isEmpty else { return }
        try await sender.send(contentsOf: packets)
        packets.removeAll(keepingCapacity: true)
        bytes = 0
    }
}
