/// Decides whether a file name from the wire may be used in the spool.
///
/// A name must be one path component that cannot escape the spool, hide among the daemon's own entries, or confuse
/// a terminal or another system: no `/` or `\`, not `.`, `..` or empty, no leading dot, no NUL or control characters,
/// at most 255 bytes, not a device name (`CON`, `NUL`, `COM1`, …).
public enum SpoolName {
    public static let maxLength = 255

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
}

extension String {
    fileprivate var trimmingTrailingSpaces: String {
        var copy = self
        while copy.hasSuffix(" ") { copy.removeLast() }
        return copy
    }
}
