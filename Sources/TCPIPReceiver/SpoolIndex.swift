import FoundationEssentials
import NIOConcurrencyHelpers
import TCPIPCore
import TCPIPWire

#if canImport(Glibc)
    import Glibc
#endif

/// What the receiver has stored, by the name it was sent under and its SHA-256: a file sent again (a cron job that
/// failed half-way and re-sends everything) is acknowledged as already stored instead of landing as `NAME.1`.
///
/// Rebuilt at start-up from the spool's metadata records, kept up to date as files are published. An entry counts
/// only while its published file is still in the spool with the same size: a file a consumer took away is stored
/// again when it comes again.
public final class SpoolIndex: Sendable {
    struct Key: Hashable {
        var sentAs: String
        var sha256: String
    }

    struct Entry {
        var storedAs: String
        var size: UInt64
    }

    struct State {
        var entries: [Key: [Entry]] = [:]
        /// For each stored name, the key its entry is under: a name published again replaces its entry.
        var keyOf: [String: Key] = [:]
        /// The contents stored under each name sent.
        var digestsOf: [String: Set<String>] = [:]

        mutating func add(_ key: Key, _ entry: Entry) {
            if let old = keyOf[entry.storedAs] {
                entries[old]?.removeAll { $0.storedAs == entry.storedAs }
                if entries[old]?.isEmpty == true { entries[old] = nil }
            }
            entries[key, default: []].append(entry)
            keyOf[entry.storedAs] = key
            digestsOf[key.sentAs, default: []].insert(key.sha256)
        }
    }

    private let spool: Spool
    private let state = NIOLockedValueBox(State())

    public init(spool: Spool) { self.spool = spool }

    /// Reads every metadata record in the spool; returns how many files it knows. A record that cannot be read is
    /// skipped (its file is then simply not deduplicated).
    @discardableResult
    public func load(recovering: Bool = true) -> Int {
        struct Record: Decodable {
            var name: String
            var sentAs: String
            var sha256: String
            var size: UInt64
            var kind: String?
        }
        var loaded = State()
        var count = 0
        let decoder = JSONDecoder()
        for file in Self.files(under: spool.metadataDirectory) where file.hasSuffix(".json") {
            guard let bytes = try? readContents(of: file, label: "", limit: 1 << 20),
                let record = try? decoder.decode(Record.self, from: Data(bytes))
            else { continue }
            // A message sent as a file is indexed apart from files (TransferMachine.indexName).
            let sentAs = record.kind == "message" ? "\u{0}message/" + record.sentAs : record.sentAs
            loaded.add(Key(sentAs: sentAs, sha256: record.sha256), Entry(storedAs: record.name, size: record.size))
            count += 1
        }
        // A file published without its record (the daemon was killed between the two) would not be known, and the
        // same file sent again would land as NAME.1: such files are hashed and given their record now.
        let recorded = Set(loaded.keyOf.keys)
        for path in recovering ? Self.files(under: spool.root, skippingHidden: true) : [] {
            let name = String(path.dropFirst(spool.root.count + 1))
            guard !recorded.contains(name), !MessageStore.isMessageFile(name), let record = recover(name) else {
                continue
            }
            loaded.add(Key(sentAs: name, sha256: record.sha256), Entry(storedAs: name, size: record.size))
            count += 1
        }
        state.withLockedValue { $0 = loaded }
        return count
    }

    /// Hashes a published file that has no metadata record and writes one (`recovered`: the name it was sent under and
    /// who sent it are not known any more).
    private func recover(_ name: String) -> (sha256: String, size: UInt64)? {
        let path = spool.root + "/" + name
        // Never waits on a FIFO planted in the spool. (A file found without a record is recent by nature: the daemon
        // was killed while publishing it, and restarted.)
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG,
            let hasher = try? sha256State(of: fd, path: path)
        else { return nil }
        let sha256 = Array(hasher.finalize()).hex
        let size = UInt64(info.st_size)
        let record = JSON.object([
            ("name", .string(name)), ("sentAs", .string(name)),
            ("from", .object([("name", .string("")), ("key", .null)])),
            ("size", .int(Int64(size))), ("sha256", .string(sha256)),
            ("receivedAt", .string(WireClock.rfc3339(WireTime(info.st_mtim.tv_sec) * 1_000_000))),
            ("recovered", .bool(true)),
        ]).rendered()
        if let descriptor = try? spool.writeRecord(record, for: name) {
            _ = fsync(descriptor)
            close(descriptor)
        }
        return (sha256, size)
    }

    /// The name a file sent as `sentAs` with this content was stored under, if it is still in the spool.
    public func stored(sentAs: String, sha256: String) -> String? {
        let candidates = state.withLockedValue { $0.entries[Key(sentAs: sentAs, sha256: sha256)] ?? [] }
        for entry in candidates {
            var info = stat()
            if stat(spool.root + "/" + entry.storedAs, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG,
                UInt64(info.st_size) == entry.size
            {
                return entry.storedAs
            }
        }
        return nil
    }

    /// A file sent as `sentAs` with `size` bytes that is still in the spool: its SHA-256 and stored name, for a sender
    /// that announced no SHA-256 to check against its own file. Nil when there is none.
    public func stored(sentAs: String, size: UInt64) -> (sha256: String, storedAs: String)? {
        let digests = state.withLockedValue { state in
            (state.digestsOf[sentAs] ?? []).filter { digest in
                state.entries[Key(sentAs: sentAs, sha256: digest)]?.contains { $0.size == size } == true
            }
        }
        for digest in digests.sorted() {
            if let storedAs = stored(sentAs: sentAs, sha256: digest) { return (digest, storedAs) }
        }
        return nil
    }

    /// A file was published as `storedAs`. Whatever the index said of that name before is forgotten: a consumer may
    /// have taken the old file away and another file may now have its name (an entry must never vouch for content
    /// the spool no longer holds).
    public func add(sentAs: String, sha256: String, storedAs: String, size: UInt64) {
        state.withLockedValue { $0.add(Key(sentAs: sentAs, sha256: sha256), Entry(storedAs: storedAs, size: size)) }
    }

    /// The paths of the regular files under `directory`, at any depth (a tree's records sit in subdirectories).
    package static func files(under directory: String, depth: Int = 0, skippingHidden: Bool = false) -> [String] {
        guard depth <= SpoolName.maxDepth, let names = directoryEntries(directory) else { return [] }
        var paths: [String] = []
        // The daemon's own entries start with a dot (`.tcpip`); no published name does.
        for name in names where !(skippingHidden && name.hasPrefix(".")) {
            let path = directory + "/" + name
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFREG: paths.append(path)
            case S_IFDIR: paths += files(under: path, depth: depth + 1, skippingHidden: skippingHidden)
            default: continue
            }
        }
        return paths
    }
}
