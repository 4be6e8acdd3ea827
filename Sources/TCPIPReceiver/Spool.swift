import CTCPIPSystem
import TCPIPCore
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
    /// Partial files of resumable transfers that ended early, kept for the sender to resume (`--partial-max-age`).
    public var partialDirectory: String { root + "/.tcpip/partial" }

    /// A file whose metadata record cannot be written is not published (the hub's store: the record is who queued it
    /// and the only way it is ever delivered). A receiver's spool publishes it anyway, with a warning: the file is
    /// there, and start-up gives it a record.
    public var requiresRecords = false

    public init(root: String) {
        var root = root
        while root.count > 1 && root.hasSuffix("/") { root.removeLast() }
        self.root = root
    }

    public var lockPath: String { root + "/.tcpip/lock" }

    /// Takes the spool for this process: one daemon per spool, or the second would remove the first one's transfers
    /// in progress. Creates `SPOOL/.tcpip` if needed and touches nothing else; the lock (flock(2) on
    /// `SPOOL/.tcpip/lock`, which holds the holder's PID) lasts while the returned value lives.
    public func lock() throws -> SpoolLock {
        for path in [root, root + "/.tcpip"] where mkdir(path, path == root ? 0o755 : 0o750) != 0 && errno != EEXIST {
            throw SpoolError.cannotCreate(path, errno)
        }
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw SpoolError.cannotCreate(lockPath, errno) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            var bytes = [UInt8](repeating: 0, count: 32)
            let count = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
            close(fd)
            guard code == EWOULDBLOCK else { throw SpoolError.cannotCreate(lockPath, code) }
            let holder = String(decoding: bytes.prefix(max(count, 0)), as: UTF8.self).filter(\.isNumber)
            throw SpoolError.locked(root, holder: holder.isEmpty ? nil : holder)
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return SpoolLock(descriptor: fd)
    }

    /// Creates the spool's directories if needed and removes what a crash left in the temporary directory.
    /// Returns how many leftovers were removed. Call it only while holding ``lock()``.
    @discardableResult
    public func prepare() throws -> Int {
        // Transfers in progress are the daemon's alone (0700); published files and records are for the service group.
        for (path, mode) in [
            (root, 0o755), (root + "/.tcpip", 0o750), (temporaryDirectory, 0o700), (metadataDirectory, 0o750),
            (partialDirectory, 0o700),
        ] {
            if mkdir(path, mode_t(mode)) != 0 && errno != EEXIST {
                throw SpoolError.cannotCreate(path, errno)
            }
        }
        guard access(root, W_OK) == 0 else { throw SpoolError.cannotCreate(root, errno) }
        var removed = 0
        for name in directoryEntries(temporaryDirectory) ?? [] where unlink(temporaryDirectory + "/" + name) == 0 {
            removed += 1
        }
        return removed
    }

    /// Removes partial files not written to for `age` (nobody came back to resume them), with their records, and
    /// records whose file is gone. Returns how many files.
    public func removePartials(olderThan age: Duration) -> Int {
        let limit = time(nil) - Int(age.components.seconds)
        var removed = 0
        let names = directoryEntries(partialDirectory) ?? []
        for name in names where !name.hasSuffix(".json") {
            let path = partialDirectory + "/" + name
            var info = stat()
            if stat(path, &info) == 0, info.st_mtim.tv_sec < limit, unlink(path) == 0 {
                unlink(path + ".json")
                removed += 1
            }
        }
        for name in names where name.hasSuffix(".json") {
            let path = partialDirectory + "/" + name
            if access(String(path.dropLast(5)), F_OK) != 0 { unlink(path) }
        }
        return removed
    }

    /// Writes the state record beside a new partial file (best effort: it is for operators, not for resuming).
    public func writePartialRecord(_ name: String, _ record: String) {
        let path = partialDirectory + "/" + name + ".json"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o640)
        guard fd >= 0 else { return }
        defer { close(fd) }
        try? Self.writeAll(fd, Array((record + "\n").utf8))
    }

    /// Opens (or makes) the partial file `name` of a resumable transfer; returns its descriptor, path and the bytes it
    /// holds. Mode 0640 less the umask, as a temporary file: it is published by a hard link.
    public func openPartial(_ name: String) throws -> (descriptor: Int32, path: String, held: UInt64) {
        let path = partialDirectory + "/" + name
        var fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o640)
        guard fd >= 0 else { throw SpoolError.cannotCreate(path, errno) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw SpoolError.cannotCreate(path, EINVAL)
        }
        if info.st_nlink > 1 {
            // Also published (the daemon died between linking it in and removing this name): never write to that
            // inode; start a new partial file instead.
            close(fd)
            unlink(path)
            fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o640)
            guard fd >= 0 else { throw SpoolError.cannotCreate(path, errno) }
            return (fd, path, 0)
        }
        guard lseek(fd, 0, SEEK_END) >= 0 else {
            close(fd)
            throw SpoolError.cannotCreate(path, errno)
        }
        return (fd, path, UInt64(info.st_size))
    }

    /// Bytes free for unprivileged users on the spool's file system.
    public func freeBytes() -> UInt64? {
        var stats = statvfs()
        guard statvfs(root, &stats) == 0 else { return nil }
        return UInt64(stats.f_bavail) * UInt64(stats.f_frsize)
    }

    /// Moves a resumable transfer's partial file out of the partial directory before it is published, so that a new
    /// attempt at the same file can never open (and truncate, or write to) the inode being published. Returns the new
    /// path, or the old one if it could not be moved.
    public func retirePartial(_ path: String) -> String {
        guard path.hasPrefix(partialDirectory + "/") else { return path }
        for attempt in 0..<100 {
            let target = "\(temporaryDirectory)/resumed.\(getpid()).\(attempt).part"
            if access(target, F_OK) == 0 { continue }
            if rename(path, target) == 0 { return target }
            break
        }
        return path
    }

    /// Creates a new temporary file, exclusively, mode 0640 less the umask (it is published by a hard link, so that
    /// is the published file's mode: readable by the daemon's group). Returns its descriptor and path.
    public func createTemporary(tag: String) throws -> (descriptor: Int32, path: String) {
        if Self.namesDescriptors {
            let fd = tcpip_open_tmpfile(temporaryDirectory, 0o640)
            if fd >= 0 { return (fd, Self.anonymousPrefix + String(fd)) }
            // No O_TMPFILE on this file system (EOPNOTSUPP, EISDIR): a named one. (A real failure fails there too.)
        }
        return try createNamedTemporary(tag: tag)
    }

    /// A temporary file with a name in the temporary directory (what a crash leaves there, ``prepare()`` removes).
    package func createNamedTemporary(tag: String) throws -> (descriptor: Int32, path: String) {
        for attempt in 0..<100 {
            let path = "\(temporaryDirectory)/\(tag).\(getpid()).\(attempt).part"
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
            if fd >= 0 { return (fd, path) }
            if errno != EEXIST { throw SpoolError.cannotCreate(path, errno) }
        }
        throw SpoolError.cannotCreate(temporaryDirectory + "/" + tag, EEXIST)
    }

    /// Temporary files are unnamed where the system allows (O_TMPFILE, given a name only when published, through
    /// /proc/self/fd): publishing a small file then changes one directory instead of three (no name made in the
    /// temporary directory, none removed), and a crash leaves nothing behind.
    static let namesDescriptors = access("/proc/self/fd", F_OK) == 0
    static let anonymousPrefix = "/proc/self/fd/"

    /// Whether a temporary path names an unnamed file through its descriptor: valid only while that is open.
    static func isAnonymous(_ path: String) -> Bool { path.hasPrefix(anonymousPrefix) }

    /// Removes a temporary file's name, if it has one (an unnamed one goes with its descriptor).
    public static func removeTemporary(_ path: String) {
        if !isAnonymous(path) { unlink(path) }
    }

    /// linkat(2) of a temporary file (named, or unnamed through its open descriptor) to `name` in `directory`.
    static func linkTemporary(_ path: String, to directory: Int32, _ name: String) -> Bool {
        linkat(AT_FDCWD, path, directory, name, isAnonymous(path) ? AT_SYMLINK_FOLLOW : 0) == 0
    }

    /// Publishes a complete temporary file under `name`, or `name.1`, `name.2`, … if taken, never replacing anything.
    /// Syncs the directory. Returns the name used.
    public func publish(temporary path: String, as name: String) throws -> String {
        let stored = try link(temporary: path, as: name)
        try Self.sync(directories: [root])
        return stored
    }

    /// Links a temporary file in under `name` (a relative path, checked by ``SpoolName/problem(withPath:)``) or the
    /// first free `name.N` (link fails when the name exists, so nothing is ever replaced), then removes the temporary
    /// name. Creates the directories of a path as needed, never following a symbolic link. Does not sync.
    func link(temporary path: String, as name: String) throws -> String {
        let (directories, leaf) = Self.split(name)
        let directory = try openDirectories(directories, under: root, creating: true)
        defer { if directory != AT_FDCWD { close(directory) } }
        let base = directories.isEmpty ? root + "/" : ""
        var candidate = leaf
        var attempt = 0
        while true {
            if Self.linkTemporary(path, to: directory, base + candidate) { break }
            guard errno == EEXIST else { throw SpoolError.cannotPublish(name, errno) }
            attempt += 1
            guard attempt < 10_000 else { throw SpoolError.cannotPublish(name, EEXIST) }
            candidate = "\(leaf).\(attempt)"
        }
        Self.removeTemporary(path)
        return (directories + [candidate]).joined(separator: "/")
    }

    /// A relative path's directories and its last component.
    package static func split(_ name: String) -> (directories: [String], leaf: String) {
        let components = name.split(separator: "/").map(String.init)
        return (Array(components.dropLast()), components.last ?? name)
    }

    /// The directories from `top` down to `name`'s parent (the ones to sync after linking `name` in), each with
    /// `suffix`.
    static func ancestors(of name: String, under top: String, suffix: String = "") -> [String] {
        var path = top
        var result = [top]
        for directory in split(name).directories {
            path += "/" + directory + suffix
            result.append(path)
        }
        return result
    }

    /// What a directory of a tree is called under `.tcpip/meta`: `logs/a.txt`'s record is `meta/logs.d/a.txt.json`,
    /// so a directory there can never take the name of a file's record (`meta/logs.json`).
    package static let recordDirectorySuffix = ".d"

    /// Opens `top/directories…` one component at a time with O_NOFOLLOW (a symbolic link planted in the spool cannot
    /// lead outside it), creating what is missing when `creating`. Returns AT_FDCWD when `directories` is empty.
    private func openDirectories(_ directories: [String], under top: String, creating: Bool) throws -> Int32 {
        guard !directories.isEmpty else { return AT_FDCWD }
        var current = Glibc.open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard current >= 0 else { throw SpoolError.cannotCreate(top, errno) }
        var path = top
        for directory in directories {
            path += "/" + directory
            if creating && mkdirat(current, directory, 0o755) != 0 && errno != EEXIST {
                let code = errno
                close(current)
                throw SpoolError.cannotCreate(path, code)
            }
            let next = openat(current, directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let code = errno
            close(current)
            guard next >= 0 else { throw SpoolError.cannotCreate(path, code) }
            current = next
        }
        return current
    }

    /// A verified file in the temporary directory, waiting to be made durable and published.
    public struct Finished: Sendable {
        /// The open temporary file; ``commit(_:)`` closes it.
        public var descriptor: Int32
        public var temporary: String
        /// The name asked for.
        public var name: String
        /// Renders the metadata record for the name the file got.
        public var record: @Sendable (_ storedAs: String) -> String

        public init(descriptor: Int32, temporary: String, name: String, record: @escaping @Sendable (String) -> String)
        {
            self.descriptor = descriptor
            self.temporary = temporary
            self.name = name
            self.record = record
        }
    }

    /// What ``commit(_:)`` did with one file: the name it is published under, or why it is not; and whether its
    /// metadata record could not be written (the file is published all the same).
    public struct Committed: Sendable {
        public var stored: Result<String, SpoolError>
        public var recordError: SpoolError?
    }

    /// Makes a batch of finished files durable and publishes them, in two syncs whatever the batch's size (group
    /// commit): the files' data; then, after linking each in and writing its metadata record, the directories and
    /// records. A file is only reported stored once both syncs are done. Closes every descriptor.
    public func commit(_ files: [Finished]) -> [Committed] {
        do {
            try Self.sync(files.map(\.descriptor))
        } catch {
            for file in files {
                Self.removeTemporary(file.temporary)
                close(file.descriptor)
            }
            return files.map { _ in Committed(stored: .failure(Self.spoolError(error)), recordError: nil) }
        }
        var committed: [Committed] = []
        var records: [Int32] = []
        // Every directory a file or record was linked into, and those created on the way (their parents hold them).
        var directories: [String] = [root, metadataDirectory]
        for file in files {
            // Closed once linked: an unnamed temporary is reached through its descriptor.
            defer { close(file.descriptor) }
            do {
                let stored = try link(temporary: file.temporary, as: file.name)
                for directory in Self.ancestors(of: stored, under: root)
                    + Self.ancestors(of: stored, under: metadataDirectory, suffix: Self.recordDirectorySuffix)
                where !directories.contains(directory) {
                    directories.append(directory)
                }
                var entry = Committed(stored: .success(stored), recordError: nil)
                do {
                    records.append(try writeRecord(file.record(stored), for: stored))
                } catch  where requiresRecords {
                    unlink(root + "/" + stored)
                    entry.stored = .failure(Self.spoolError(error))
                } catch {
                    entry.recordError = Self.spoolError(error)
                }
                committed.append(entry)
            } catch {
                Self.removeTemporary(file.temporary)
                committed.append(Committed(stored: .failure(Self.spoolError(error)), recordError: nil))
            }
        }
        defer { for fd in records { close(fd) } }
        do {
            try Self.sync(records, directories: directories)
        } catch {
            // Published, but not known to be on disk: the sender must not be told it is stored.
            for index in committed.indices where (try? committed[index].stored.get()) != nil {
                committed[index].stored = .failure(Self.spoolError(error))
            }
        }
        return committed
    }

    /// Writes a small file atomically under a final name (temporary file, fsync, publish without replacing).
    public func store(_ bytes: [UInt8], as name: String, tag: String) throws -> String {
        let (fd, path) = try createTemporary(tag: tag)
        defer { close(fd) }
        do {
            try Self.writeAll(fd, bytes)
            try Self.sync([fd])
            return try publish(temporary: path, as: name)
        } catch {
            Self.removeTemporary(path)
            throw error
        }
    }

    /// Writes the metadata record of a published file (replacing a previous record of that name). Does not sync;
    /// returns the record's open descriptor for the caller's sync.
    func writeRecord(_ json: String, for storedName: String) throws -> Int32 {
        let (fd, path) = try createTemporary(tag: "meta")
        do {
            try Self.writeAll(fd, Array((json + "\n").utf8))
            let (directories, leaf) = Self.split(storedName)
            let directory = try openDirectories(
                directories.map { $0 + Self.recordDirectorySuffix }, under: metadataDirectory, creating: true)
            defer { if directory != AT_FDCWD { close(directory) } }
            let target = (directories.isEmpty ? metadataDirectory + "/" : "") + leaf + ".json"
            if Self.isAnonymous(path) {
                if Self.linkTemporary(path, to: directory, target) { return fd }
                guard errno == EEXIST else { throw SpoolError.writeFailed(errno) }
            }
            // A record of that name is there already (a consumer removed its file): replaced in one step, from a name.
            let named = try nameTemporary(path)
            guard renameat(AT_FDCWD, named, directory, target) == 0 else {
                let code = errno
                if named != path { unlink(named) }
                throw SpoolError.writeFailed(code)
            }
            return fd
        } catch {
            Self.removeTemporary(path)
            close(fd)
            throw error
        }
    }

    /// Waits until what was written through `descriptors` and into the `directories` is on disk: an fsync each when
    /// they are few, else one syncfs for the whole file system, which costs about as much as a few fsyncs (measured
    /// here on ext4: 1,000 files of 4 KiB, 4,400/s with an fsync of file and directory each, 36,000/s with one syncfs).
    /// A named temporary path for `path`: itself if named, else a free name in the temporary directory it is linked to.
    func nameTemporary(_ path: String) throws -> String {
        guard Self.isAnonymous(path) else { return path }
        for attempt in 0..<100 {
            let named = "\(temporaryDirectory)/named.\(getpid()).\(attempt).part"
            if Self.linkTemporary(path, to: AT_FDCWD, named) { return named }
            if errno != EEXIST { throw SpoolError.cannotCreate(named, errno) }
        }
        throw SpoolError.cannotCreate(temporaryDirectory + "/named", EEXIST)
    }

    static func sync(_ descriptors: [Int32] = [], directories: [String] = []) throws {
        var opened: [Int32] = []
        defer { for fd in opened { close(fd) } }
        for directory in directories {
            let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { throw SpoolError.syncFailed(errno) }
            opened.append(fd)
        }
        let all = opened + descriptors
        if all.count <= 3 {
            for fd in all where fsync(fd) != 0 { throw SpoolError.syncFailed(errno) }
        } else if tcpip_syncfs(all[0]) != 0 {
            throw SpoolError.syncFailed(errno)
        }
    }

    private static func spoolError(_ error: any Error) -> SpoolError {
        error as? SpoolError ?? .writeFailed(EIO)
    }

    /// Bytes written before the kernel is asked to start writing them to disk.
    static let writebackWindow: Int64 = 8 << 20

    /// Starts writing each completed ``writebackWindow`` of a file being received to disk while the rest arrives, so
    /// the fsync at the end does not have the whole file left to write. Only a hint: errors show up at the fsync.
    static func startWriteback(_ fd: Int32, wrote count: Int64, at offset: Int64) {
        let first = offset / writebackWindow
        let last = (offset + count) / writebackWindow
        guard last > first else { return }
        _ = tcpip_start_writeback(fd, first * writebackWindow, (last - first) * writebackWindow)
    }

    package static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try writeAll(fd, $0) }
    }

    package static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at position: Int64? = nil) throws {
        let failure = TCPIPCore.writeAll(fd, bytes, at: position)
        if failure != 0 { throw SpoolError.writeFailed(failure) }
    }
}

/// Something the spool could not do.
public enum SpoolError: Error, CustomStringConvertible {
    case cannotCreate(String, Int32)
    case cannotPublish(String, Int32)
    case writeFailed(Int32)
    case syncFailed(Int32)
    /// Storing would leave less free space than the receiver must keep.
    case noSpace(String)
    /// Another process holds the spool.
    case locked(String, holder: String?)

    public var description: String {
        switch self {
        case .noSpace(let text): text
        case .locked(let root, let holder):
            "the spool \(root) is in use by another tcpiprecvd" + (holder.map { " (pid \($0))" } ?? "")
        case .cannotCreate(let path, let code): "cannot create \(path): \(String(cString: strerror(code)))"
        case .cannotPublish(let name, let code): "cannot publish \(name): \(String(cString: strerror(code)))"
        case .writeFailed(let code): "write failed: \(String(cString: strerror(code)))"
        case .syncFailed(let code): "sync to disk failed: \(String(cString: strerror(code)))"
        }
    }

    /// True when the disk is full.
    public var isNoSpace: Bool {
        switch self {
        case .writeFailed(let code), .syncFailed(let code): return code == ENOSPC || code == EDQUOT
        case .noSpace: return true
        default: return false
        }
    }
}

/// The spool's lock, held while this value lives (see ``Spool/lock()``).
public final class SpoolLock: Sendable {
    private let descriptor: Int32

    init(descriptor: Int32) { self.descriptor = descriptor }

    deinit { close(descriptor) }
}
