import TCPIPWire

#if canImport(Glibc)
    import Glibc
#endif

/// The spool directory and its rules.
///
/// ```
/// SPOOL/NAME                      published files, complete and verified, never replaced (a clash gets NAME.1, …)
/// SPOOL/message-TIME-ID-FROM.txt  messages, one file each
/// SPOOL/.tcpip/tmp/               transfers in progress (mode 0600); removed on failure and at start-up
/// SPOOL/.tcpip/meta/NAME.json     one metadata record per published file
/// ```
///
/// Entries starting with a dot belong to the daemon; consumers ignore them.
public struct Spool: Sendable {
    public let root: String
    public var temporaryDirectory: String { root + "/.tcpip/tmp" }
    public var metadataDirectory: String { root + "/.tcpip/meta" }

    public init(root: String) {
        var root = root
        while root.count > 1 && root.hasSuffix("/") { root.removeLast() }
        self.root = root
    }

    /// Creates the spool's directories if needed and removes what a crash left in the temporary directory.
    /// Returns how many leftovers were removed.
    @discardableResult
    public func prepare() throws -> Int {
        for path in [root, root + "/.tcpip", temporaryDirectory, metadataDirectory] {
            if mkdir(path, 0o755) != 0 && errno != EEXIST {
                throw SpoolError.cannotCreate(path, errno)
            }
        }
        guard access(root, W_OK) == 0 else { throw SpoolError.cannotCreate(root, errno) }
        var removed = 0
        if let directory = opendir(temporaryDirectory) {
            defer { closedir(directory) }
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) {
                    String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name == "." || name == ".." { continue }
                if unlink(temporaryDirectory + "/" + name) == 0 { removed += 1 }
            }
        }
        return removed
    }

    /// Bytes free for unprivileged users on the spool's file system.
    public func freeBytes() -> UInt64? {
        var stats = statvfs()
        guard statvfs(root, &stats) == 0 else { return nil }
        return UInt64(stats.f_bavail) * UInt64(stats.f_frsize)
    }

    /// Creates a new temporary file, exclusively, mode 0600. Returns its descriptor and path.
    public func createTemporary(tag: String) throws -> (descriptor: Int32, path: String) {
        for attempt in 0..<100 {
            let path = "\(temporaryDirectory)/\(tag).\(getpid()).\(attempt).part"
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if fd >= 0 { return (fd, path) }
            if errno != EEXIST { throw SpoolError.cannotCreate(path, errno) }
        }
        throw SpoolError.cannotCreate(temporaryDirectory + "/" + tag, EEXIST)
    }

    /// Publishes a complete temporary file under `name`, or `name.1`, `name.2`, … if taken, never replacing anything
    /// (link then unlink: link fails when the name exists). Syncs the directory. Returns the name used.
    public func publish(temporary path: String, as name: String) throws -> String {
        var candidate = name
        var attempt = 0
        while true {
            if link(path, root + "/" + candidate) == 0 { break }
            guard errno == EEXIST else { throw SpoolError.cannotPublish(candidate, errno) }
            attempt += 1
            guard attempt < 10_000 else { throw SpoolError.cannotPublish(name, EEXIST) }
            candidate = "\(name).\(attempt)"
        }
        unlink(path)
        syncDirectory(root)
        return candidate
    }

    /// Writes a small file atomically under a final name (temporary file, fsync, publish without replacing).
    public func store(_ bytes: [UInt8], as name: String, tag: String) throws -> String {
        let (fd, path) = try createTemporary(tag: tag)
        do {
            try Self.writeAll(fd, bytes)
            guard fsync(fd) == 0 else { throw SpoolError.writeFailed(errno) }
            close(fd)
            return try publish(temporary: path, as: name)
        } catch {
            close(fd)
            unlink(path)
            throw error
        }
    }

    /// Writes the metadata record of a published file (the record is replaced if a previous one had that name).
    public func writeMetadata(_ json: String, for storedName: String) throws {
        let (fd, path) = try createTemporary(tag: "meta")
        defer { close(fd) }
        do {
            try Self.writeAll(fd, Array(json.utf8))
            _ = fsync(fd)
            guard rename(path, metadataDirectory + "/" + storedName + ".json") == 0 else {
                throw SpoolError.writeFailed(errno)
            }
        } catch {
            unlink(path)
            throw error
        }
    }

    func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try writeAll(fd, $0) }
    }

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let written = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw SpoolError.writeFailed(errno)
            }
            offset += written
        }
    }
}

/// Something the spool could not do.
public enum SpoolError: Error, CustomStringConvertible {
    case cannotCreate(String, Int32)
    case cannotPublish(String, Int32)
    case writeFailed(Int32)

    public var description: String {
        switch self {
        case .cannotCreate(let path, let code): "cannot create \(path): \(String(cString: strerror(code)))"
        case .cannotPublish(let name, let code): "cannot publish \(name): \(String(cString: strerror(code)))"
        case .writeFailed(let code): "write failed: \(String(cString: strerror(code)))"
        }
    }

    /// True when the disk is full.
    public var isNoSpace: Bool {
        if case .writeFailed(let code) = self { return code == ENOSPC || code == EDQUOT }
        return false
    }
}
