import NIOCore
import NIOPosix
import TCPIPCore
import TCPIPWire

#if canImport(Glibc)
    import Glibc
#endif

/// Reads a file descriptor (stdin by default) chunk by chunk on NIO's thread pool, so a pipe streams without being
/// read whole and no event loop ever blocks. Works for pipes, terminals, sockets and regular files alike.
///
/// ``prefetching(descriptor:headroom:)`` reads on a thread of its own instead, from the moment it is made (stdin of
/// `send`: the message is in hand by the time the hub has registered the sender).
public struct InputReader: Sendable {
    public let descriptor: Int32
    /// Bytes left free in front of each chunk, so a header can be put there without copying the chunk.
    public let headroom: Int
    private let prefetch: InputPrefetch?

    public init(descriptor: Int32 = 0, headroom: Int = MessagePart.headerSize) {
        self.descriptor = descriptor
        self.headroom = headroom
        prefetch = nil
    }

    private init(descriptor: Int32, headroom: Int, prefetch: InputPrefetch) {
        self.descriptor = descriptor
        self.headroom = headroom
        self.prefetch = prefetch
    }

    /// A reader that starts reading `descriptor` now, on a thread of its own, at most 1 MiB ahead of its consumer.
    public static func prefetching(descriptor: Int32 = 0, headroom: Int = MessagePart.headerSize) -> InputReader {
        InputReader(
            descriptor: descriptor, headroom: headroom,
            prefetch: InputPrefetch(descriptor: descriptor, headroom: headroom))
    }

    /// Reads up to `maximum` bytes; returns nil at end of input. Returns as soon as some bytes are there (a pipe's
    /// reader gets each line as soon as it is written).
    public func read(upTo maximum: Int) async throws -> ByteBuffer? {
        if let prefetch { return try await prefetch.read(upTo: maximum) }
        return try await read(upTo: maximum, untilFull: false).bytes
    }

    /// Reads until `maximum` bytes or the end of input, in one trip to the thread pool, so chunks are full-sized even
    /// from a pipe. Returns the bytes (nil if there were none) and whether the end of input was seen.
    public func readFull(upTo maximum: Int) async throws -> (bytes: ByteBuffer?, atEnd: Bool) {
        guard let prefetch else { return try await read(upTo: maximum, untilFull: true) }
        var collected: ByteBuffer?
        while (collected?.readableBytes ?? 0) < maximum {
            guard let chunk = try await prefetch.read(upTo: maximum - (collected?.readableBytes ?? 0)) else {
                return (collected, true)
            }
            if collected == nil { collected = chunk } else { collected?.writeImmutableBuffer(chunk) }
        }
        return (collected, false)
    }

    private func read(upTo maximum: Int, untilFull: Bool) async throws -> (bytes: ByteBuffer?, atEnd: Bool) {
        let descriptor = self.descriptor
        let headroom = self.headroom
        return try await NIOThreadPool.singleton.runIfActive {
            var buffer = ByteBufferAllocator().buffer(capacity: headroom + maximum)
            buffer.moveWriterIndex(forwardBy: headroom)
            buffer.moveReaderIndex(forwardBy: headroom)
            while buffer.readableBytes < maximum {
                let wanted = maximum - buffer.readableBytes
                let count = buffer.withUnsafeMutableWritableBytes { Glibc.read(descriptor, $0.baseAddress, wanted) }
                if count < 0 {
                    if errno == EINTR { continue }
                    throw TCPIPError(.noInput, "cannot read input: \(String(cString: strerror(errno)))")
                }
                if count == 0 { return (buffer.readableBytes == 0 ? nil : buffer, true) }
                buffer.moveWriterIndex(forwardBy: count)
                if !untilFull { break }
            }
            return (buffer, false)
        }
    }

    /// Whether the descriptor is a terminal (a usage error for commands that read stdin, unless told what to send).
    public var isTerminal: Bool { isatty(descriptor) == 1 }
}
