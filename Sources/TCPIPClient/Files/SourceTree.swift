import TCPIPCore

#if canImport(Glibc)
    import Glibc
#endif

extension FileSendRequest.Source {
    /// The files `send-file` sends for `paths`, each with the name the receiver stores it under.
    ///
    /// - A file is sent under its base name; with `keepingRelativePaths` (`--files-from`), a relative path is kept
    ///   as the name (without `.` components; one with `..` falls back to the base name, an absolute path too).
    /// - A directory is an error unless `recursive`: then its files are sent with their paths relative to the
    ///   directory's parent (`logs` sends `logs/a.txt`, `logs/sub/b.txt`), or relative to the directory itself when
    ///   the path ends with `/` or is `.` (as rsync does). Symbolic links inside are skipped (`warn` says so) unless
    ///   `followingSymlinks`; a directory reached twice (a link loop) is skipped. Other file types are skipped.
    ///
    /// A directory that cannot be read becomes a source with a ``problem`` (reported as unreadable, 66).
    public static func expand(
        _ paths: [String], recursive: Bool, followingSymlinks: Bool, keepingRelativePaths: Bool,
        warn: (String) -> Void
    ) -> [FileSendRequest.Source] {
        var sources: [FileSendRequest.Source] = []
        for path in paths {
            var info = stat()
            let isDirectory = stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
            guard isDirectory else {
                sources.append(.init(path: path, name: name(for: path, keepingRelativePath: keepingRelativePaths)))
                continue
            }
            guard recursive else {
                var source = FileSendRequest.Source(path: path, name: baseName(path))
                source.problem = "\(path) is a directory (use -r to send a tree)"
                sources.append(source)
                continue
            }
            let base = baseName(path)
            let prefix = path.hasSuffix("/") || base == "." || base == ".." || base.isEmpty ? "" : base + "/"
            var visited: Set<[UInt64]> = [[UInt64(info.st_dev), UInt64(info.st_ino)]]
            walk(
                path, prefix: prefix, depth: 0, followingSymlinks: followingSymlinks, visited: &visited,
                into: &sources, warn: warn)
        }
        return sources
    }

    private static func walk(
        _ directory: String, prefix: String, depth: Int, followingSymlinks: Bool, visited: inout Set<[UInt64]>,
        into sources: inout [FileSendRequest.Source], warn: (String) -> Void
    ) {
        guard let names = directoryEntries(directory) else {
            var source = FileSendRequest.Source(path: directory, name: prefix)
            source.problem = "cannot read \(directory): \(String(cString: strerror(errno)))"
            sources.append(source)
            return
        }
        let separator = directory.hasSuffix("/") ? "" : "/"
        for name in names.sorted() {
            let path = directory + separator + name
            if name.hasPrefix(".") {
                // A receiver refuses names starting with a dot (they are its own): .git and friends stay home.
                warn("skipping \(path): names starting with '.' are not sent")
                continue
            }
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            if (info.st_mode & S_IFMT) == S_IFLNK {
                guard followingSymlinks else {
                    warn("skipping the symbolic link \(path) (--follow-symlinks follows them)")
                    continue
                }
                guard stat(path, &info) == 0 else {
                    warn("skipping the broken symbolic link \(path)")
                    continue
                }
            }
            switch info.st_mode & S_IFMT {
            case S_IFREG:
                var source = FileSendRequest.Source(path: path, name: prefix + name)
                // What the receiver would refuse is reported here, before anything is sent.
                if let problem = SpoolName.problem(withPath: source.name) {
                    source.problem = "\(path) cannot be sent under the name \(source.name): \(problem)"
                }
                sources.append(source)
            case S_IFDIR:
                guard visited.insert([UInt64(info.st_dev), UInt64(info.st_ino)]).inserted else {
                    warn("skipping \(path): that directory was already sent (a link loop)")
                    continue
                }
                walk(
                    path, prefix: prefix + name + "/", depth: depth + 1, followingSymlinks: followingSymlinks,
                    visited: &visited, into: &sources, warn: warn)
            default:
                warn("skipping \(path): not a regular file or directory")
            }
        }
    }

    static func baseName(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        return trimmed.split(separator: "/").last.map(String.init) ?? String(trimmed)
    }

    static func name(for path: String, keepingRelativePath: Bool) -> String {
        guard keepingRelativePath, !path.hasPrefix("/") else { return baseName(path) }
        let components = path.split(separator: "/").filter { $0 != "." }
        guard !components.contains("..") && !components.isEmpty else { return baseName(path) }
        return components.joined(separator: "/")
    }
}
