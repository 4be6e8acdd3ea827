#if canImport(Glibc)
    import Glibc
#endif

/// The names in a directory, without `.` and `..`, in no particular order; nil when it cannot be opened (errno says
/// why).
public func directoryEntries(_ directory: String) -> [String]? {
    guard let handle = opendir(directory) else { return nil }
    defer { closedir(handle) }
    var names: [String] = []
    while let entry = readdir(handle) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}
