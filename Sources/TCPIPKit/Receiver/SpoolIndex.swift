import FoundationEssentials
import NIOConcurrencyHelpers

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

        mutating func add(_ key: Key, _ entry: Entry) {
            if let old = keyOf[entry.storedAs] {
                entries[old]?.removeAll { $0.storedAs == entry.storedAs }
                if entries[old]?.isEmpty == true { entries[old] = nil }
            }
            entries[key, default: []].append(entry)
            keyOf[entry.storedAs] = key
        }
    }

    private let spool: Spool
    private let state = NIOLockedValueBox(State())

    public init(spool: Spool) { self.spool = spool }

    /// Reads every metadata record in the spool; returns how many files it knows. A record that cannot be read is
    /// skipped (its file is then simply not deduplicated).
    @discardableResult
    public func load() -> Int {
        struct Record: Decodable {
            var name: String
            var sentAs: String
            var sha256: String
            var size: UInt64
        }
        var loaded = State()
        var count = 0
        let decoder = JSONDecoder()
        for file in Self.files(under: spool.metadataDirectory) where file.hasSuffix(".json") {
            guard let bytes = try? readContents(of: file, label: "", limit: 1 << 20),
                let record = try? decoder.decode(Record.self, from: Data(bytes))
            else { continue }
            loaded.add(
                Key(sentAs: record.sentAs, sha256: record.sha256), Entry(storedAs: record.name, size: record.size))
            count += 1
        }
        state.withLockedValue { $0 = loaded }
        return count
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

    /// A file was published as `storedAs`. Whatever the index said of that name before is forgotten: a consumer may
    /// have taken the old file away and another file may now have its name (an entry must never vouch for content
    /// the spool no longer holds).
    public func add(sentAs: String, sha256: String, storedAs: String, size: UInt64) {
        state.withLockedValue { $0.add(Key(sentAs: sentAs, sha256: sha256), Entry(storedAs: storedAs, size: size)) }
    }

    /// The paths of the regular files under `directory`, at any depth (a tree's records sit in subdirectories).
    static func files(under directory: String, depth: Int = 0) -> [String] {
        guard depth <= SpoolName.maxDepth, let names = directoryEntries(directory) else { return [] }
        var paths: [String] = []
        for name in names {
            let path = directory + "/" + name
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFREG: paths.append(path)
            case S_IFDIR: paths += files(under: path, depth: depth + 1)
            default: continue
            }
        }
        return paths
    }
}
