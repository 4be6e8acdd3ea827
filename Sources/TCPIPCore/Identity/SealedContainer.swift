import Crypto
import NIOCore
import TCPIPWire

#if canImport(Glibc)
    import Glibc
#endif

/// A file sealed whole, for the hub's store (`send-file --queue`, `send --queue`): the store keeps and delivers it as
/// an ordinary file, and only the receiver it was sealed to opens it, after it arrived whole. The same pieces as a
/// sealed transfer, in a file:
///
/// ```
/// "TCPSEAL1" ‖ u32 headerLength ‖ header (FileStart tag 11's value)
/// then records: u8 kind (0 chunk, 1 final) ‖ u32 length ‖ sealed bytes
/// ```
///
/// Chunks are the original bytes in order (uncompressed), each sealed as a transfer's chunk at its index; the final
/// record is the transfer's sealed end (size, SHA-256, signature) at the index after the last chunk.
public enum SealedContainer {
    static let magic = Array("TCPSEAL1".utf8)
    /// The largest record a reader takes (a 4 MiB chunk and its tag).
    public static let maxRecord = (4 << 20) + Sealing.tagSize
    static let maxHeader = 64 << 10

    /// The most a container of content up to `limit` bytes may take: its header, and each record's framing and tag
    /// (generously: records of 1 KiB and more), and the signed end. What it holds is checked against `limit` itself
    /// once opened.
    public static func sizeLimit(forContent limit: UInt64) -> UInt64 {
        let (more, overflow) = limit.addingReportingOverflow(limit / 16 + UInt64(maxHeader) + 4096)
        return overflow ? .max : more
    }

    /// Seals `input` (read to its end) into `output`; returns the original size and SHA-256.
    public static func seal(
        from input: Int32, to output: Int32, recipients: [SealingRecipient], info: SealedFileInfo, signer: SealingKey,
        chunkSize: Int
    ) throws -> (size: UInt64, sha256: [UInt8]) {
        var sealer = try FileSealer(recipients: recipients, info: info, signer: signer)
        var out = Writer(descriptor: output)
        try out.write(magic)
        try out.write(Sealing.integer(UInt32(sealer.header.readableBytes)))
        try out.write(Array(sealer.header.readableBytesView))
        var hasher = SHA256()
        var size: UInt64 = 0
        var buffer = [UInt8](repeating: 0, count: min(max(chunkSize, 1), maxRecord - Sealing.tagSize))
        while true {
            let got = try readFull(input, into: &buffer)
            if got == 0 { break }
            let chunk = ByteBuffer(bytes: buffer[..<got])
            chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            size += UInt64(got)
            let sealed = try sealer.seal(chunk, compressed: false, rawLength: UInt32(got))
            try out.write([0] + Sealing.integer(UInt32(sealed.readableBytes)))
            try out.write(Array(sealed.readableBytesView))
            if got < buffer.count { break }
        }
        let digest = Array(hasher.finalize())
        let trailer = try sealer.trailer(size: size, sha256: digest)
        try out.write([1] + Sealing.integer(UInt32(trailer.readableBytes)))
        try out.write(Array(trailer.readableBytesView))
        try out.flush()
        return (size, digest)
    }

    /// Opens a container from `input` into `output` with this node's key: `sender` is the key the file's sender
    /// proved (the store's record of who queued it). Throws ``SealingFailure`` when it is not for this key, not from
    /// that sender, or changed anywhere.
    public static func open(from input: Int32, to output: Int32, key: SealingKey, sender: NodeID?) throws -> (
        info: SealedFileInfo, senderID: NodeID, size: UInt64, sha256: [UInt8]
    ) {
        var reader = Reader(descriptor: input)
        guard try reader.read(magic.count) == magic else {
            throw SealingFailure(.corrupt, "not a sealed file (no TCPSEAL1 at its start)")
        }
        let headerLength = try reader.integer()
        guard headerLength <= maxHeader else {
            throw SealingFailure(.corrupt, "a sealed header of \(headerLength) bytes")
        }
        var opener = try FileOpener(
            header: ByteBuffer(bytes: try reader.read(Int(headerLength))), key: key, sender: sender)
        var out = Writer(descriptor: output)
        var hasher = SHA256()
        var size: UInt64 = 0
        while true {
            guard let kind = try reader.read(1).first else { throw SealingFailure(.corrupt, "cut short") }
            let length = try reader.integer()
            guard length <= maxRecord else { throw SealingFailure(.corrupt, "a record of \(length) bytes") }
            let bytes = ByteBuffer(bytes: try reader.read(Int(length)))
            switch kind {
            case 0:
                guard length >= Sealing.tagSize else { throw SealingFailure(.corrupt, "a record shorter than its tag") }
                let plain = try opener.open(bytes, compressed: false, rawLength: length - UInt32(Sealing.tagSize))
                plain.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
                size += UInt64(plain.readableBytes)
                try out.write(Array(plain.readableBytesView))
            case 1:
                let (announced, digest) = try opener.openTrailer(bytes)
                guard try reader.read(1).isEmpty else {
                    throw SealingFailure(.corrupt, "bytes after the sealed end")
                }
                try out.flush()
                let computed = Array(hasher.finalize())
                guard announced == size, digest == computed, opener.info.sha256.map({ $0 == computed }) ?? true else {
                    throw SealingFailure(.corrupt, "the opened file does not have the signed size and SHA-256")
                }
                return (opener.info, opener.senderID, size, computed)
            default:
                throw SealingFailure(.corrupt, "an unknown record kind \(kind)")
            }
        }
    }

    /// Reads until `buffer` is full or the input ends; returns the bytes read.
    static func readFull(_ descriptor: Int32, into buffer: inout [UInt8]) throws -> Int {
        var held = 0
        while held < buffer.count {
            let got = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress! + held, $0.count - held) }
            if got < 0 && errno == EINTR { continue }
            guard got >= 0 else { throw SealingFailure(.corrupt, "cannot read: \(String(cString: strerror(errno)))") }
            if got == 0 { break }
            held += got
        }
        return held
    }

    struct Reader {
        let descriptor: Int32
        var buffer: [UInt8] = []
        var offset = 0
        var ended = false

        init(descriptor: Int32) { self.descriptor = descriptor }

        /// `count` bytes, or fewer only at the end of the input.
        mutating func read(_ count: Int) throws -> [UInt8] {
            while buffer.count - offset < count && !ended {
                var more = [UInt8](repeating: 0, count: max(1 << 20, count))
                let got = try SealedContainer.readFull(descriptor, into: &more)
                if got < more.count { ended = true }
                buffer = Array(buffer[offset...]) + more[..<got]
                offset = 0
            }
            let taken = Array(buffer[offset..<min(buffer.count, offset + count)])
            offset += taken.count
            return taken
        }

        mutating func integer() throws -> UInt32 {
            let bytes = try read(4)
            guard bytes.count == 4 else { throw SealingFailure(.corrupt, "cut short") }
            return bytes.reduce(0) { $0 << 8 | UInt32($1) }
        }
    }

    struct Writer {
        let descriptor: Int32
        var pending: [UInt8] = []

        init(descriptor: Int32) { self.descriptor = descriptor }

        mutating func write(_ bytes: [UInt8]) throws {
            pending += bytes
            if pending.count >= 1 << 20 { try flush() }
        }

        mutating func flush() throws {
            var done = 0
            while done < pending.count {
                let wrote = pending.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + done, $0.count - done) }
                if wrote < 0 && errno == EINTR { continue }
                guard wrote > 0 else {
                    throw TCPIPError(.cannotCreate, "cannot write a sealed file: \(String(cString: strerror(errno)))")
                }
                done += wrote
            }
            pending.removeAll(keepingCapacity: true)
        }
    }
}

extension FileStart {
    /// The most bytes this transfer may come in for content of at most `limit` bytes: a sealed container's sealing on
    /// top (what it holds is checked against `limit` once it opens).
    public func sizeLimit(forContent limit: UInt64) -> UInt64 {
        container ? SealedContainer.sizeLimit(forContent: limit) : limit
    }
}
