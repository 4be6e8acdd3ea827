import Crypto
import FoundationEssentials
import NIOCore
import TCPIPWire

/// A node's key as sealing uses it: files and messages are sealed to a receiver's node key (HPKE, RFC 9180:
/// DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-256-GCM) and signed with the sender's (ECDSA P-256, SHA-256). The same
/// P-256 key proves the node in TLS; docs/PROTOCOL.md "Sealed end to end" has the formats.
public struct SealingKey: Sendable {
    public let signing: P256.Signing.PrivateKey
    /// The DER SubjectPublicKeyInfo of the public key: what PeerRecord tag 11 carries, and what the ID is the hash of.
    public let spki: [UInt8]
    public let id: NodeID

    public init(_ signing: P256.Signing.PrivateKey) {
        self.signing = signing
        spki = Array(signing.publicKey.derRepresentation)
        id = NodeID(spki: spki)
    }

    /// The same scalar as an HPKE (Diffie-Hellman) key.
    var agreement: P256.KeyAgreement.PrivateKey {
        get throws { try P256.KeyAgreement.PrivateKey(rawRepresentation: signing.rawRepresentation) }
    }
}

/// A peer's public key as the hub reported it (PeerRecord tag 11), checked against the ID it proved.
public struct SealingRecipient: Sendable, Hashable {
    public let id: NodeID
    public let spki: [UInt8]

    /// Nil unless `spki` is a P-256 key whose ID is `id`: a hub cannot hand out one key under another's ID.
    public init?(id: NodeID, spki: [UInt8]) {
        guard NodeID(spki: spki) == id, (try? P256.Signing.PublicKey(derRepresentation: spki)) != nil else {
            return nil
        }
        self.id = id
        self.spki = spki
    }

    public init?(_ peer: PeerRecord) {
        guard let keyID = peer.key.flatMap(NodeID.init(bytes:)), let spki = peer.publicKey else { return nil }
        self.init(id: keyID, spki: spki)
    }

    var agreement: P256.KeyAgreement.PublicKey {
        get throws { try P256.KeyAgreement.PublicKey(derRepresentation: spki) }
    }
}

/// Why something sealed was refused: `refused` when it was not for this node's key or not from the key its sender
/// proved (77), `corrupt` when it does not open or its signature fails (65).
public struct SealingFailure: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable { case refused, corrupt }
    public let kind: Kind
    public let description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

/// The constants and shared pieces of the sealed formats.
public enum Sealing {
    public static let ciphersuite = HPKE.Ciphersuite.P256_SHA256_AES_GCM_256
    static let fileInfo = Data("tcpip sealed file v1".utf8)
    static let messageInfo = Data("tcpip sealed messages v1".utf8)
    static let signatureLabel = Array("tcpip sealed file v1 signature\u{0}".utf8)
    static let headerSignatureLabel = Array("tcpip sealed file v1 header\u{0}".utf8)
    /// A P-256 encapsulated key (an uncompressed point).
    public static let encapsulatedKeySize = 65
    public static let tagSize = 16
    static let nonceSize = 12
    static let fileKeySize = 32
    /// A stanza: the recipient's key ID, the encapsulated key, the file key sealed to it.
    static let stanzaSize = NodeID.byteCount + encapsulatedKeySize + fileKeySize + tagSize

    /// Nonce kinds: one key never sees the same nonce twice.
    enum NonceKind: UInt8 {
        case chunk = 0
        case final = 1
        case info = 2
        case message = 3
    }

    static func nonce(_ kind: NonceKind, _ index: UInt64) -> AES.GCM.Nonce {
        // On the stack: a line of `send --lines` is a part, and each part takes one.
        withUnsafeTemporaryAllocation(byteCount: nonceSize, alignment: 8) { bytes in
            bytes.storeBytes(of: (UInt32(kind.rawValue) << 24).bigEndian, toByteOffset: 0, as: UInt32.self)
            bytes.storeBytes(of: index.bigEndian, toByteOffset: 4, as: UInt64.self)
            // nonceSize (12) bytes: always a valid nonce.
            return (try? AES.GCM.Nonce(data: UnsafeRawBufferPointer(bytes))) ?? AES.GCM.Nonce()
        }
    }

    static func seal(_ plaintext: UnsafeRawBufferPointer, key: SymmetricKey, nonce: AES.GCM.Nonce, aad: [UInt8])
        throws -> ByteBuffer
    {
        let box = try AES.GCM.seal(plaintext, using: key, nonce: nonce, authenticating: aad)
        var out = ByteBufferAllocator().buffer(capacity: FileChunk.headerSize + plaintext.count + tagSize)
        // Headroom for FileChunk's header: the packet is then framed without a copy.
        out.moveWriterIndex(forwardBy: FileChunk.headerSize)
        out.moveReaderIndex(forwardBy: FileChunk.headerSize)
        writeSealed(box, to: &out)
        return out
    }

    /// `ciphertext ‖ tag` from the box's combined bytes: one read of swift-crypto's box instead of two (a sealed line
    /// is one part, and this is per part).
    static func writeSealed(_ box: AES.GCM.SealedBox, to out: inout ByteBuffer) {
        guard let combined = box.combined else {  // only for nonces other than 12 bytes, which are never made here
            out.writeBytes(box.ciphertext)
            out.writeBytes(box.tag)
            return
        }
        combined.withUnsafeBytes { out.writeBytes(UnsafeRawBufferPointer(rebasing: $0.dropFirst(nonceSize))) }
    }

    static func open(_ sealed: ByteBuffer, key: SymmetricKey, nonce: AES.GCM.Nonce, aad: some DataProtocol) throws
        -> ByteBuffer
    {
        guard sealed.readableBytes >= tagSize else { throw SealingFailure(.corrupt, "shorter than its tag") }
        // One Data of `nonce ‖ ciphertext ‖ tag` for the box: swift-crypto assembles the pieces more slowly.
        var combined = Data(capacity: nonceSize + sealed.readableBytes)
        nonce.withUnsafeBytes { combined.append(contentsOf: $0) }
        sealed.withUnsafeReadableBytes { combined.append(contentsOf: $0) }
        let plain = try AES.GCM.open(AES.GCM.SealedBox(combined: combined), using: key, authenticating: aad)
        var out = ByteBufferAllocator().buffer(capacity: plain.count)
        out.writeBytes(plain)
        return out
    }

    static func integer<I: FixedWidthInteger>(_ value: I) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }
}

/// What a sealed FileStart hides from the hub (inside its tag 11).
public struct SealedFileInfo: Sendable, Hashable {
    public var name: String
    public var sha256: [UInt8]?
    public var message: Bool
    /// The sender's public key (DER SPKI): the receiver checks it is the key the sender proved, and its signature.
    public var senderSPKI: [UInt8]
    /// The sender's signature over this header (its stanzas and what the fields above say): checked before the
    /// receiver acts on any of it (an "already stored" answer, a resume offer).
    var headerSignature: [UInt8] = []

    public init(name: String, sha256: [UInt8]?, message: Bool, senderSPKI: [UInt8]) {
        self.name = name
        self.sha256 = sha256
        self.message = message
        self.senderSPKI = senderSPKI
    }

    func encoded() -> ByteBuffer {
        var writer = TLVWriter()
        writer.write(1, string: name)
        if let sha256 { writer.write(2, bytes: ByteBuffer(bytes: sha256)) }
        if message { writer.write(3, integer: UInt8(1)) }
        writer.write(4, bytes: ByteBuffer(bytes: senderSPKI))
        if !headerSignature.isEmpty { writer.write(5, bytes: ByteBuffer(bytes: headerSignature)) }
        return writer.buffer
    }

    init(tlv: ByteBuffer) throws {
        var name: String?
        var spki: [UInt8]?
        self.init(name: "", sha256: nil, message: false, senderSPKI: [])
        try TLVReader.forEach(in: tlv) { field in
            switch field.tag {
            case 1: name = try field.string()
            case 2:
                guard field.value.readableBytes == FileStart.digestSize else {
                    throw WireError.invalidValue("a sealed sha256 must be \(FileStart.digestSize) bytes")
                }
                sha256 = Array(field.value.readableBytesView)
            case 3: message = try field.integer(as: UInt8.self) == 1
            case 4: spki = Array(field.value.readableBytesView)
            case 5: headerSignature = Array(field.value.readableBytesView)
            default: break
            }
        }
        guard let name else { throw WireError.missingField("sealed file name") }
        guard let spki else { throw WireError.missingField("sealed sender key") }
        self.name = name
        senderSPKI = spki
    }
}

/// The sending side of one sealed transfer: a random file key, sealed to each recipient; chunks sealed in order
/// (compress, then seal); a final record with the size, the SHA-256 and the sender's signature.
public struct FileSealer: Sendable {
    /// FileStart tag 11.
    public let header: ByteBuffer
    private let key: SymmetricKey
    private let digest: [UInt8]
    private let info: SealedFileInfo
    private let signer: SealingKey
    public private(set) var index: UInt64 = 0

    public init(recipients: [SealingRecipient], info: SealedFileInfo, signer: SealingKey) throws {
        try self.init(recipients: recipients, info: info, signer: signer, fileKey: SymmetricKey(size: .bits256))
    }

    /// With a chosen file key (golden vectors); anything else uses a fresh random one.
    package init(recipients: [SealingRecipient], info: SealedFileInfo, signer: SealingKey, fileKey key: SymmetricKey)
        throws
    {
        self.key = key
        var stanzas: [UInt8] = []
        var writer = TLVWriter(capacity: 256)
        for recipient in recipients {
            var hpke = try HPKE.Sender(
                recipientKey: try recipient.agreement, ciphersuite: Sealing.ciphersuite, info: Sealing.fileInfo)
            let wrapped = try key.withUnsafeBytes { try hpke.seal($0, authenticating: recipient.id.bytes) }
            let stanza = recipient.id.bytes + Array(hpke.encapsulatedKey) + Array(wrapped)
            stanzas += stanza
            writer.write(1, bytes: ByteBuffer(bytes: stanza))
        }
        let stanzasDigest = Array(SHA256.hash(data: stanzas))
        var info = info
        info.headerSignature = Array(
            try signer.signing.signature(for: FileOpener.headerSignedBytes(stanzasDigest, info: info)).derRepresentation
        )
        let sealedInfo = try info.encoded().withUnsafeReadableBytes {
            try Sealing.seal($0, key: key, nonce: Sealing.nonce(.info, 0), aad: stanzasDigest)
        }
        writer.write(2, bytes: sealedInfo)
        header = writer.buffer
        digest = Array(header.withUnsafeReadableBytes { SHA256.hash(data: $0) })
        self.info = info
        self.signer = signer
    }

    /// A sealer with a file key and header already made: golden vectors check the chunks and the end against the
    /// documented ones, byte for byte.
    package init(fileKey: SymmetricKey, header: ByteBuffer, info: SealedFileInfo, signer: SealingKey) {
        key = fileKey
        self.header = header
        digest = Array(header.withUnsafeReadableBytes { SHA256.hash(data: $0) })
        self.info = info
        self.signer = signer
    }

    /// Seals the next chunk's bytes (compressed or not): what FileChunk carries, `Sealing.tagSize` longer.
    public mutating func seal(_ data: ByteBuffer, compressed: Bool, rawLength: UInt32) throws -> ByteBuffer {
        defer { index += 1 }
        let aad = FileOpener.chunkAAD(digest, index, compressed: compressed, rawLength: rawLength)
        return try data.withUnsafeReadableBytes {
            try Sealing.seal($0, key: key, nonce: Sealing.nonce(.chunk, index), aad: aad)
        }
    }

    /// FileEnd tag 5: after the last chunk, the size and SHA-256 of the original bytes, signed.
    public func trailer(size: UInt64, sha256: [UInt8]) throws -> ByteBuffer {
        let signature = try signer.signing.signature(
            for: FileOpener.signedBytes(digest, info: info, size: size, sha256: sha256))
        var writer = TLVWriter(capacity: 128)
        writer.write(1, integer: size)
        writer.write(2, bytes: ByteBuffer(bytes: sha256))
        writer.write(3, bytes: ByteBuffer(bytes: Array(signature.derRepresentation)))
        return try writer.buffer.withUnsafeReadableBytes {
            try Sealing.seal($0, key: key, nonce: Sealing.nonce(.final, index), aad: FileOpener.finalAAD(digest, index))
        }
    }
}

/// The receiving side of one sealed transfer: opens the header with this node's key, each chunk in order, and the
/// final record, whose signature it checks against the sender's key.
public struct FileOpener: Sendable {
    public let info: SealedFileInfo
    /// The sender's key ID (the hash of ``SealedFileInfo/senderSPKI``).
    public let senderID: NodeID
    private let key: SymmetricKey
    private let digest: [UInt8]
    private let senderKey: P256.Signing.PublicKey
    public private(set) var index: UInt64 = 0

    /// Opens FileStart tag 11. `sender` is the key its sender proved to the hub (nil: none, refused).
    public init(header: ByteBuffer, key own: SealingKey, sender: NodeID?) throws {
        var stanzas: [UInt8] = []
        var mine: [UInt8]?
        var sealedInfo: ByteBuffer?
        do {
            try TLVReader.forEach(in: header) { field in
                switch field.tag {
                case 1:
                    let stanza = Array(field.value.readableBytesView)
                    guard stanza.count == Sealing.stanzaSize else {
                        throw SealingFailure(.corrupt, "a stanza of \(stanza.count) bytes")
                    }
                    stanzas += stanza
                    if stanza.prefix(NodeID.byteCount).elementsEqual(own.id.bytes) { mine = stanza }
                case 2: sealedInfo = field.value
                default: break
                }
            }
        } catch let error as WireError {
            throw SealingFailure(.corrupt, "the sealed header does not decode: \(error)")
        }
        guard let mine else {
            throw SealingFailure(.refused, "the file is not sealed to this receiver's key \(own.id)")
        }
        guard let sealedInfo else { throw SealingFailure(.corrupt, "the sealed header has no info") }
        let stanzasDigest = Array(SHA256.hash(data: stanzas))
        let enc = Data(mine[NodeID.byteCount..<NodeID.byteCount + Sealing.encapsulatedKeySize])
        let wrapped = mine[(NodeID.byteCount + Sealing.encapsulatedKeySize)...]
        let info: SealedFileInfo
        do {
            var hpke = try HPKE.Recipient(
                privateKey: try own.agreement, ciphersuite: Sealing.ciphersuite, info: Sealing.fileInfo,
                encapsulatedKey: enc)
            let opened = SymmetricKey(data: try hpke.open(wrapped, authenticating: own.id.bytes))
            key = opened
            info = try SealedFileInfo(
                tlv: try Sealing.open(sealedInfo, key: opened, nonce: Sealing.nonce(.info, 0), aad: stanzasDigest))
        } catch let error as SealingFailure {
            throw error
        } catch {
            throw SealingFailure(.corrupt, "the sealed header does not open: \(error)")
        }
        senderID = NodeID(spki: info.senderSPKI)
        guard let sender, sender == senderID else {
            throw SealingFailure(
                .refused,
                "the file is signed by key \(senderID), but its sender proved "
                    + (sender.map { "key \($0)" } ?? "no key"))
        }
        do {
            senderKey = try P256.Signing.PublicKey(derRepresentation: info.senderSPKI)
        } catch {
            throw SealingFailure(.corrupt, "the sender's key in the sealed header is not a P-256 key")
        }
        // Anyone can seal a header to this key (HPKE base mode): only the sender's signature says the name, digest
        // and kind are its own, and the receiver answers on them before the end (already stored, a resume offer).
        guard let signature = try? P256.Signing.ECDSASignature(derRepresentation: info.headerSignature),
            senderKey.isValidSignature(signature, for: Self.headerSignedBytes(stanzasDigest, info: info))
        else {
            throw SealingFailure(.corrupt, "the sender's signature over the sealed header does not verify")
        }
        self.info = info
        digest = Array(header.withUnsafeReadableBytes { SHA256.hash(data: $0) })
    }

    /// Opens the next chunk (in order: a chunk out of place, changed or from another file does not open).
    public mutating func open(_ data: ByteBuffer, compressed: Bool, rawLength: UInt32) throws -> ByteBuffer {
        defer { index += 1 }
        do {
            return try Sealing.open(
                data, key: key, nonce: Sealing.nonce(.chunk, index),
                aad: Self.chunkAAD(digest, index, compressed: compressed, rawLength: rawLength))
        } catch {
            throw SealingFailure(.corrupt, "sealed chunk \(index) does not open: changed, reordered or from elsewhere")
        }
    }

    /// Opens FileEnd tag 5 after the last chunk and checks the sender's signature: the size and SHA-256 to verify.
    public func openTrailer(_ sealed: ByteBuffer) throws -> (size: UInt64, sha256: [UInt8]) {
        let plain: ByteBuffer
        do {
            plain = try Sealing.open(
                sealed, key: key, nonce: Sealing.nonce(.final, index), aad: Self.finalAAD(digest, index))
        } catch {
            throw SealingFailure(
                .corrupt, "the sealed end does not open after \(index) chunks: chunks were dropped, added or changed")
        }
        var size: UInt64?
        var sha256: [UInt8]?
        var signature: [UInt8]?
        do {
            try TLVReader.forEach(in: plain) { field in
                switch field.tag {
                case 1: size = try field.integer()
                case 2: sha256 = Array(field.value.readableBytesView)
                case 3: signature = Array(field.value.readableBytesView)
                default: break
                }
            }
        } catch {
            throw SealingFailure(.corrupt, "the sealed end does not decode: \(error)")
        }
        guard let size, let sha256, sha256.count == FileStart.digestSize, let signature,
            let parsed = try? P256.Signing.ECDSASignature(derRepresentation: signature),
            senderKey.isValidSignature(
                parsed, for: Self.signedBytes(digest, info: info, size: size, sha256: sha256))
        else {
            throw SealingFailure(.corrupt, "the sender's signature over the file does not verify")
        }
        return (size, sha256)
    }

    /// What the sender signs in the header: the stanzas' digest (this transfer's receivers and keys), the name,
    /// whether it is a message, and the SHA-256 when known.
    static func headerSignedBytes(_ stanzasDigest: [UInt8], info: SealedFileInfo) -> [UInt8] {
        let name = Array(info.name.utf8)
        return Sealing.headerSignatureLabel + stanzasDigest + Sealing.integer(UInt32(name.count)) + name
            + [info.message ? 1 : 0] + (info.sha256 ?? [])
    }

    static func chunkAAD(_ digest: [UInt8], _ index: UInt64, compressed: Bool, rawLength: UInt32) -> [UInt8] {
        digest + Sealing.integer(index) + [0, compressed ? 1 : 0] + Sealing.integer(rawLength)
    }

    static func finalAAD(_ digest: [UInt8], _ index: UInt64) -> [UInt8] {
        digest + Sealing.integer(index) + [1]
    }

    /// What the sender signs: the header's digest (every recipient's stanza, the sealed info), the name, whether it is
    /// a message, the size and the SHA-256.
    static func signedBytes(_ digest: [UInt8], info: SealedFileInfo, size: UInt64, sha256: [UInt8]) -> [UInt8] {
        let name = Array(info.name.utf8)
        return Sealing.signatureLabel + digest + Sealing.integer(UInt32(name.count)) + name
            + [info.message ? 1 : 0] + Sealing.integer(size) + sha256
    }
}

/// Seals one session's messages to one recipient: an HPKE context in auth mode (the recipient knows it is from this
/// node's key), whose exported key seals each message part under its sequence number.
public struct MessageSealer: Sendable {
    /// What sealing adds to a part at most: the encapsulated key (first part), the sequence number, the tag.
    public static let overhead = Sealing.encapsulatedKeySize + 8 + Sealing.tagSize

    /// Sent with the first part (the `keyed` flag), once per recipient and session.
    public let encapsulatedKey: [UInt8]
    private let key: SymmetricKey
    public package(set) var sequence: UInt64 = 0
    /// The last number was used (a nonce is never sealed twice: nothing more is).
    private var exhausted = false

    public init(to recipient: SealingRecipient, from own: SealingKey) throws {
        let hpke = try HPKE.Sender(
            recipientKey: try recipient.agreement, ciphersuite: Sealing.ciphersuite, info: Sealing.messageInfo,
            authenticatedBy: try own.agreement)
        encapsulatedKey = Array(hpke.encapsulatedKey)
        key = try hpke.exportSecret(context: Array("tcpip message key".utf8), outputByteCount: 32)
    }

    /// The sealed body of the next part: `u64 sequence ‖ ciphertext ‖ tag` (with headroom for MessagePart's header).
    public mutating func seal(_ bytes: ByteBuffer, messageID: UInt32, flags: UInt16) throws -> ByteBuffer {
        guard !exhausted else { throw SealingFailure(.refused, "the sealed session has used all its numbers") }
        defer { if sequence == .max { exhausted = true } else { sequence += 1 } }
        let box = try bytes.withUnsafeReadableBytes { plaintext in
            try MessageOpener.withAAD(messageID: messageID, flags: flags, sequence: sequence) {
                try AES.GCM.seal(plaintext, using: key, nonce: Sealing.nonce(.message, sequence), authenticating: $0)
            }
        }
        let headroom = MessagePart.headerSize + Sealing.encapsulatedKeySize
        var sealed = ByteBufferAllocator().buffer(capacity: headroom + 8 + bytes.readableBytes + Sealing.tagSize)
        sealed.moveWriterIndex(forwardBy: headroom)
        sealed.moveReaderIndex(forwardBy: headroom)
        sealed.writeInteger(sequence)
        Sealing.writeSealed(box, to: &sealed)
        return sealed
    }
}

/// Opens one sender's sealed messages: set up by the part that carries the encapsulated key, then each part in
/// increasing sequence (a part replayed, reordered or changed does not open).
public struct MessageOpener: Sendable {
    private let key: SymmetricKey
    /// The least sequence number the next part may have: one past the part opened last.
    public private(set) var next: UInt64 = 0

    public init(encapsulatedKey: [UInt8], key own: SealingKey, sender: SealingRecipient) throws {
        do {
            let hpke = try HPKE.Recipient(
                privateKey: try own.agreement, ciphersuite: Sealing.ciphersuite, info: Sealing.messageInfo,
                encapsulatedKey: Data(encapsulatedKey), authenticatedBy: try sender.agreement)
            key = try hpke.exportSecret(context: Array("tcpip message key".utf8), outputByteCount: 32)
        } catch {
            throw SealingFailure(.corrupt, "the sealed messages' key does not open: \(error)")
        }
    }

    public mutating func open(_ sealed: ByteBuffer, messageID: UInt32, flags: UInt16) throws -> ByteBuffer {
        var sealed = sealed
        // The last number is never used: the session would have no next one (and `next` would overflow).
        guard let sequence = sealed.readInteger(as: UInt64.self), sequence >= next, sequence < .max else {
            throw SealingFailure(.corrupt, "a sealed message part out of sequence (replayed or reordered)")
        }
        do {
            let plain = try Self.withAAD(messageID: messageID, flags: flags, sequence: sequence) {
                try Sealing.open(sealed, key: key, nonce: Sealing.nonce(.message, sequence), aad: $0)
            }
            next = sequence + 1
            return plain
        } catch {
            throw SealingFailure(.corrupt, "a sealed message part does not open: changed, or not from its sender")
        }
    }

    /// `messageID u32 ‖ flags u16 ‖ sequence u64`, on the stack (one per part).
    static func withAAD<R>(
        messageID: UInt32, flags: UInt16, sequence: UInt64, _ body: (UnsafeRawBufferPointer) throws -> R
    ) rethrows -> R {
        try withUnsafeTemporaryAllocation(byteCount: 14, alignment: 8) { bytes in
            bytes.storeBytes(of: messageID.bigEndian, toByteOffset: 0, as: UInt32.self)
            bytes.storeBytes(of: flags.bigEndian, toByteOffset: 4, as: UInt16.self)
            bytes.storeBytes(of: sequence.bigEndian, toByteOffset: 6, as: UInt64.self)
            return try body(UnsafeRawBufferPointer(bytes))
        }
    }
}
