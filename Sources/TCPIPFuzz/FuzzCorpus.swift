import TCPIPCore

#if canImport(Glibc)
    import Glibc
#endif

/// Corpus files on disk: a seed corpus and the regression inputs (each a finding, kept once fixed).
public enum FuzzCorpus {
    /// The regular files at `path` (a file, or a directory's files, not recursing), sorted.
    public static func files(at path: String) -> [String] {
        var info = stat()
        guard stat(path, &info) == 0 else { return [] }
        guard (info.st_mode & S_IFMT) == S_IFDIR else { return [path] }
        return (directoryEntries(path) ?? []).filter { !$0.hasPrefix(".") }.sorted().map { path + "/" + $0 }
    }

    /// A file's bytes (empty when it cannot be read).
    public static func read(_ path: String) -> [UInt8] {
        (try? readContents(of: path, label: "")) ?? []
    }
}
