import TCPIPCore
import TCPIPWire

#if canImport(Glibc)
    import Glibc
#endif

/// `send --queue` for a receiver that is not connected: the message goes to the hub's store as a file marked as a
/// message (FileStart tag 10), through the file machinery (hashed, resumable, verified); the receiver stores it as a
/// message when the store delivers it.
public enum MessageQueueing {
    /// Reads a whole message from `reader`; nil when it is larger than `limit` bytes.
    public static func read(_ reader: InputReader, limit: Int) async throws -> [UInt8]? {
        var bytes: [UInt8] = []
        while true {
            let (chunk, atEnd) = try await reader.readFull(upTo: 1 << 20)
            if let chunk { bytes += chunk.readableBytesView }
            if bytes.count > limit { return nil }
            if atEnd { return bytes }
        }
    }

    /// Sends `message` to the receiver `name` through the hub's store (or straight to it, if it connected meanwhile).
    /// `check` is the sender's pin check of the receiver's key (the one the store hands over to seal to).
    public static func run(
        _ message: [UInt8], to name: String, session: ClientSession, timeout: Duration,
        check: (@Sendable (PeerRecord) throws -> Void)? = nil
    ) async throws -> FileResult {
        // An unlinked temporary file: the file machinery reads, hashes and resends it like any regular file.
        let fd = try unlinkedTemporary("tcpip-message")
        let failure = message.withUnsafeBytes { writeAll(fd, $0, at: 0) }
        guard failure == 0 else {
            close(fd)
            throw TCPIPError(
                .cannotCreate, "cannot hold the message in a temporary file: \(String(cString: strerror(failure)))")
        }
        var source = FileSendRequest.Source(path: nil, name: "message-\(WireClock.now()).txt")
        source.message = true
        var request = FileSendRequest(sources: [source], recipients: [name])
        request.queue = true
        request.timeout = timeout
        request.checkRecipient = check
        let results = try await FileSending.run(request, descriptors: [.success(fd)], session: session)
        guard let result = results.first else { throw TCPIPError.internalError("no result for the queued message") }
        return result
    }

    /// A new file in `TMPDIR` (else /tmp), already unlinked: gone with its descriptor.
    static func unlinkedTemporary(_ prefix: String) throws -> Int32 {
        var template = Array("\(temporaryDirectory)/\(prefix)-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw TCPIPError(.cannotCreate, "cannot make a temporary file: \(String(cString: strerror(errno)))")
        }
        unlink(template)
        return fd
    }

    private static var temporaryDirectory: String {
        guard let value = getenv("TMPDIR"), let path = String(validatingCString: value), !path.isEmpty else {
            return "/tmp"
        }
        return path
    }
}
