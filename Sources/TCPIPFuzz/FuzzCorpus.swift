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
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            if !name.hasPrefix(".") { names.append(path + "/" + name) }
        }
        return names.sorted()
    }

    /// A file's bytes (empty when it cannot be read).
    public static func read(_ path: String) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var block = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = block.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            bytes += block[..<count]
        }
        return bytes
    }
}
