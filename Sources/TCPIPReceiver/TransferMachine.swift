import Crypto
import Logging
import TCPIPClient
import TCPIPCore
import TCPIPWire

/// The receiver's file transfers as a value: packets and the outcomes of its own requests go in as ``Event``s,
/// what to do comes out as ``Action``s. It does no I/O and keeps no descriptor of its own, so every path — a refusal,
/// a chunk past the announced size, a malformed packet, a sender that leaves mid-file — is tested and fuzzed without
/// sockets or disks (``FileReceiver`` drives it for the daemon, the `receiver` fuzz target for the fuzzer).
///
/// The driver performs each action in order and answers ``Action/create(_:tag:)`` and ``Action/write(_:_:to:at:hasher:)``
/// with their outcome (``Event/created(_:_:)`` or ``Event/createFailed(_:reason:)``, ``Event/wrote(_:hasher:raw:wire:)``
/// or ``Event/writeFailed(_:_:reason:)``) before it hands in the next packet. Two promises hold whatever arrives:
/// ``Action/commit(_:)`` names a file whose SHA-256, computed over the bytes written, equals both the digest the
/// sender announced at the start (if any) and the one in its FileEnd; and it names a safe relative path, so the
/// file lands inside the spool.
public struct TransferMachine: Sendable {
    public struct Key: Hashable, Sendable {
        public var from: UInt32
        public var id: UInt32

        public init(from: UInt32, id: UInt32) {
            self.from = from
            self.id = id
        }
    }

    /// A temporary file the driver made for one transfer.
    public struct Temporary: Hashable, Sendable {
        public var descriptor: Int32
        public var path: String

        public init(descriptor: Int32, path: String) {
            self.descriptor = descriptor
            self.path = path
        }
    }

    /// What the machine is allowed to take, and the questions it asks the world when a transfer starts.
    public struct Policy: Sendable {
        /// Whether peer `from` (record `sender`, if known) may send.
        public var allows: @Sendable (_ from: UInt32, _ sender: PeerRecord?) -> Bool = { _, _ in true }
        public var maxFileSize: UInt64?
        /// Largest message sent as a file (FileStart tag 10).
        public var maxMessageSize = 64 << 20
        /// Largest chunk (original bytes) accepted, whatever a sender announces: the bound for inflating.
        public var maxChunkSize = 4 << 20
        public var maxTransfersPerSender = 16
        public var maxTransfers = 256
        /// The name of a file already stored under `sentAs` with this SHA-256 (hex), if one is; nil stores every file.
        public var alreadyStored: (@Sendable (_ sentAs: String, _ sha256: String) -> String?)?
        /// A stored file sent as `sentAs` with `size` bytes, if one is still in the spool: its SHA-256 and stored name.
        /// Offered to a resumable sender that announced no SHA-256, as held whole: the sender checks it against its
        /// file and, if it is the same, the file is already stored.
        public var storedLike: (@Sendable (_ sentAs: String, _ size: UInt64) -> (sha256: [UInt8], storedAs: String)?)?
        /// Why `bytes` more would not fit on the spool's file system, or nil when they would.
        public var spaceProblem: @Sendable (UInt64) -> String? = { _ in nil }
        /// This receiver's name, for refusals.
        public var receiverName = ""
        /// Take files from clients of the hub's classic listener (their wire has no key and no digest).
        public var takesClassic = false
        /// Why this sender is not believed to be who it says (its key against known_peers), or nil.
        public var senderProblem: (@Sendable (PeerRecord) -> String?)?
        /// This receiver's key: a sealed file is opened with it, and a file from a peer that proved a key must be
        /// sealed (a hub that stripped the sealing could have changed it). Nil: a plaintext link, nothing to open.
        public var sealingKey: SealingKey?

        public init() {}
    }

    public enum Event: Sendable {
        /// A FileStart from peer `from`, whose record (`sender`) the driver looked up.
        case start(FileStart, from: UInt32, sender: PeerRecord?)
        case chunk(FileChunk, from: UInt32)
        /// A FileEnd; `aborted` when the sender gave up on the file (dataType 1).
        case end(FileEnd, aborted: Bool, from: UInt32, sender: PeerRecord?)
        /// A file packet from `from` that did not decode; `transferID` when that much could be read.
        case malformed(PacketType, from: UInt32, transferID: UInt32?, error: String)
        /// The sender left the hub: its unfinished transfers go.
        case senderLeft(UInt32)
        /// The daemon is stopping: new transfers are refused, those in progress may finish.
        case stopTaking
        /// The connection ended or the daemon stops now: every unfinished transfer goes.
        case abandonAll(reason: String)
        /// The temporary file was made (or, for a resumable transfer, found again holding `held` bytes, whose SHA-256
        /// state `hasher` is: the driver read them back).
        case created(Key, Temporary, held: UInt64 = 0, hasher: SHA256 = SHA256())
        case createFailed(Key, reason: String)
        /// A FileSeek: the sender's chunks start at `offset` (what FileResume offered, or 0).
        case seek(FileSeek, from: UInt32)
        /// A chunk was written: the hasher after its original bytes, and how many bytes it had and took on the wire.
        case wrote(Key, hasher: SHA256, raw: UInt64, wire: UInt64)
        case writeFailed(Key, FileReceipt.Status, reason: String)
    }

    public enum Action: Sendable {
        case send(FileReceipt, to: UInt32)
        /// Tell the sender of a resumable transfer where to start.
        case offer(FileResume, to: UInt32)
        /// Make a temporary file in the spool (`tag` goes in its name); answer with created or createFailed. With
        /// `partial`, the transfer is resumable: open (or make) the partial file of that name and report what it holds.
        case create(Key, tag: String, partial: Partial?)
        /// Inflate the chunk if compressed (never past the transfer's chunk size), hash it into `hasher`, write it to
        /// the temporary file at `offset`; answer with wrote or writeFailed.
        case write(Key, FileChunk, to: Temporary, at: UInt64, hasher: SHA256)
        /// Close and remove the temporary file.
        case discard(Temporary)
        /// Close the partial file of a resumable transfer and keep it, for the sender to resume later.
        case keep(Temporary)
        /// Empty the file (the sender starts over).
        case truncate(Temporary)
        /// Sync and publish a verified file, then answer its sender.
        case commit(Commit)
        case log(Logger.Level, Logger.Message, Logger.Metadata)
    }

    /// A resumable transfer's partial file: its name in the spool's partial directory, and the state record that goes
    /// beside it (`NAME.json`: who sent it, the file's name, size and SHA-256, when it started), for operators.
    public struct Partial: Sendable, Hashable {
        public var name: String
        public var record: String
    }

    /// A file whose size and SHA-256 were checked, ready to be made durable and published.
    public struct Commit: Sendable {
        public var key: Key
        public var temporary: Temporary
        /// The name the sender asked for: a safe relative path (``SpoolName/problem(withPath:)`` found nothing).
        public var sentAs: String
        public var sha256: [UInt8]
        public var size: UInt64
        public var wireBytes: UInt64
        public var compression: UInt8
        public var sender: PeerRecord?
        /// The sender's name as known when the file ended, or when it started.
        public var senderName: String
        /// Bytes an earlier attempt had stored (0 when the file crossed whole this time).
        public var resumedFrom: UInt64
        /// The SHA-256 was announced at FileStart, so the file is deduplicated (stdin's never is).
        public var announced = false
        /// A message sent as a file (FileStart tag 10): stored as a message, not under its name.
        public var message = false
        /// The key that sealed and signed the file (its signature checked), nil for a file that was not sealed.
        public var signedBy: NodeID?
        /// The file is a sealed container from the hub's store: the driver opens it (``SealedContainer``) before
        /// publishing, and publishes what it holds (its name, its kind) only if it opens whole.
        public var container = false
    }

    struct Transfer: Sendable {
        var start: FileStart
        var senderName: String
        /// Who the file is from: the peer that sent it, or for a file the hub's store delivers, the peer that queued it.
        var sender: PeerRecord?
        /// Nil until the driver made the temporary file.
        var temporary: Temporary?
        var hasher = SHA256()
        var received: UInt64 = 0
        var wireBytes: UInt64 = 0
        /// The partial file, for a resumable transfer.
        var partial: Partial?
        /// FileResume went out; chunks wait for the sender's FileSeek.
        var awaitingSeek = false
        /// A stored file offered as held whole (``Policy/storedLike``): a FileSeek to the end means already stored, to 0
        /// that the file differs and is sent whole. Nothing is made on disk until then.
        var storedLike: String?
        var resumedFrom: UInt64 = 0
        /// A sealed transfer's opener: each chunk opens in order, and the final record carries the signed digest.
        var opener: FileOpener?
    }

    public var policy: Policy
    private(set) var transfers: [Key: Transfer] = [:]
    public private(set) var refusingNew = false

    public init(policy: Policy) { self.policy = policy }

    /// Transfers started and not yet ended.
    public var open: Int { transfers.count }

    /// Transfers open from one sender.
    public func open(from sender: UInt32) -> Int { transfers.keys.lazy.filter { $0.from == sender }.count }

    public mutating func handle(_ event: Event) -> [Action] {
        switch event {
        case .start(let start, let from, let sender):
            return begin(start, from: from, sender: sender)
        case .chunk(let chunk, let from):
            return write(chunk, key: Key(from: from, id: chunk.transferID))
        case .end(let end, let aborted, let from, let sender):
            return finish(end, aborted: aborted, key: Key(from: from, id: end.transferID), sender: sender)
        case .malformed(let type, let from, let transferID, let error):
            var actions: [Action] = [
                .log(
                    .warning, "ignored a malformed packet", ["type": "\(type)", "from": "\(from)", "error": "\(error)"])
            ]
            guard let transferID else { return actions }
            actions += remove(Key(from: from, id: transferID))
            let reason = "malformed \(type): \(error)"
            actions.append(.send(FileReceipt(transferID: transferID, status: .invalid, reason: reason), to: from))
            return actions
        case .senderLeft(let sender):
            return abandon(where: { $0.from == sender }, reason: "sender left")
        case .stopTaking:
            refusingNew = true
            return []
        case .abandonAll(let reason):
            return abandon(where: { _ in true }, reason: reason)
        case .created(let key, let temporary, let held, let hasher):
            guard var transfer = transfers[key], transfer.temporary == nil else { return [.discard(temporary)] }
            transfer.temporary = temporary
            if transfer.partial != nil {
                // Offer what is held; nothing is written until the sender says where its chunks start.
                transfer.received = held
                transfer.hasher = hasher
                transfer.awaitingSeek = true
                transfers[key] = transfer
                let prefix = held > 0 ? Array(hasher.finalize()) : nil
                return [.offer(FileResume(transferID: key.id, offset: held, prefixSHA256: prefix), to: key.from)]
            }
            transfers[key] = transfer
            return []
        case .seek(let seek, let from):
            let key = Key(from: from, id: seek.transferID)
            if let transfer = transfers[key], transfer.awaitingSeek, let storedAs = transfer.storedLike {
                return seekStoredLike(seek, key: key, transfer: transfer, storedAs: storedAs)
            }
            guard var transfer = transfers[key], transfer.awaitingSeek, let temporary = transfer.temporary else {
                return []
            }
            transfer.awaitingSeek = false
            if seek.offset == transfer.received {
                transfer.resumedFrom = seek.offset
                transfers[key] = transfer
                return seek.offset > 0
                    ? [
                        .log(
                            .info, "resuming file",
                            ["file": "\(escapedForLog(transfer.start.name))", "from": "\(seek.offset)"])
                    ] : []
            }
            guard seek.offset == 0 else {
                return remove(key) + [
                    .send(
                        FileReceipt(
                            transferID: key.id, status: .invalid,
                            reason: "FileSeek to \(seek.offset), neither 0 nor the offered \(transfer.received)"
                        ), to: key.from)
                ]
            }
            // The sender's file differs from what is held (or it chose to): start over.
            transfer.received = 0
            transfer.hasher = SHA256()
            transfers[key] = transfer
            return [.truncate(temporary)]
        case .createFailed(let key, let reason):
            guard transfers.removeValue(forKey: key) != nil else { return [] }
            return [.send(FileReceipt(transferID: key.id, status: .storageFailed, reason: reason), to: key.from)]
        case .wrote(let key, let hasher, let raw, let wire):
            guard var transfer = transfers[key] else { return [] }
            transfer.hasher = hasher
            transfer.received += raw
            transfer.wireBytes += wire
            transfers[key] = transfer
            return []
        case .writeFailed(let key, let status, let reason):
            return remove(key) + [.send(FileReceipt(transferID: key.id, status: status, reason: reason), to: key.from)]
        }
    }

    // MARK: steps

    private mutating func begin(_ start: FileStart, from: UInt32, sender: PeerRecord?) -> [Action] {
        var start = start
        let key = Key(from: from, id: start.transferID)
        // A file the hub's store delivers is from whoever queued it: for --allow-from, the record and resuming. Only
        // the hub's own store can register that role, so no peer can speak for another this way.
        let fromStore = sender?.role == ClientSession.storeRole
        let sender = fromStore ? (start.origin ?? sender) : sender
        // The same transfer started again replaces the old one.
        let actions = remove(key)
        func refuse(_ reason: String, _ status: FileReceipt.Status = .refused) -> [Action] {
            actions + [
                .log(
                    .warning, "refused file",
                    [
                        "file": "\(escapedForLog(start.name.clipped))", "from": "\(from)",
                        "reason": "\(escapedForLog(reason))",
                    ]),
                .send(FileReceipt(transferID: start.transferID, status: status, reason: reason), to: from),
            ]
        }
        if refusingNew { return refuse("the receiver is shutting down", .unavailable) }
        if transfers.count >= policy.maxTransfers || open(from: from) >= policy.maxTransfersPerSender {
            return refuse("too many transfers in progress; try again later", .unavailable)
        }
        if sender?.isClassic == true && !policy.takesClassic {
            return refuse(
                "\(policy.receiverName) takes no files from classic clients (their wire proves no key and carries no "
                    + "digest; tcpiprecvd --accept-classic takes them)")
        }
        if !policy.allows(from, sender) {
            return refuse("\(policy.receiverName) does not take files from \(sender?.name ?? "peer \(from)")")
        }
        if let sender, let problem = policy.senderProblem?(sender) { return refuse(problem) }
        var opener: FileOpener?
        if start.container {
            // Believed only from the hub's store, which names who queued it (tag 9).
            guard fromStore, start.origin != nil else {
                return refuse("only the hub's store delivers sealed containers", .invalid)
            }
            guard policy.sealingKey != nil else {
                return refuse("the file is sealed to a key, and \(policy.receiverName) has none (a plaintext link)")
            }
        } else if let header = start.sealed {
            guard let own = policy.sealingKey else {
                return refuse("the file is sealed to a key, and \(policy.receiverName) has none (a plaintext link)")
            }
            do {
                let opened = try FileOpener(header: header, key: own, sender: sender?.keyID)
                start.name = opened.info.name
                start.sha256 = opened.info.sha256
                start.message = opened.info.message
                opener = opened
            } catch let failure as SealingFailure {
                return refuse(failure.description, failure.kind == .refused ? .refused : .corrupt)
            } catch {
                return refuse("the sealed header does not open: \(error)", .corrupt)
            }
        } else if policy.sealingKey != nil, let keyID = sender?.keyID {
            return refuse(
                "an unsealed file from key \(keyID): \(policy.receiverName) takes only sealed files from peers that "
                    + "prove a key (a hub that stripped the sealing could have changed the file)")
        }
        if let problem = SpoolName.problem(withPath: start.name) {
            return refuse("unsafe file name '\(escapedForLog(start.name.clipped))': \(problem)", .invalid)
        }
        if !start.message, let size = start.size, let limit = sizeLimit(start), size > limit {
            return refuse("the file is \(size) bytes, more than the receiver's limit of \(policy.maxFileSize ?? limit)")
        }
        if start.message, let limit = sizeLimit(start), (start.size ?? UInt64.max) > limit {
            return refuse("the message is larger than the receiver's limit of \(policy.maxMessageSize) bytes")
        }
        guard start.chunkSize > 0, Int(start.chunkSize) <= policy.maxChunkSize else {
            return refuse("chunk size \(start.chunkSize) is outside 1…\(policy.maxChunkSize)", .invalid)
        }
        guard start.compression <= 1 else { return refuse("unknown compression \(start.compression)", .invalid) }
        // Answered on the header only when it is believed: a receiver with a key answers only a sealed header (its
        // sender's signature checked above); a container's or a keyless peer's name and digest are the hub's to
        // make up, and the answer (already stored, a resume offer with the stored file's SHA-256) would tell it what
        // is stored. A container is deduplicated once it opens.
        let answersOnHeader = policy.sealingKey == nil || opener != nil
        if answersOnHeader, let digest = start.sha256,
            let storedAs = policy.alreadyStored?(Self.indexName(start), digest.hex)
        {
            // Sent again (a retried cron job): acknowledged, not stored twice. Its chunks are ignored.
            return actions + [
                .log(
                    .info, "already stored",
                    [
                        "file": "\(escapedForLog(storedAs))",
                        "from": "\(escapedForLog(sender?.name ?? "peer \(from)"))",
                    ]),
                .send(
                    FileReceipt(
                        transferID: start.transferID, status: .alreadyStored,
                        storedAs: opener == nil ? storedAs : nil, size: start.size ?? 0),
                    to: from),
            ]
        }
        if answersOnHeader, start.resumable, start.sha256 == nil, let size = start.size,
            let stored = policy.storedLike?(Self.indexName(start), size)
        {
            // Perhaps sent again: the sender checks the stored file's SHA-256 against its own before anything moves.
            var transfer = Transfer(start: start, senderName: sender?.name ?? "", sender: sender)
            transfer.opener = opener
            transfer.storedLike = stored.storedAs
            transfer.awaitingSeek = true
            transfer.received = size
            transfers[key] = transfer
            return actions + [
                .offer(FileResume(transferID: key.id, offset: size, prefixSHA256: stored.sha256), to: from)
            ]
        }
        if let problem = policy.spaceProblem(start.size ?? 0) { return refuse(problem, .storageFailed) }
        var transfer = Transfer(start: start, senderName: sender?.name ?? "", sender: sender)
        transfer.opener = opener
        transfer.partial = Self.partialName(start, sender: sender).map { name in
            Partial(
                name: name,
                record: JSON.object([
                    ("sentAs", .string(start.name)), ("size", .int(Int64(start.size ?? 0))),
                    ("sha256", .string(start.sha256?.hex ?? "")),
                    (
                        "from",
                        .object([
                            ("id", .int(Int64(from))), ("name", .string(sender?.name ?? "")),
                            ("key", sender?.keyID.map { .string($0.description) } ?? .null),
                        ])
                    ),
                ]).rendered())
        }
        // One attempt at a time per partial file: a second start of the same file (same sender, name, size and
        // content) ends the first, which keeps what it wrote for the new one.
        var previous: [Action] = []
        if let partial = transfer.partial,
            let other = transfers.first(where: { $0.value.partial?.name == partial.name && $0.key != key })?.key
        {
            previous =
                release(other) + [
                    .send(
                        FileReceipt(
                            transferID: other.id, status: .unavailable,
                            reason: "superseded by a newer attempt at the same file"), to: other.from)
                ]
        }
        transfers[key] = transfer
        return actions + previous + [
            .log(.debug, "receiving file", ["file": "\(escapedForLog(start.name))", "from": "\(from)"]),
            .create(key, tag: "\(from)-\(start.transferID)", partial: transfer.partial),
        ]
    }

    /// The sender's answer to a stored file offered as held: the same file (already stored), or another (sent whole,
    /// into a plain temporary file: this attempt is not resumable).
    private mutating func seekStoredLike(_ seek: FileSeek, key: Key, transfer: Transfer, storedAs: String) -> [Action] {
        var transfer = transfer
        let size = transfer.start.size ?? 0
        if seek.offset == size {
            transfers[key] = nil
            return [
                .log(.info, "already stored", ["file": "\(escapedForLog(storedAs))", "from": "\(key.from)"]),
                .send(
                    FileReceipt(
                        transferID: key.id, status: .alreadyStored, storedAs: transfer.opener == nil ? storedAs : nil,
                        size: size),
                    to: key.from),
            ]
        }
        guard seek.offset == 0 else {
            transfers[key] = nil
            return [
                .send(
                    FileReceipt(
                        transferID: key.id, status: .invalid,
                        reason: "FileSeek to \(seek.offset), neither 0 nor the offered \(size)"), to: key.from)
            ]
        }
        if let problem = policy.spaceProblem(size) {
            transfers[key] = nil
            return [.send(FileReceipt(transferID: key.id, status: .storageFailed, reason: problem), to: key.from)]
        }
        transfer.storedLike = nil
        transfer.awaitingSeek = false
        transfer.received = 0
        transfer.partial = nil
        transfers[key] = transfer
        return [
            .log(.debug, "receiving file", ["file": "\(escapedForLog(transfer.start.name))", "from": "\(key.from)"]),
            .create(key, tag: "\(key.from)-\(key.id)", partial: nil),
        ]
    }

    private mutating func write(_ chunk: FileChunk, key: Key) -> [Action] {
        // Chunks of a transfer that was refused, failed or never started are dropped.
        guard let transfer = transfers[key], let temporary = transfer.temporary else { return [] }
        func fail(_ status: FileReceipt.Status, _ reason: String) -> [Action] {
            remove(key) + [.send(FileReceipt(transferID: key.id, status: status, reason: reason), to: key.from)]
        }
        if transfer.awaitingSeek { return fail(.invalid, "a chunk before FileSeek in a resumable transfer") }
        var chunk = chunk
        if var opener = transfer.opener {
            guard chunk.sealed else { return fail(.corrupt, "an unsealed chunk in a sealed transfer") }
            do {
                chunk.data = try opener.open(chunk.data, compressed: chunk.compressed, rawLength: chunk.rawLength)
                chunk.sealed = false
            } catch {
                return fail(.corrupt, "\(error)")
            }
            transfers[key]?.opener = opener
            if !chunk.compressed && chunk.data.readableBytes != Int(chunk.rawLength) {
                return fail(.corrupt, "a sealed chunk that does not hold its announced length")
            }
        } else if chunk.sealed {
            return fail(.corrupt, "a sealed chunk in a transfer that was not sealed")
        }
        let rawLength = UInt64(chunk.rawLength)
        if rawLength > UInt64(transfer.start.chunkSize) {
            return fail(
                .corrupt, "a chunk of \(rawLength) bytes exceeds the announced chunk size \(transfer.start.chunkSize)")
        }
        let total = transfer.received + rawLength
        if let announced = transfer.start.size, total > announced {
            return fail(.corrupt, "more bytes than the announced \(announced)")
        }
        if let limit = sizeLimit(transfer.start), total > limit {
            return fail(.refused, "the file grew past the receiver's limit of \(limit) bytes")
        }
        if chunk.compressed && transfer.start.compression == 0 {
            return fail(.corrupt, "a compressed chunk in a transfer announced uncompressed")
        }
        return [.write(key, chunk, to: temporary, at: transfer.received, hasher: transfer.hasher)]
    }

    private mutating func finish(_ end: FileEnd, aborted: Bool, key: Key, sender: PeerRecord?) -> [Action] {
        var end = end
        guard let transfer = transfers.removeValue(forKey: key) else { return [] }
        let name = escapedForLog(transfer.start.name)
        guard let temporary = transfer.temporary else { return [] }
        if transfer.awaitingSeek && !aborted {
            return [
                .discard(temporary),
                .send(
                    FileReceipt(transferID: key.id, status: .invalid, reason: "FileEnd before FileSeek"), to: key.from),
            ]
        }
        if aborted {
            return [
                .log(
                    .info, "sender aborted transfer",
                    ["file": "\(name)", "reason": "\(escapedForLog(end.reason ?? ""))"]),
                .discard(temporary),
            ]
        }
        func fail(_ status: FileReceipt.Status, _ reason: String) -> [Action] {
            [
                .log(.warning, "file failed", ["file": "\(name)", "reason": "\(reason)"]),
                .discard(temporary),
                .send(FileReceipt(transferID: key.id, status: status, reason: reason), to: key.from),
            ]
        }
        if let opener = transfer.opener {
            // The size and digest to check are the signed ones, sealed after the last chunk: a chunk dropped at the end
            // leaves the final record at the wrong place, and it does not open.
            guard let sealed = end.sealed else {
                return fail(.corrupt, "a sealed transfer ended without its sealed end")
            }
            do {
                (end.size, end.sha256) = try opener.openTrailer(sealed)
            } catch {
                return fail(.corrupt, "\(error)")
            }
        }
        if end.size != transfer.received || (transfer.start.size.map { $0 != transfer.received } ?? false) {
            return fail(.corrupt, "size mismatch: received \(transfer.received) bytes, the sender says \(end.size)")
        }
        let digest = Array(transfer.hasher.finalize())
        // A classic client's file has no digest (the hub sends an empty one): its size is all there is to check.
        // Only a sender known as classic when its file started (the record that passed --accept-classic) qualifies.
        let sizeOnly = end.sha256.isEmpty && transfer.start.sha256 == nil && transfer.sender?.isClassic == true
        guard sizeOnly || end.sha256 == digest, transfer.start.sha256.map({ $0 == digest }) ?? true else {
            return fail(.corrupt, "SHA-256 mismatch: the file was damaged on the way")
        }
        return [
            .commit(
                Commit(
                    key: key, temporary: temporary, sentAs: transfer.start.name, sha256: digest,
                    size: transfer.received, wireBytes: transfer.wireBytes, compression: transfer.start.compression,
                    sender: transfer.sender ?? sender,
                    senderName: transfer.sender?.name ?? sender?.name ?? transfer.senderName,
                    resumedFrom: transfer.resumedFrom,
                    announced: transfer.start.sha256 != nil || transfer.start.resumable,
                    message: transfer.start.message, signedBy: transfer.opener?.senderID,
                    container: transfer.start.container))
        ]
    }

    // MARK: helpers

    /// The most bytes a transfer may come in: the message limit, or the file limit when there is one, with a sealed
    /// container's sealing on top.
    func sizeLimit(_ start: FileStart) -> UInt64? {
        (start.message ? UInt64(policy.maxMessageSize) : policy.maxFileSize).map(start.sizeLimit(forContent:))
    }

    /// The name a transfer is known by in the already-stored index: a message (tag 10) never under a file's name, so it
    /// cannot pass for a file, nor a file for it.
    public static func indexName(_ start: FileStart) -> String {
        start.message ? "\u{0}message/" + start.name : start.name
    }

    /// The name of a resumable transfer's partial file: the same sender (its proved key, else its name), file name, size
    /// and SHA-256 find the same file again. Nil when the transfer is not resumable.
    static func partialName(_ start: FileStart, sender: PeerRecord?) -> String? {
        guard start.resumable, let size = start.size, let sender else { return nil }
        let who = sender.keyID.map { "key:\($0)" } ?? "name:\(sender.name)"
        // Without a SHA-256 up front the part is found by name and size; the sender checks what is offered against
        // its file before it resumes, and the whole file is checked at the end in any case.
        let text = [who, start.name, String(size), start.sha256?.hex ?? "late"].joined(separator: "\u{0}")
        return Array(SHA256.hash(data: Array(text.utf8))).hex
    }

    /// Ends one transfer without a receipt: a resumable one keeps what it wrote for a later attempt, another
    /// discards it.
    private mutating func release(_ key: Key) -> [Action] {
        guard let transfer = transfers[key], transfer.partial != nil, let temporary = transfer.temporary else {
            return remove(key)
        }
        transfers[key] = nil
        return [.keep(temporary)]
    }

    /// Ends one transfer without a receipt, discarding what it wrote.
    private mutating func remove(_ key: Key) -> [Action] {
        guard let transfer = transfers.removeValue(forKey: key), let temporary = transfer.temporary else { return [] }
        return [.discard(temporary)]
    }

    private mutating func abandon(where matches: (Key) -> Bool, reason: String) -> [Action] {
        var actions: [Action] = []
        for key in transfers.keys.sorted(by: { ($0.from, $0.id) < ($1.from, $1.id) }) where matches(key) {
            let name = transfers[key].map { escapedForLog($0.start.name) } ?? ""
            actions.append(.log(.info, "ending unfinished transfer", ["file": "\(name)", "reason": "\(reason)"]))
            actions += release(key)
        }
        return actions
    }
}
