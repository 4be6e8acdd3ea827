import Crypto

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

/// The SHA-256 state over the first `count` bytes of a file, or all of it when `count` is nil, read with pread from
/// offset 0 (the descriptor's own offset does not move). Blocking: call it on a thread pool. A file that cannot be read,
/// or ends before `count`, is exit 66 naming `path`.
package func sha256State(of descriptor: Int32, upTo count: UInt64? = nil, path: String) throws -> SHA256 {
    var hasher = SHA256()
    var block = [UInt8](repeating: 0, count: 1 << 20)
    var offset: UInt64 = 0
    while count.map({ offset < $0 }) ?? true {
        let wanted = Int(min(UInt64(block.count), (count ?? UInt64.max) - offset))
        let got = block.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, wanted, off_t(offset)) }
        if got < 0 && errno == EINTR { continue }
        guard got >= 0 else {
            throw TCPIPError(.noInput, "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        if got == 0 {
            guard count == nil else { throw TCPIPError(.noInput, "\(path) ended before \(count ?? 0) bytes") }
            break
        }
        block.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[..<got])) }
        offset += UInt64(got)
    }
    return hasher
}

/// Appends `line` and a newline to a text file and syncs it, after a newline first if the file's last line lacks
/// one (an operator's editor may leave it so): the new line never joins another. Creates the file with `mode` when
/// given, else it must exist. Exit 73 naming `path` when it cannot be written.
public func appendLine(_ line: String, to path: String, creatingWithMode mode: mode_t? = nil) throws {
    func failure() -> TCPIPError {
        TCPIPError(.cannotCreate, "cannot write \(path): \(String(cString: strerror(errno)))")
    }
    let fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC | (mode == nil ? 0 : O_CREAT), mode ?? 0)
    guard fd >= 0 else { throw failure() }
    defer { close(fd) }
    var last: UInt8 = 0x0A
    let size = lseek(fd, 0, SEEK_END)
    if size > 0 { _ = pread(fd, &last, 1, size - 1) }
    let bytes = Array(((last == 0x0A ? "" : "\n") + line + "\n").utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if written < 0 && errno == EINTR { continue }
        guard written > 0 else { throw failure() }
        offset += written
    }
    guard fsync(fd) == 0 else { throw failure() }
}

/// Writes all of `bytes` to `fd`, at `position` when given (whatever the descriptor's own offset says), retrying short
/// writes and EINTR. Returns 0, or the errno of the write that failed.
package func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at position: Int64? = nil) -> Int32 {
    var offset = 0
    while offset < bytes.count {
        let pointer = bytes.baseAddress! + offset
        let written =
            if let position { pwrite(fd, pointer, bytes.count - offset, off_t(position) + off_t(offset)) } else {
                write(fd, pointer, bytes.count - offset)
            }
        if written < 0 {
            if errno == EINTR { continue }
            return errno
        }
        offset += written
    }
    return 0
}
