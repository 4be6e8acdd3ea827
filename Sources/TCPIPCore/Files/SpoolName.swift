/// Decides whether a file name from the wire may be used in the spool.
///
/// A name must be one path component that cannot escape the spool, hide among the daemon's own entries, or confuse
/// a terminal or another system: no `/` or `\`, not `.`, `..` or empty, no leading dot, no NUL or control characters,
/// at most 245 bytes, not a device name (`CON`, `NUL`, `COM1`, …). A tree's files come as a relative path of such
/// components (``problem(withPath:)``).
public enum SpoolName {
    /// 255 (the file system's limit for one component) less what the spool may add: a clash suffix up to `.9999` and
    /// the metadata record's `.json`. A longer name would be valid on the wire and then fail to publish.
    public static let maxLength = 245
    /// Components in a relative path.
    public static let maxDepth = 16
    /// Bytes in a relative path.
    public static let maxPathLength = 1024

    private static let deviceNames: Set<String> = {
        var names: Set<String> = ["CON", "PRN", "AUX", "NUL", "CLOCK$", "CONIN$", "CONOUT$"]
        for index in 0...9 {
            names.insert("COM\(index)")
            names.insert("LPT\(index)")
        }
        return names
    }()

    /// Why `name` is refused, or nil when it is safe.
    public static func problem(with name: String) -> String? {
        if name.isEmpty { return "the name is empty" }
        if name == "." || name == ".." { return "the name '\(name)' is not a file name" }
        if name.utf8.count > maxLength { return "the name is longer than \(maxLength) bytes" }
        if name.contains("/") || name.contains("\\") {
            return "the name contains a path separator; send one file name, not a path"
        }
        if name.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F..<0xA0).contains($0.value) }) {
            return "the name contains control characters"
        }
        if name.hasPrefix(".") { return "names starting with '.' are reserved for the receiver's own files" }
        let stem = name.split(separator: ".", maxSplits: 1).first.map(String.init)?.uppercased() ?? ""
        if deviceNames.contains(stem.trimmingTrailingSpaces) { return "'\(stem)' is a device name" }
        if name.hasSuffix(" ") { return "the name ends with a space" }
        return nil
    }

    /// Why the relative path `path` (components separated by `/`, each a safe name as ``problem(with:)`` says) is
    /// refused, or nil when it is safe: it then names a file inside the spool, never outside it.
    public static func problem(withPath path: String) -> String? {
        if path.utf8.count > maxPathLength { return "the path is longer than \(maxPathLength) bytes" }
        let components = path.split(separator: "/", omittingEmptySubsequences: false)
        if components.count > maxDepth { return "the path is deeper than \(maxDepth) components" }
        if path.hasPrefix("/") { return "the path is absolute" }
        for component in components {
            if let problem = problem(with: String(component)) {
                return components.count == 1 ? problem : "'\(component)' in the path: \(problem)"
            }
        }
        return nil
    }
}

extension String {
    fileprivate var trimmingTrailingSpaces: String {
        var copy = self
        while copy.hasSuffix(" ") { copy.removeLast() }
        return copy
    }
}
