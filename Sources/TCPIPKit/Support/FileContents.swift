#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads a file whole (stdin when `path` is "-" and `stdinDash` is set), at most `limit` bytes. A file that cannot
/// be opened or read is exit 66, with `label` (what the file is for) in the message.
public func readContents(of path: String, label: String, limit: Int = .max, stdinDash: Bool = false) throws
    -> [UInt8]
{
    let fd = stdinDash && path == "-" ? 0 : open(path, O_RDONLY | O_CLOEXEC)
    func failure() -> TCPIPError {
        TCPIPError(.noInput, "cannot read \(label)\(path): \(String(cString: strerror(errno)))")
    }
    guard fd >= 0 else { throw failure() }
    defer { if fd > 0 { close(fd) } }
    var data: [UInt8] = []
    var block = [UInt8](repeating: 0, count: 1 << 16)
    while data.count < limit {
        let count = block.withUnsafeMutableBytes { read(fd, $0.baseAddress, min($0.count, limit - data.count)) }
        if count < 0 && errno == EINTR { continue }
        guard count >= 0 else { throw failure() }
        if count == 0 { break }
        data += block[..<count]
    }
    return data
}
