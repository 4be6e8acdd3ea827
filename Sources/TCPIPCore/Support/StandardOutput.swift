import NIOConcurrencyHelpers

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// stdout for data: unbuffered writes of whole lines, so each line is out before the next packet is read, and a
/// closed pipe (`| head -1`) is reported as ``Closed`` instead of killing the process.
public enum StandardOutput {
    /// The reader of stdout went away.
    public struct Closed: Error {}

    /// True when stdout is a terminal (pretty-print then).
    public static var isTerminal: Bool { isatty(1) == 1 }

    /// Ignore SIGPIPE so a closed stdout shows up as EPIPE. Call once at start-up.
    public static func ignoreSIGPIPE() { signal(SIGPIPE, SIG_IGN) }

    public static func write(_ text: String) throws {
        var text = text
        try text.withUTF8 { try write(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// Writes a JSON value as one line.
    public static func write(line value: JSON) throws {
        try value.utf8(newline: true).withUnsafeBytes { try write(bytes: $0) }
    }

    public static func write(bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(1, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw Closed()
            }
            offset += written
        }
    }

    /// Calls `onGone` (once, on a thread of its own) as soon as the reader of stdout goes away, so a command that
    /// waits for input to print (`listen`, `peers --watch`) can end then, as `tail -f` does, instead of at its next
    /// write. The thread waits in poll(2) for POLLERR (a pipe whose reader closed) or POLLHUP; a regular file or
    /// /dev/null never wakes it.
    public static func watchReader(onGone: @escaping @Sendable () -> Void) {
        readerGoneHandler.withLockedValue { $0 = onGone }
        startThread {
            var descriptor = pollfd(fd: 1, events: 0, revents: 0)
            while true {
                if poll(&descriptor, 1, -1) < 0 {
                    if errno == EINTR { continue }
                    return
                }
                if descriptor.revents & Int16(POLLNVAL) != 0 { return }
                if descriptor.revents & Int16(POLLERR | POLLHUP) != 0 {
                    StandardOutput.readerGoneHandler.withLockedValue({ $0 })?()
                    return
                }
            }
        }
    }

    private static let readerGoneHandler = NIOLockedValueBox<(@Sendable () -> Void)?>(nil)

    /// Writes one line to stderr (for the one-line error report).
    public static func error(_ line: String, newline: Bool = true) {
        var text = newline ? line + "\n" : line
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = Glibc.write(2, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { return }
                offset += written
            }
        }
    }
}
