import Crypto
import FoundationEssentials
import NIOConcurrencyHelpers
import TCPIPCore
import TCPIPReceiver
import TCPIPWire

#if canImport(Glibc)
    import Glibc
#endif

/// The hub's store (`tcpipd --store DIR`): files verified and synced for receivers that are away, until they come back.
/// It is a spool (the same checks, temporary files, partial files and group commit as a receiver's), one directory per
/// receiver:
///
/// ```
/// DIR/qHEX/sHEX/NAME                   a queued file, for the receiver whose name hashes to qHEX, from the sender
///                                      whose key (or name) hashes to sHEX (NAME.1 on a clash)
/// DIR/.tcpip/meta/qHEX.d/sHEX.d/NAME.json  its record: who queued it, the name it was sent as, size, SHA-256, when
/// DIR/.tcpip/tmp/, DIR/.tcpip/partial/ files arriving, and partial files to resume, as in a receiver's spool
/// DIR/.tcpip/store/receivers.jsonl     the receivers the store knows: name, key, when first seen
/// DIR/.tcpip/store/receipts.jsonl      what became of each queued file: delivered, expired, refused
/// ```
public struct HubStore: Sendable {
    public let spool: Spool
    /// Appending a receipt and rewriting the file without old ones must not interleave (a receipt would be lost).
    private let receiptsLock = NIOLock()
    public var stateDirectory: String { spool.root + "/.tcpip/store" }
    var receiversPath: String { stateDirectory + "/receivers.jsonl" }
    var receiptsPath: String { stateDirectory + "/receipts.jsonl" }

    public init(directory: String) {
        var spool = Spool(root: directory)
        spool.requiresRecords = true
        self.spool = spool
    }

    /// Creates the store's directories and removes what a crash left in its temporary directory. Call it only while
    /// holding the spool's lock.
    public func prepare() throws {
        try spool.prepare()
        if mkdir(stateDirectory, 0o750) != 0 && errno != EEXIST { throw SpoolError.cannotCreate(stateDirectory, errno) }
    }

    /// The directory a receiver's queue lives in: a hash of its name, so that any name makes a safe, short one.
    public static func queueDirectory(for receiver: String) -> String {
        "q" + String(Array(SHA256.hash(data: Array(receiver.utf8))).hex.prefix(32))
    }

    /// The directory, inside a queue, of one sender's files: its proved key, else its name. A file is deduplicated
    /// only against the same sender's (another sender neither hides its file behind it nor learns it is there).
    /// Messages (`send --queue`) go in a directory of their own, `mHEX`, beside the sender's files.
    /// `sHEX` for files, `mHEX` for messages; `eHEX` and `nHEX` for the same sealed (FileStart tag 12).
    public static func senderDirectory(for sender: PeerRecord?, messages: Bool = false, sealed: Bool = false) -> String
    {
        let who = sender.map { $0.keyID.map { "key:\($0)" } ?? "name:\($0.name)" } ?? "unknown"
        return (sealed ? (messages ? "n" : "e") : (messages ? "m" : "s"))
            + String(Array(SHA256.hash(data: Array(who.utf8))).hex.prefix(32))
    }

    /// The name a file sent as `name` gets in the store.
    public static func storedName(
        _ name: String, for receiver: String, from sender: PeerRecord?, message: Bool = false, sealed: Bool = false
    ) -> String {
        queueDirectory(for: receiver) + "/" + senderDirectory(for: sender, messages: message, sealed: sealed) + "/"
            + name
    }

    // MARK: receivers

    /// A receiver the store knows: it registered with the hub, with this key (nil on a plaintext link).
    public struct KnownReceiver: Codable, Sendable, Equatable {
        public var name: String
        public var key: String?
        public var firstSeen: String
        /// The key itself (base64 DER SPKI, its SHA-256 is `key`), for senders that seal what they queue for it.
        public var publicKey: String?
    }

    /// Every receiver that ever registered while the store was on, by name (the first key seen for a name stays).
    public func knownReceivers() -> [String: KnownReceiver] {
        var known: [String: KnownReceiver] = [:]
        let decoder = JSONDecoder()
        for line in lines(of: receiversPath) {
            guard let receiver = try? decoder.decode(KnownReceiver.self, from: Data(line.utf8)) else { continue }
            if let first = known[receiver.name] {
                // A later line adds the public key of the key first seen (a store from before keys were kept).
                if first.publicKey == nil, first.key == receiver.key {
                    known[receiver.name]?.publicKey = receiver.publicKey
                }
            } else {
                known[receiver.name] = receiver
            }
        }
        return known
    }

    /// Remembers a receiver (appended and synced).
    public func remember(_ receiver: KnownReceiver) throws {
        let line = JSON.object([
            ("name", .string(receiver.name)), ("key", receiver.key.map { .string($0) } ?? .null),
            ("firstSeen", .string(receiver.firstSeen)),
            ("publicKey", receiver.publicKey.map { .string($0) } ?? .null),
        ]).rendered()
        try appendLine(line, to: receiversPath, creatingWithMode: 0o640)
    }

    // MARK: queued files

    /// A file waiting in the store.
    public struct Item: Sendable {
        /// `qHEX`: whose queue it is in.
        public var queue: String
        /// Its path in the store, `qHEX/sHEX/NAME` (`mHEX` for a message).
        public var storedAs: String
        /// The name it was sent as, which it is delivered under.
        public var sentAs: String
        public var fromName: String
        public var fromKey: String?
        public var size: UInt64
        public var sha256: String
        public var queuedAt: String
        /// A message (`send --queue`), delivered as one.
        public var message: Bool
        /// A sealed container (FileStart tag 12), delivered as one.
        public var sealed = false
        var recordPath: String
        /// When it was published in the store (its record's mtime): the order of delivery.
        var order: timespec

        /// Who queued it, as the receiver is told (FileStart tag 9).
        public var origin: PeerRecord {
            var origin = PeerRecord(id: 0, name: fromName)
            origin.key = fromKey.flatMap(NodeID.init).map(\.bytes)
            return origin
        }
    }

    /// The files waiting, oldest first; only `queue`'s (a ``queueDirectory(for:)``) when given.
    public func items(in queue: String? = nil) -> [Item] {
        struct Record: Decodable {
            struct From: Decodable {
                var name: String
                var key: String?
            }
            var name: String
            var sentAs: String
            var from: From
            var size: UInt64
            var sha256: String
            var receivedAt: String
        }
        let decoder = JSONDecoder()
        var items: [Item] = []
        let top =
            queue.map { [$0] }
            ?? (directoryEntries(spool.metadataDirectory) ?? []).compactMap {
                $0.hasSuffix(Spool.recordDirectorySuffix) ? String($0.dropLast(Spool.recordDirectorySuffix.count)) : nil
            }
        for queue in top {
            let directory = spool.metadataDirectory + "/" + queue + Spool.recordDirectorySuffix
            for path in SpoolIndex.files(under: directory) where path.hasSuffix(".json") {
                guard let bytes = try? readContents(of: path, label: "", limit: 1 << 20),
                    let record = try? decoder.decode(Record.self, from: Data(bytes)),
                    record.name.hasPrefix(queue + "/"), record.sentAs.hasPrefix(queue + "/")
                else { continue }
                // qHEX/sHEX/NAME: the name it was sent as is what follows the sender's directory.
                let parts = record.sentAs.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
                guard parts.count == 3 else { continue }
                var info = stat()
                guard stat(spool.root + "/" + record.name, &info) == 0 else {
                    // Its file is gone (delivered while the record's removal was cut short): the record goes too.
                    unlink(path)
                    continue
                }
                var recordInfo = stat()
                _ = stat(path, &recordInfo)
                items.append(
                    Item(
                        queue: queue, storedAs: record.name, sentAs: String(parts[2]),
                        fromName: record.from.name, fromKey: record.from.key, size: record.size,
                        sha256: record.sha256, queuedAt: record.receivedAt,
                        message: parts[1].hasPrefix("m") || parts[1].hasPrefix("n"),
                        sealed: parts[1].hasPrefix("e") || parts[1].hasPrefix("n"), recordPath: path,
                        order: recordInfo.st_mtim))
            }
        }
        return items.sorted {
            ($0.order.tv_sec, $0.order.tv_nsec, $0.storedAs) < ($1.order.tv_sec, $1.order.tv_nsec, $1.storedAs)
        }
    }

    /// Removes queued files that have no record (a crash between publishing a file and writing its record, or between
    /// removing the two): nobody was told they are queued, or they were already delivered. Returns how many.
    public func removeUnrecorded() -> Int {
        var removed = 0
        for queue in directoryEntries(spool.root) ?? [] where queue.hasPrefix("q") {
            for path in SpoolIndex.files(under: spool.root + "/" + queue) {
                let name = String(path.dropFirst(spool.root.count + 1))
                let (directories, leaf) = Spool.split(name)
                let record =
                    spool.metadataDirectory + "/"
                    + directories.map { $0 + Spool.recordDirectorySuffix + "/" }.joined() + leaf + ".json"
                if access(record, F_OK) != 0, unlink(path) == 0 { removed += 1 }
            }
        }
        return removed
    }

    /// Removes a queued file and its record (delivered, refused or expired).
    public func remove(_ item: Item) {
        // The record first: a file published under the freed name meanwhile would otherwise lose its new record.
        unlink(item.recordPath)
        unlink(spool.root + "/" + item.storedAs)
    }

    /// Bytes of the files queued. (Files arriving count at their announced size while they arrive; partial files of
    /// transfers that broke off are not counted: they are the same files' bytes when they resume, and otherwise go
    /// after the partial age.)
    public func bytesHeld() -> UInt64 {
        var total: UInt64 = 0
        for name in directoryEntries(spool.root) ?? [] where name.hasPrefix("q") {
            for path in SpoolIndex.files(under: spool.root + "/" + name) { total += Self.size(of: path) }
        }
        return total
    }

    private static func size(of path: String) -> UInt64 {
        var info = stat()
        return lstat(path, &info) == 0 ? UInt64(max(0, info.st_size)) : 0
    }

    // MARK: receipts

    /// Records what became of a queued file (appended and synced).
    public func appendReceipt(_ receipt: JSON) throws {
        try receiptsLock.withLock { try appendLine(receipt.rendered(), to: receiptsPath, creatingWithMode: 0o640) }
    }

    /// Every receipt kept, oldest first, as JSON lines.
    public func receipts() -> [String] { lines(of: receiptsPath) }

    /// Drops receipts written before `cutoff` (an RFC 3339 time as ``WireClock/rfc3339(_:)`` writes it). Returns how
    /// many went.
    @discardableResult
    public func pruneReceipts(before cutoff: String) -> Int {
        receiptsLock.withLock { pruneReceiptsLocked(before: cutoff) }
    }

    /// Receipts are appended in time order, so the old ones are the head of the file: it is read a block at a time up
    /// to the first receipt to keep (the file may be larger than anything worth holding in memory), and the rest is
    /// copied as it is. A line that does not decode is dropped only within that head.
    private func pruneReceiptsLocked(before cutoff: String) -> Int {
        struct Stamp: Decodable { var at: String }
        let fd = open(receiptsPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        let decoder = JSONDecoder()
        var keptFrom: Int64 = 0
        var dropped = 0
        var pending: [UInt8] = []
        var block = [UInt8](repeating: 0, count: 1 << 16)
        scan: while pending.count <= 1 << 20 {
            let count = block.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            // The end (an unterminated last line is kept), or a read error (nothing more is dropped).
            guard count > 0 else { break }
            pending += block[..<count]
            var lineStart = 0
            defer { pending.removeSubrange(..<lineStart) }
            while let newline = pending[lineStart...].firstIndex(of: 0x0A) {
                if let stamp = try? decoder.decode(Stamp.self, from: Data(pending[lineStart..<newline])),
                    stamp.at >= cutoff
                {
                    break scan
                }
                dropped += 1
                keptFrom += Int64(newline + 1 - lineStart)
                lineStart = newline + 1
            }
        }
        guard dropped > 0 else { return 0 }
        let temporary = receiptsPath + ".new"
        let out = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o640)
        guard out >= 0 else { return 0 }
        var copied = true
        var position = keptFrom
        while true {
            let count = block.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(position)) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                copied = count == 0
                break
            }
            do {
                try block.withUnsafeBytes { try Spool.writeAll(out, UnsafeRawBufferPointer(rebasing: $0[..<count])) }
            } catch {
                copied = false
                break
            }
            position += Int64(count)
        }
        let synced = copied && fsync(out) == 0
        close(out)
        guard synced, rename(temporary, receiptsPath) == 0 else {
            unlink(temporary)
            return 0
        }
        return dropped
    }

    private func lines(of path: String) -> [String] {
        guard let bytes = try? readContents(of: path, label: "", limit: 256 << 20) else { return [] }
        return bytes.split(separator: 0x0A).map { String(decoding: $0, as: UTF8.self) }
    }
}
