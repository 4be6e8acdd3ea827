import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The authorized-peers file on disk: read at start-up, read again when it changed (checked, with one stat, at each
/// registration) or on SIGHUP, and appended to when a key enrols. A version that does not parse is refused with an
/// error in the log, and the last good list stays in force.
public final class AuthorizedPeersFile: @unchecked Sendable {
    public let path: String
    private var seen: (inode: UInt64, size: Int64, modified: Int64, nanoseconds: Int64)?

    public init(path: String) { self.path = path }

    /// Reads and parses the file (at start-up: errors are the caller's to report).
    public func load() throws -> AuthorizedPeers {
        let snapshot = stamp()
        let text = String(
            decoding: try readContents(of: path, label: "authorized peers file ", limit: 16 << 20), as: UTF8.self)
        let peers = try AuthorizedPeers(parsing: text)
        seen = snapshot
        return peers
    }

    /// The new list when the file changed since it was last read (or always when `force`), nil otherwise.
    public func reloadIfChanged(force: Bool = false, logger: Logger) -> AuthorizedPeers? {
        let now = stamp()
        if !force, let now, let seen, now == seen { return nil }
        do {
            let peers = try load()
            logger.notice(
                "authorized peers reloaded", metadata: ["path": "\(path)", "peers": "\(peers.entries.count)"])
            return peers
        } catch {
            seen = now
            logger.error("authorized peers not reloaded, the last good list stays", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// Adds an enrolled key's line.
    public func append(_ entry: AuthorizedPeers.Entry, logger: Logger) {
        do {
            try appendLine(entry.line, to: path)
        } catch {
            logger.error("cannot add an enrolled key", metadata: ["error": "\(error)"])
        }
        seen = stamp()
    }

    private func stamp() -> (inode: UInt64, size: Int64, modified: Int64, nanoseconds: Int64)? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return (UInt64(info.st_ino), Int64(info.st_size), Int64(info.st_mtim.tv_sec), Int64(info.st_mtim.tv_nsec))
    }
}
