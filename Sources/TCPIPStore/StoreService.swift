import FoundationEssentials
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import TCPIPClient
import TCPIPCore
import TCPIPHub
import TCPIPReceiver
import TCPIPWire

/// What `tcpipd --store` keeps and for how long.
public struct StoreConfiguration: Sendable {
    public var directory: String
    /// Bytes the store may hold (queued files and files arriving); a file that would pass it is refused at its
    /// FileStart, before any of it crosses (73). Nil: only the disk's free space limits it.
    public var maxBytes: UInt64?
    /// A file not delivered within this is removed, with an `expired` receipt.
    public var maxAge: Duration = .seconds(7 * 86400)
    /// Receipts are kept this long for senders to read (`tcpipctl receipts`).
    public var receiptMaxAge: Duration = .seconds(30 * 86400)
    /// Partial files of transfers into the store that broke off are kept this long for their senders to resume.
    public var partialMaxAge: Duration = .seconds(3 * 86400)
    /// How often the store looks for expired files and retries deliveries that failed.
    public var sweepInterval: Duration = .seconds(30)
    /// The hub's authorized-peers file: a name it gives a receiver (or any role) may be queued for before it ever
    /// joined. Read by the store itself (the hub's own reader notices changes by their stamp).
    public var authorizedPeersPath: String?
    /// The hub's largest frame: the store's sessions, its chunks and its reports keep within it.
    public var maxFrameSize = FrameParser.defaultMaxFrameSize

    public init(directory: String) { self.directory = directory }
}

/// The hub's store as a peer of its own hub: it joins through a local socket (so it alone may have the role `store`),
/// takes files queued for receivers that are away (FileStart tag 8) into a ``HubStore`` with the receiver's
/// machinery (verified, synced, resumable), learns receivers as they register, and when one (with the key it was
/// first seen with) is connected, delivers its queue in order with the sender's machinery, naming who queued each
/// file (tag 9). A file leaves the store only after the receiver's receipt; each outcome is a receipt of the store's.
public final class StoreService: Service, Sendable {
    private struct State {
        var known: [String: HubStore.KnownReceiver] = [:]
        /// Receivers connected now, by name.
        var connected: [String: PeerRecord] = [:]
        /// Queues being delivered now.
        var delivering: Set<String> = []
        /// Queues asked for again while being delivered (a file came in meanwhile): delivered again right after.
        var again: Set<String> = []
        /// The sessions open now, closed at shutdown.
        var senders: [UInt64: PacketSender] = [:]
        var nextSession: UInt64 = 0
        var stopping = false
        var requests: AsyncStream<PeerRecord>.Continuation?
        /// Bytes promised to files arriving, by (sender id, transfer id): counted against `maxBytes` until FileEnd.
        var reserved: [UInt64: UInt64] = [:]
    }

    public let store: HubStore
    public let configuration: StoreConfiguration
    private let hub: HubServer
    private let logger: Logger
    private let state = NIOLockedValueBox(State())
    /// The store's own reader of the hub's authorized-peers file (the hub's reader must see each edit itself) and the
    /// list it last read: read again only when the file changed, and a broken edit keeps the last good list, as at the
    /// hub.
    private let authorized: NIOLockedValueBox<(file: AuthorizedPeersFile, peers: AuthorizedPeers?)>?

    public init(configuration: StoreConfiguration, hub: HubServer, logger: Logger) {
        self.configuration = configuration
        store = HubStore(directory: configuration.directory)
        self.hub = hub
        self.logger = logger
        authorized = configuration.authorizedPeersPath.map { NIOLockedValueBox((AuthorizedPeersFile(path: $0), nil)) }
    }

    /// Takes the store's lock and prepares it; call before ``run()`` so a store another hub holds stops this one at
    /// start-up. The lock lasts while the returned value lives.
    public func open() throws -> SpoolLock {
        let lock = try store.spool.lock()
        try store.prepare()
        let orphans = store.removeUnrecorded()
        if orphans > 0 {
            logger.notice(
                "removed queued files without a record (a crash cut their publishing or removal short)",
                metadata: ["count": "\(orphans)"])
        }
        let known = store.knownReceivers()
        state.withLockedValue { $0.known = known }
        sweep()
        return lock
    }

    public func run() async throws {
        let (requests, continuation) = AsyncStream.makeStream(of: PeerRecord.self)
        state.withLockedValue { $0.requests = continuation }
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.intakeLoop() }
                group.addTask { await self.sweepLoop() }
                for await receiver in requests {
                    let queue = HubStore.queueDirectory(for: receiver.name)
                    let start = state.withLockedValue { state in
                        guard !state.stopping else { return false }
                        if state.delivering.insert(queue).inserted { return true }
                        state.again.insert(queue)
                        return false
                    }
                    guard start else { continue }
                    group.addTask {
                        var receiver: PeerRecord? = receiver
                        while let current = receiver {
                            await self.deliver(to: current)
                            receiver = self.state.withLockedValue { state in
                                // Whoever holds the name now passes the key check again: it may be another peer.
                                guard state.again.remove(queue) != nil, !state.stopping,
                                    let connected = state.connected[current.name],
                                    let known = state.known[current.name],
                                    self.mayDeliver(to: connected, known: known)
                                else {
                                    state.delivering.remove(queue)
                                    return nil
                                }
                                return connected
                            }
                        }
                    }
                }
                // Stopping: the sweeper's and the intake's waits end now.
                group.cancelAll()
            }
        } onGracefulShutdown: {
            self.stop()
        }
    }

    /// Ends every session and stops taking work: files arriving keep their partial data for their senders' retries.
    func stop() {
        let (senders, requests) = state.withLockedValue { state in
            state.stopping = true
            defer { state.requests = nil }
            return (Array(state.senders.values), state.requests)
        }
        requests?.finish()
        for sender in senders { sender.close() }
    }

    private var stopping: Bool { state.withLockedValue { $0.stopping } }

    /// Remembers a session's sender, to close it at shutdown; returns the key to forget it by.
    private func opened(_ sender: PacketSender) -> UInt64 {
        state.withLockedValue { state in
            state.nextSession += 1
            state.senders[state.nextSession] = sender
            return state.nextSession
        }
    }

    // MARK: taking files in

    private func intakeLoop() async {
        while !stopping {
            do {
                try await intake()
            } catch {
                if stopping { break }
                logger.warning("the store's session ended: \(error)")
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    private func session(_ name: String, flags: RegistrationFlags = []) async throws -> ClientConfiguration {
        var client = ClientConfiguration(name: name)
        client.nameIsDefault = true
        client.role = ClientSession.storeRole
        client.flags = flags
        client.maxFrameSize = configuration.maxFrameSize
        client.connectedSocket = try await hub.connectLocal()
        return client
    }

    private func intake() async throws {
        let client = try await session("store", flags: [.wantsRoster, .wantsUpdates])
        let index = SpoolIndex(spool: store.spool)
        // A queued file without a record is not recovered (it would lose who queued it): open() removed those.
        index.load(recovering: false)
        var receiving = ReceiverConfiguration(spool: store.spool)
        receiving.partialMaxAge = configuration.partialMaxAge
        receiving.maxFileSize = configuration.maxBytes
        try await ClientSession.run(client, logger: logger) { session in
            session.acceptsFiles = true
            // A file queued for a receiver that is connected by now (it registered after the sender looked) goes on.
            let files = try FileReceiver(
                configuration: receiving, logger: logger, receiverName: "the hub's store", index: index,
                onPublished: { [weak self] in self?.queued($0) })
            let sender = session.sender
            let key = opened(sender)
            defer {
                _ = state.withLockedValue { $0.senders.removeValue(forKey: key) }
                files.abandonAll(reason: "the store's session ended")
            }
            guard !stopping else { return }
            // Who is connected is learnt again from this session's roster.
            state.withLockedValue {
                $0.connected = [:]
                $0.reserved = [:]
            }
            logger.info("store ready", metadata: ["directory": "\(store.spool.root)", "id": "\(session.me.id)"])
            for peer in session.roster { noticed(peer) }
            let committer = files.committer
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await committer.run(sender: sender) }
                defer { committer.finish() }
                while true {
                    let packet = try await session.next()
                    switch packet.header.type {
                    case .fileStart:
                        guard let admitted = try await admit(packet, session: session) else { continue }
                        try await files.handle(admitted, session: session)
                    case .clientData, .credentialsUpdate:
                        // Believed only about the peer the hub stamped in idFrom.
                        if let peer = try? PeerRecord(tlv: packet.payload), peer.id == packet.header.idFrom {
                            noticed(peer)
                        }
                    case .clientDisconnecting:
                        let from = packet.header.idFrom
                        state.withLockedValue { state in
                            state.connected = state.connected.filter { $0.value.id != from }
                            state.reserved = state.reserved.filter { $0.key >> 32 != UInt64(from) }
                        }
                        try await files.handle(packet, session: session)
                    case .fileEnd:
                        // From here what arrived is on disk (or gone): it no longer needs a reservation.
                        if let transfer = FileReceiver.transferID(in: packet) {
                            _ = state.withLockedValue {
                                $0.reserved.removeValue(forKey: UInt64(packet.header.idFrom) << 32 | UInt64(transfer))
                            }
                        }
                        try await files.handle(packet, session: session)
                    case .storeQuery:
                        try await answer(packet, session: session)
                    default:
                        try await files.handle(packet, session: session)
                    }
                }
            }
        }
    }

    /// Checks a FileStart sent to the store and turns it into one for the receiver's queue directory; nil when it was
    /// refused (its receipt sent). A FileStart that does not decode goes on as it is, for the receiver's machinery to
    /// refuse.
    private func admit(_ packet: Packet, session: ClientSession) async throws -> Packet? {
        guard var start = try? FileStart(tlv: packet.payload) else { return packet }
        func refuse(_ status: FileReceipt.Status, _ reason: String) async throws -> Packet? {
            logger.notice(
                "refused a file for the store",
                metadata: ["file": "\(escapedForLog(start.name.clipped))", "reason": "\(escapedForLog(reason))"])
            let receipt = FileReceipt(transferID: start.transferID, status: status, reason: reason)
            try await session.send(receipt.packet(to: packet.header.idFrom))
            return nil
        }
        guard let receiver = start.queueFor else {
            return try await refuse(
                .invalid, "the hub's store takes only files queued for a receiver (send-file --queue)")
        }
        guard knows(receiver) else {
            return try await refuse(
                .unknownRecipient,
                "no receiver named '\(escapedForLog(receiver.clipped))' is known to the hub's store: it never "
                    + "registered while the store was on, and no authorized peer line gives it that name")
        }
        if let problem = SpoolName.problem(withPath: start.name) {
            return try await refuse(.invalid, "unsafe file name '\(escapedForLog(start.name.clipped))': \(problem)")
        }
        // The store keeps a file two directories down (receiver, sender): a path must leave room for them.
        if start.name.split(separator: "/").count > SpoolName.maxDepth - 2 || start.name.utf8.count > 950 {
            return try await refuse(
                .invalid, "the hub's store takes paths of at most \(SpoolName.maxDepth - 2) components and 950 bytes")
        }
        if start.container, start.sealed != nil {
            return try await refuse(.invalid, "a sealed container is not also a sealed transfer")
        }
        // A sealed container holds the message with its sealing: allowed for (receivers check what it holds).
        if start.message,
            (start.size ?? UInt64.max)
                > start.sizeLimit(forContent: UInt64(ReceiverConfiguration.defaultMaxMessageSize))
        {
            return try await refuse(
                .refused,
                "the hub's store takes messages of at most \(ReceiverConfiguration.defaultMaxMessageSize) bytes")
        }
        let key = UInt64(packet.header.idFrom) << 32 | UInt64(start.transferID)
        if let limit = configuration.maxBytes {
            guard let size = start.size else {
                return try await refuse(
                    .storageFailed, "the hub's store takes only files of known size (not stdin) when it has a limit")
            }
            // Files still arriving count at their announced size, so that many at once cannot pass the limit.
            let onDisk = store.bytesHeld()
            let refusal: String? = state.withLockedValue { state in
                let held = state.reserved.values.reduce(onDisk, &+)
                guard held <= limit, size <= limit - held else {
                    return "the hub's store is full: it holds \(held) of \(limit) bytes, the file needs \(size)"
                }
                state.reserved[key] = size
                return nil
            }
            if let refusal { return try await refuse(.storageFailed, refusal) }
        }
        let sender = try await session.peer(id: packet.header.idFrom)
        start.name = HubStore.storedName(
            start.name, for: receiver, from: sender, message: start.message, sealed: start.container)
        start.message = false
        start.container = false
        start.queueFor = nil
        start.origin = nil
        return start.packet(packet.header)
    }

    /// Whether files may be queued for `name`: it registered as a receiver before, or the authorized peers give it
    /// to a key as a receiver.
    private func knows(_ name: String) -> Bool {
        if state.withLockedValue({ $0.known[name] != nil }) { return true }
        guard let peers = authorizedPeers() else { return false }
        return peers.entries.contains { $0.name == name && ($0.roles.isEmpty || $0.roles.contains("receiver")) }
    }

    /// The hub's authorized peers as the file says now (nil without one, or when it was never read well). The hub
    /// logs the file's reloads; the store reports only a broken file.
    private func authorizedPeers() -> AuthorizedPeers? {
        authorized?.withLockedValue { authorized in
            var quiet = logger
            quiet.logLevel = max(quiet.logLevel, .error)
            if let peers = authorized.file.reloadIfChanged(logger: quiet) { authorized.peers = peers }
            return authorized.peers
        }
    }

    /// A file was queued: if its receiver is connected now, it is delivered at once.
    private func queued(_ file: FileReceiver.Published) {
        requestDeliveryNow(file.storedAs.split(separator: "/").first.map(String.init) ?? "")
    }

    /// Asks for the delivery of `queue` if its receiver is connected.
    private func requestDeliveryNow(_ queue: String) {
        let found = state.withLockedValue { state in
            state.connected.values.first { HubStore.queueDirectory(for: $0.name) == queue }.flatMap { peer in
                state.known[peer.name].map { (peer, $0) }
            }
        }
        if let (peer, known) = found { requestDelivery(to: peer, known: known) }
    }

    /// A peer registered or changed: a receiver is remembered, and its queue delivered if it is the one it was.
    private func noticed(_ peer: PeerRecord) {
        // A peer that changed its name or role is no longer what it was.
        state.withLockedValue { $0.connected = $0.connected.filter { $0.value.id != peer.id } }
        guard peer.role == ClientSession.receiverRole else { return }
        let key = peer.keyID?.description
        // The public key is kept once its hash is checked against the key the receiver proved.
        let publicKey = SealingRecipient(peer).map { Data($0.spki).base64EncodedString() }
        let (new, known) = state.withLockedValue { state in
            state.connected[peer.name] = peer
            if var known = state.known[peer.name] {
                // The key first seen, now with the key itself (a receiver first seen before keys were kept).
                guard known.publicKey == nil, known.key == key, let publicKey else { return (false, known) }
                known.publicKey = publicKey
                state.known[peer.name] = known
                return (true, known)
            }
            let known = HubStore.KnownReceiver(
                name: peer.name, key: key, firstSeen: WireClock.rfc3339(WireClock.now()), publicKey: publicKey)
            state.known[peer.name] = known
            return (true, known)
        }
        if new {
            do {
                try store.remember(known)
                logger.info("store knows a new receiver", metadata: ["name": "\(escapedForLog(peer.name))"])
            } catch {
                logger.error("cannot remember a receiver: \(error)")
            }
        }
        requestDelivery(to: peer, known: known)
    }

    private func requestDelivery(to peer: PeerRecord, known: HubStore.KnownReceiver) {
        guard mayDeliver(to: peer, known: known),
            !store.items(in: HubStore.queueDirectory(for: peer.name)).isEmpty
        else { return }
        _ = state.withLockedValue { $0.requests?.yield(peer) }
    }

    /// Whether `peer` is the receiver its name was first seen as: the same key, or one the authorized peers bind the
    /// name to now. Checked before every delivery to a name, the first and each one after.
    private func mayDeliver(to peer: PeerRecord, known: HubStore.KnownReceiver) -> Bool {
        let listed = peer.keyID.map { key in
            authorizedPeers()?.entries.contains { $0.name == peer.name && $0.id == key }
        }
        guard known.key == peer.keyID?.description || listed == true else {
            logger.warning(
                "not delivering: the receiver's key is not the one it was first seen with",
                metadata: ["name": "\(escapedForLog(peer.name))", "key": "\(peer.keyID?.description ?? "none")"])
            return false
        }
        return true
    }

    // MARK: delivering

    /// Delivers a queue in courier sessions of at most ``deliveryBatch`` files (each with one file open at a time), each
    /// file attempted once.
    private func deliver(to receiver: PeerRecord) async {
        var attempted: Set<String> = []
        while !stopping {
            let items = store.items(in: HubStore.queueDirectory(for: receiver.name)).filter {
                !attempted.contains($0.storedAs)
            }.prefix(Self.deliveryBatch)
            guard !items.isEmpty else { return }
            attempted.formUnion(items.map(\.storedAs))
            guard await deliver(Array(items), to: receiver) else { return }
        }
    }

    /// Files one courier session delivers at most.
    static let deliveryBatch = 256

    /// One courier session; false when it broke off.
    private func deliver(_ items: [HubStore.Item], to receiver: PeerRecord) async -> Bool {
        logger.info(
            "delivering queued files", metadata: ["to": "\(escapedForLog(receiver.name))", "files": "\(items.count)"])
        do {
            let client = try await session("store-courier")
            let results = try await ClientSession.run(client, logger: logger) { session in
                let sender = session.sender
                let key = opened(sender)
                defer { _ = state.withLockedValue { $0.senders.removeValue(forKey: key) } }
                let sources = items.map { item in
                    var source = FileSendRequest.Source(path: store.spool.root + "/" + item.storedAs, name: item.sentAs)
                    source.origin = item.origin
                    source.message = item.message
                    source.container = item.sealed
                    return source
                }
                var request = FileSendRequest(sources: sources, recipients: [String(receiver.id)])
                request.chunkSize = min(request.chunkSize, configuration.maxFrameSize - PacketHeader.size - 64)
                // The hub's own store is on the hub's machine: a direct link would save the hub nothing.
                request.direct = .never
                // Each file is opened when its turn comes: a courier holds one open, whatever the batch.
                return try await FileSending.run(request, descriptors: nil, session: session)
            }
            for (item, result) in zip(items, results) { settle(item, result) }
            return true
        } catch {
            logger.notice(
                "delivery broke off; the files stay queued",
                metadata: ["to": "\(escapedForLog(receiver.name))", "error": "\(error)"])
            return false
        }
    }

    /// What the receiver said about one queued file: delivered and refused files leave the store with a receipt;
    /// anything a retry may cure stays.
    private func settle(_ item: HubStore.Item, _ result: FileResult) {
        let status: String
        switch result.status {
        case .stored, .alreadyStored: status = "delivered"
        case .refused, .invalid: status = "refused"
        default:
            logger.notice(
                "delivery failed; the file stays queued",
                metadata: [
                    "file": "\(escapedForLog(item.sentAs))", "status": "\(result.status.rawValue)",
                    "reason": "\(escapedForLog(result.reason ?? ""))",
                ])
            return
        }
        // The receiver's words, clipped: a receipt must stay well within one StoreReport entry.
        let reason = result.reason.map { String(String.UnicodeScalarView($0.unicodeScalars.prefix(512))) }
        record(item, status: status, storedAs: result.storedAs, reason: reason)
        store.remove(item)
    }

    private func record(_ item: HubStore.Item, status: String, storedAs: String? = nil, reason: String? = nil) {
        let receipt = JSON.object([
            ("file", .string(item.sentAs)), ("kind", .string(item.message ? "message" : "file")),
            ("recipient", .string(recipient(of: item))),
            ("from", .object([("name", .string(item.fromName)), ("key", item.fromKey.map { .string($0) } ?? .null)])),
            ("size", .int(Int64(item.size))), ("sha256", .string(item.sha256)), ("queuedAt", .string(item.queuedAt)),
            ("status", .string(status)), ("at", .string(WireClock.rfc3339(WireClock.now()))),
            ("storedAs", storedAs.map { .string($0) } ?? .null), ("reason", reason.map { .string($0) } ?? .null),
        ])
        do {
            try store.appendReceipt(receipt)
        } catch {
            logger.error("cannot write a receipt: \(error)")
        }
        logger.info(
            "queued file \(status)",
            metadata: ["file": "\(escapedForLog(item.sentAs))", "to": "\(escapedForLog(recipient(of: item)))"])
    }

    /// The receiver a queued file is for.
    private func recipient(of item: HubStore.Item) -> String {
        state.withLockedValue { state in
            state.known.values.first { HubStore.queueDirectory(for: $0.name) == item.queue }?.name
        } ?? authorizedPeers()?.entries
            .first { HubStore.queueDirectory(for: $0.name) == item.queue }?.name ?? item.queue
    }

    // MARK: expiry and retries

    private func sweepLoop() async {
        while !stopping {
            try? await Task.sleep(for: configuration.sweepInterval)
            guard !stopping else { break }
            sweep()
            let (connected, known) = state.withLockedValue { ($0.connected, $0.known) }
            for (name, peer) in connected {
                if let known = known[name] { requestDelivery(to: peer, known: known) }
            }
        }
    }

    /// Removes what is too old: queued files (with an `expired` receipt), receipts, partial files.
    func sweep() {
        let now = WireClock.now()
        let cutoff = WireClock.rfc3339(now - min(now, configuration.maxAge.microseconds))
        for (queue, items) in Dictionary(grouping: store.items().filter { $0.queuedAt < cutoff }, by: \.queue) {
            // A queue being delivered is left for the next sweep; one being expired is not delivered meanwhile.
            guard state.withLockedValue({ !$0.stopping && $0.delivering.insert(queue).inserted }) else { continue }
            for item in items {
                record(item, status: "expired", reason: "not delivered within \(configuration.maxAge)")
                store.remove(item)
            }
            let again = state.withLockedValue { state in
                state.delivering.remove(queue)
                return state.again.remove(queue) != nil
            }
            // A delivery asked for while the queue was being expired goes now.
            if again { requestDeliveryNow(queue) }
        }
        store.pruneReceipts(before: WireClock.rfc3339(now - min(now, configuration.receiptMaxAge.microseconds)))
        _ = store.spool.removePartials(olderThan: configuration.partialMaxAge)
    }

    // MARK: queries

    /// Answers `tcpipctl queue` and `tcpipctl receipts`: the asker's own files (by key over TLS, else by name), or
    /// everyone's for an operator.
    private func answer(_ packet: Packet, session: ClientSession) async throws {
        guard let query = try? StoreQuery(tlv: packet.payload) else { return }
        let asker = try await session.peer(id: packet.header.idFrom)
        func reply(_ entries: [String], final: Bool, refusal: String? = nil) async throws {
            let report = StoreReport(requestID: query.requestID, entries: entries, final: final, refusal: refusal)
            try await session.send(
                report.packet(PacketHeader(type: .storeReport, maskTo: .client, idTo: packet.header.idFrom)))
        }
        guard let asker else { return }
        if query.kind == .receiver {
            // A receiver's key, to seal what is queued for it: the key it first registered with (the same one the store
            // delivers only to). The sender checks it against its own pins.
            // A name known only from the authorized peers has no key to give yet; a name not known at all, no entry.
            guard let name = query.name, knows(name) else { return try await reply([], final: true) }
            let known = state.withLockedValue { $0.known[name] }
            let entry = JSON.object([
                ("name", .string(name)), ("key", known?.key.map { .string($0) } ?? .null),
                ("publicKey", known?.publicKey.map { .string($0) } ?? .null),
            ]).rendered()
            return try await reply([entry], final: true)
        }
        if query.all, let problem = operatorProblem(asker) { return try await reply([], final: true, refusal: problem) }
        let mine: (String, String?) -> Bool = { name, key in
            query.all || (asker.keyID.map { $0.description == key } ?? (key == nil && name == asker.name))
        }
        var entries: [String] = []
        switch query.kind {
        case .queue:
            for item in store.items() where mine(item.fromName, item.fromKey) {
                entries.append(
                    JSON.object([
                        ("file", .string(item.sentAs)), ("kind", .string(item.message ? "message" : "file")),
                        ("recipient", .string(recipient(of: item))),
                        (
                            "from",
                            .object([
                                ("name", .string(item.fromName)), ("key", item.fromKey.map { .string($0) } ?? .null),
                            ])
                        ),
                        ("size", .int(Int64(item.size))), ("sha256", .string(item.sha256)),
                        ("queuedAt", .string(item.queuedAt)), ("status", .string("queued")),
                        ("queuedAs", .string(item.storedAs)),
                    ]).rendered())
            }
        case .receiver:
            break
        case .receipts:
            struct From: Decodable {
                struct Who: Decodable {
                    var name: String
                    var key: String?
                }
                var from: Who
            }
            let decoder = JSONDecoder()
            for line in store.receipts() {
                guard let from = try? decoder.decode(From.self, from: Data(line.utf8)),
                    mine(from.from.name, from.from.key)
                else { continue }
                entries.append(line)
            }
        }
        // Reports of at most a quarter of a frame each (an entry is a few hundred bytes, far below that).
        let limit = min(256 << 10, configuration.maxFrameSize / 4)
        var batch: [String] = []
        var bytes = 0
        for entry in entries {
            if bytes + entry.utf8.count > limit && !batch.isEmpty {
                try await reply(batch, final: false)
                batch.removeAll()
                bytes = 0
            }
            batch.append(entry)
            bytes += entry.utf8.count + 3
        }
        try await reply(batch, final: true)
    }

    /// Why `peer` may not see everyone's files, or nil when it may: it registered as an operator, and where the hub
    /// has authorized peers, its key's line gives it that role by name.
    private func operatorProblem(_ peer: PeerRecord) -> String? {
        let problem = "only an operator may list everyone's files (register with role operator"
        guard peer.role == "operator" else { return problem + ": tcpipctl … --all does)" }
        guard configuration.authorizedPeersPath != nil else { return nil }
        guard let key = peer.keyID, let peers = authorizedPeers(),
            peers.entries(for: key).contains(where: { $0.roles.contains("operator") })
        else { return problem + ", and a line in the authorized peers that names the role operator for your key)" }
        return nil
    }
}
