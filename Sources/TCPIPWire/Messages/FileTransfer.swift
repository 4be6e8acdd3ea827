import NIOCore

/// Announces a file (FileStart, 13).
///
/// | tag | field | encoding |
/// |---|---|---|
/// | 1 | transferID | u32, chosen by the sender, unique on its connection |
/// | 2 | name | UTF-8, a file name or a relative path (a tree); the receiver validates it |
/// | 3 | size | u64, the original size; absent when unknown (a stream from stdin) |
/// | 4 | chunkSize | u32, the most original bytes one FileChunk carries |
/// | 5 | compression | u8: 0 none, 1 zlib per chunk (each chunk says whether it is compressed) |
/// | 6 | sha256 | 32 bytes, the whole file's SHA-256, sent up front when the sender knows it (a regular file): a
///   receiver that already stored this name with this content answers "already stored" at once |
/// | 7 | resumable | u8 1: the sender waits for FileResume (17) before sending chunks, and can start past 0. With
///   `size`; without `sha256` the digest comes in FileEnd only, and the receiver may offer a stored file of the same name
///   and size as held whole (the sender then checks it against its file) |
/// | 8 | queueFor | UTF-8, only to the hub's store: the receiver the file is queued for |
/// | 9 | origin | nested ``PeerRecord``, only from the hub's store: who sent the file that it delivers |
/// | 10 | message | u8 1: the content is a message (`send --queue`): the receiver stores it as one |
/// | 11 | sealed | the sealed header (docs/PROTOCOL.md "Sealed end to end"): the chunks are sealed to the receivers' keys,
///   and the real name, SHA-256 and message flag are inside (tag 2 is then a placeholder, tags 6 and 10 absent) |
/// | 12 | container | u8 1: the file is a sealed container (docs/PROTOCOL.md): queued sealed for the receiver it names
///   inside, which opens it once it arrived whole. Believed only from the hub's store, as tag 9 is |
public struct FileStart: ControlPayload, Hashable {
    public static let digestSize = 32

    public var transferID: UInt32
    public var name: String
    public var size: UInt64?
    public var chunkSize: UInt32
    public var compression: UInt8
    /// The SHA-256 of the whole file, when known before sending.
    public var sha256: [UInt8]?
    /// The sender waits for FileResume before its chunks (only with `size`; without `sha256` the digest comes at the
    /// end, and the receiver may offer a stored file of the same name and size).
    public var resumable = false
    /// To the hub's store: the receiver to queue the file for.
    public var queueFor: String?
    /// From the hub's store: the peer that queued the file (believed only from a peer whose role is `store`, which
    /// only the hub's own store can register).
    public var origin: PeerRecord?
    /// The content is a message queued with `send --queue`: a receiver stores it as a message, not under its name.
    public var message = false
    /// The sealed header: the file is sealed end to end (``name`` is then a placeholder).
    public var sealed: ByteBuffer?
    /// The file is a sealed container (``sealed`` is then nil: the header is inside the file).
    public var container = false

    public init(
        transferID: UInt32, name: String, size: UInt64?, chunkSize: UInt32, compression: UInt8 = 0,
        sha256: [UInt8]? = nil, resumable: Bool = false
    ) {
        self.resumable = resumable
        self.transferID = transferID
        self.name = name
        self.size = size
        self.chunkSize = chunkSize
        self.compression = compression
        self.sha256 = sha256
    }

    public init(tlv: ByteBuffer) throws {
        var transferID: UInt32?
        var name: String?
        self.init(transferID: 0, name: "", size: nil, chunkSize: 0)
        try TLVReader.forEach(in: tlv) { field in
            switch field.tag {
            case 1: transferID = try field.integer(as: UInt32.self)
            case 2: name = try field.string()
            case 3: size = try field.integer()
            case 4: chunkSize = try field.integer(as: UInt32.self)
            case 5: compression = try field.integer(as: UInt8.self)
            case 6:
                guard field.value.readableBytes == Self.digestSize else {
                    throw WireError.invalidValue("a FileStart sha256 must be \(Self.digestSize) bytes")
                }
                sha256 = Array(field.value.readableBytesView)
            case 7: resumable = try field.integer(as: UInt8.self) == 1
            case 8: queueFor = try field.string()
            case 9: origin = try PeerRecord(tlv: field.value)
            case 10: message = try field.integer(as: UInt8.self) == 1
            case 11: sealed = field.value
            case 12: container = try field.integer(as: UInt8.self) == 1
            default: break
            }
        }
        guard let transferID else { throw WireError.missingField("transfer id") }
        guard let name else { throw WireError.missingField("file name") }
        if resumable && size == nil {
            throw WireError.invalidValue("a resumable FileStart needs its size")
        }
        self.transferID = transferID
        self.name = name
    }

    public func write(to writer: inout TLVWriter) {
        writer.write(1, integer: transferID)
        writer.write(2, string: name)
        writer.write(3, integer: size)
        writer.write(4, integer: chunkSize)
        writer.write(5, integer: compression)
        if let sha256 { writer.write(6, bytes: ByteBuffer(bytes: sha256)) }
        if resumable { writer.write(7, integer: UInt8(1)) }
        writer.write(8, string: queueFor)
        // A record decoded from the wire may re-encode larger (integers at their natural width): never past a field.
        if let origin = origin?.encoded(), origin.readableBytes <= TLVWriter.maxValueLength {
            writer.write(9, bytes: origin)
        }
        if message { writer.write(10, integer: UInt8(1)) }
        if let sealed { writer.write(11, bytes: sealed) }
        if container { writer.write(12, integer: UInt8(1)) }
    }
}

/// Where a resumable transfer starts (FileResume, 17), from the receiver to the sender.
///
/// | tag | field | encoding |
/// |---|---|---|
/// | 1 | transferID | u32 |
/// | 2 | offset | u64, the bytes the receiver holds (0: none) |
/// | 3 | prefixSHA256 | 32 bytes, the SHA-256 of those bytes (absent when offset is 0) |
public struct FileResume: ControlPayload, Hashable {
    public var transferID: UInt32
    public var offset: UInt64
    public var prefixSHA256: [UInt8]?

    public init(transferID: UInt32, offset: UInt64, prefixSHA256: [UInt8]?) {
        self.transferID = transferID
        self.offset = offset
        self.prefixSHA256 = prefixSHA256
    }

    public init(tlv: ByteBuffer) throws {
        var transferID: UInt32?
        self.init(transferID: 0, offset: 0, prefixSHA256: nil)
        try TLVReader.forEach(in: tlv) { field in
            switch field.tag {
            case 1: transferID = try field.integer(as: UInt32.self)
            case 2: offset = try field.integer()
            case 3:
                guard field.value.readableBytes == FileStart.digestSize else {
                    throw WireError.invalidValue("a FileResume prefix SHA-256 must be \(FileStart.digestSize) bytes")
                }
                prefixSHA256 = Array(field.value.readableBytesView)
            default: break
            }
        }
        guard let transferID else { throw WireError.missingField("transfer id") }
        self.transferID = transferID
        if offset > 0 && prefixSHA256 == nil { throw WireError.missingField("prefix SHA-256") }
    }

    public func write(to writer: inout TLVWriter) {
        writer.write(1, integer: transferID)
        writer.write(2, integer: offset)
        if let prefixSHA256 { writer.write(3, bytes: ByteBuffer(bytes: prefixSHA256)) }
    }
}

/// Where the chunks that follow start (FileSeek, 18), from the sender to the receiver: the offset FileResume offered
/// when the sender's file has the same bytes there, else 0.
///
/// | tag | field | encoding |
/// |---|---|---|
/// | 1 | transferID | u32 |
/// | 2 | offset | u64 |
public struct FileSeek: ControlPayload, Hashable {
    public var transferID: UInt32
    public var offset: UInt64

    public init(transferID: UInt32, offset: UInt64) {
        self.transferID = transferID
        self.offset = offset
    }

    public init(tlv: ByteBuffer) throws {
        var transferID: UInt32?
        var offset: UInt64?
        try TLVReader.forEach(in: tlv) { field in
            switch field.tag {
            case 1: transferID = try field.integer(as: UInt32.self)
            case 2: offset = try field.integer()
            default: break
            }
        }
        guard let transferID else { throw WireError.missingField("transfer id") }
        guard let offset else { throw WireError.missingField("offset") }
        self.transferID = transferID
        self.offset = offset
    }

    public func write(to writer: inout TLVWriter) {
        writer.write(1, integer: transferID)
        writer.write(2, integer: offset)
    }
}

/// A piece of a file (FileChunk, 14): raw bytes behind a small fixed header.
///
/// ```
/// +-----------------+-----------------+------------------------------+
/// | transferID u32  | rawLength u32   | data (payload length − 8)    |
/// +-----------------+-----------------+------------------------------+
/// ```
///
/// dataType 0: `data` is the original bytes (rawLength equals their count). dataType 1: `data` is a complete raw
/// deflate stream (RFC 1951) that inflates to exactly rawLength bytes. dataType 2 and 3 are 0 and 1 sealed (the
/// transfer's FileStart has tag 11): `data` is what 0 or 1 would carry, sealed, 16 bytes longer. Chunks arrive in
/// order.
public struct FileChunk: Hashable, Sendable {
    public static let headerSize = 8
    public static let raw: UInt16 = 0
    public static let zlib: UInt16 = 1
    /// The bit of dataType that says the data is sealed.
    public static let sealedBit: UInt16 = 2
    /// What sealing adds to a chunk (the AEAD's tag).
    public static let sealOverhead = 16

    public var transferID: UInt32
    public var rawLength: UInt32
    public var compressed: Bool
    public var data: ByteBuffer
    public var sealed: Bool

    public init(transferID: UInt32, rawLength: UInt32, compressed: Bool, data: ByteBuffer, sealed: Bool = false) {
        self.transferID = transferID
        self.rawLength = rawLength
        self.compressed = compressed
        self.data = data
        self.sealed = sealed
    }

    public init(_ packet: Packet) throws {
        var payload = packet.payload
        guard let (id, length) = payload.readMultipleIntegers(as: (UInt32, UInt32).self) else {
            throw WireError.invalidValue("a FileChunk payload must start with an 8-byte header")
        }
        guard packet.header.dataType <= Self.zlib | Self.sealedBit else {
            throw WireError.invalidValue("unknown FileChunk encoding \(packet.header.dataType)")
        }
        let compressed = packet.header.dataType & Self.zlib != 0
        let sealed = packet.header.dataType & Self.sealedBit != 0
        let overhead = sealed ? Self.sealOverhead : 0
        if !compressed && Int(length) + overhead != payload.readableBytes {
            throw WireError.invalidValue(
                "raw FileChunk says \(length) bytes but carries \(payload.readableBytes - overhead)")
        }
        self.init(transferID: id, rawLength: length, compressed: compressed, data: payload, sealed: sealed)
    }

    /// The packet; `data` is written after the header without copying when it has 8 bytes of unshared headroom.
    public consuming func packet(_ header: PacketHeader) -> Packet {
        var header = header
        header.type = .fileChunk
        header.dataType = (compressed ? Self.zlib : Self.raw) | (sealed ? Self.sealedBit : 0)
        let transferID = self.transferID
        let rawLength = self.rawLength
        var payload = (consume self).data
        if payload.readerIndex >= Self.headerSize {
            payload.moveReaderIndex(to: payload.readerIndex - Self.headerSize)
            payload.setMultipleIntegers(transferID, rawLength, at: payload.readerIndex)
        } else {
            var framed = ByteBufferAllocator().buffer(capacity: Self.headerSize + payload.readableBytes)
            framed.writeMultipleIntegers(transferID, rawLength)
            framed.writeImmutableBuffer(payload)
            payload = framed
        }
        return Packet(header: header, payload: payload)
    }
}

/// Ends a file (FileEnd, 15). dataType 0: complete; dataType 1: the sender aborts the transfer.
///
/// | tag | field | encoding |
/// |---|---|---|
/// | 1 | transferID | u32 |
/// | 2 | size | u64, original bytes sent |
/// | 3 | sha256 | 32 bytes, SHA-256 of the original bytes |
/// | 4 | reason | UTF-8, why the sender aborted |
/// | 5 | sealed | a sealed transfer's final record: the size, SHA-256 and the sender's signature, sealed after the last
///   chunk (tags 2 and 3 are then 0 and empty) |
public struct FileEnd: ControlPayload, Hashable {
    public static let complete: UInt16 = 0
    public static let abort: UInt16 = 1

    public var transferID: UInt32
    public var size: UInt64
    public var sha256: [UInt8]
    public var reason: String?
    /// A sealed transfer's final record.
    public var sealed: ByteBuffer?

    public init(transferID: UInt32, size: UInt64, sha256: [UInt8], reason: String? = nil) {
        self.transferID = transferID
        self.size = size
        self.sha256 = sha256
        self.reason = reason
    }

    public init(tlv: ByteBuffer) throws {
        self.init(transferID: 0, size: 0, sha256: [])
        var sawID = false
        try TLVReader.forEach(in: tlv) { field in
            switch field.tag {
            case 1:
                transferID = try field.integer(as: UInt32.self)
                sawID = true
            case 2: size = try field.integer()
            case 3: sha256 = Array(field.value.readableBytesView)
            case 4: reason = try field.string()
            case 5: sealed = field.value
            default: break
            }
        }
        guard sawID else { throw WireError.missingField("transfer id") }
    }

    public func write(to writer: inout TLVWriter) {
        writer.write(1, integer: transferID)
        writer.write(2, integer: size)
        writer.write(3, bytes: ByteBuffer(bytes: sha256))
        writer.write(4, string: reason)
        if let sealed { writer.write(5, bytes: sealed) }
    }
}

/// The receiver's verdict on a file (DoneReceivingFile, 16), sent to the file's sender.
///
/// | tag | field | encoding |
/// |---|---|---|
/// | 1 | transferID | u32 |
/// | 2 | status | u8, see ``Status`` |
/// | 3 | storedAs | UTF-8, the name the receiver published the file under |
/// | 4 | reason | UTF-8, why it failed |
/// | 5 | size | u64, bytes stored |
public struct FileReceipt: ControlPayload, Hashable {
    public enum Status: UInt8, Sendable {
        /// Verified (size and SHA-256), synced and published under `storedAs`.
        case stored = 0
        /// Not accepted by the receiver's policy: a sender not allowed, too large, not a receiver.
        case refused = 1
        /// The bytes did not match the announced size or SHA-256, or did not inflate.
        case corrupt = 2
        /// The receiver could not write or publish the file (disk full, read-only, I/O error, quota).
        case storageFailed = 3
        /// The announcement itself is bad data: an unsafe name, a chunk size or compression out of range.
        case invalid = 4
        /// The receiver cannot take it now but may later (it is shutting down): retry.
        case unavailable = 5
        /// The receiver already stored this name with this content (FileStart's sha256), under `storedAs`; it is not
        /// stored twice.
        case alreadyStored = 6
        /// The hub's store holds files only for receivers it knows (FileStart's queueFor): nobody with this name ever
        /// registered as a receiver, or it is not in the authorized peers.
        case unknownRecipient = 7
    }

    public var transferID: UInt32
    public var status: Status
    public var storedAs: String?
    public var reason: String?
    public var size: UInt64

    public init(transferID: UInt32, status: Status, storedAs: String? = nil, reason: String? = nil, size: UInt64 = 0) {
        self.transferID = transferID
        self.status = status
        self.storedAs = storedAs
        self.reason = reason
        self.size = size
    }

    public init(tlv: ByteBuffer) throws {
        self.init(transferID: 0, status: .refused)
        try TLVReader.forEach(in: tlv) { field in
            switch field.tag {
            case 1: transferID = try field.integer(as: UInt32.self)
            case 2: status = Status(rawValue: try field.integer(as: UInt8.self)) ?? .storageFailed
            case 3: storedAs = try field.string()
            case 4: reason = try field.string()
            case 5: size = try field.integer()
            default: break
            }
        }
    }

    public func write(to writer: inout TLVWriter) {
        writer.write(1, integer: transferID)
        writer.write(2, integer: status.rawValue)
        writer.write(3, string: storedAs)
        writer.write(4, string: reason)
        writer.write(5, integer: size)
    }
}
