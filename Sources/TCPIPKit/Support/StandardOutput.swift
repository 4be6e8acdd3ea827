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
