import Crypto
import FoundationEssentials
import NIOCore
import TCPIPClient
import TCPIPCore
import TCPIPReceiver
import TCPIPTestSupport
import TCPIPWire
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Keys and helpers for the sealed formats' tests.
enum Sealed {
    static func key(_ label: String) -> SealingKey {
        // A fixed scalar per label (any 32 bytes below the group order are a valid P-256 key).
        let scalar = Array(SHA256.hash(data: Array(label.utf8)))
        return SealingKey((try? P256.Signing.PrivateKey(rawRepresentation: scalar)) ?? P256.Signing.PrivateKey())
    }

    static let receiver = key("tcpip golden recipient")
    static let sender = key("tcpip golden sender")
    static let other = key("tcpip another node")

    static func recipient(_ key: SealingKey) -> SealingRecipient {
        SealingRecipient(id: key.id, spki: key.spki)!
    }

    static func info(
        _ name: String = "report.txt", _ content: [UInt8], message: Bool = false, from: SealingKey = sender
    )
        -> SealedFileInfo
    {
        SealedFileInfo(
            name: name, sha256: Array(SHA256.hash(data: content)), message: message, senderSPKI: from.spki)
    }

    /// A whole sealed transfer of `content` in chunks of `chunkSize`: header, chunks, end.
    static func transfer(
        _ content: [UInt8], chunkSize: Int = 4, to recipients: [SealingKey] = [receiver], from: SealingKey = sender,
        name: String = "report.txt"
    ) throws -> (header: ByteBuffer, chunks: [ByteBuffer], end: ByteBuffer) {
        var sealer = try FileSealer(
            recipients: recipients.map(recipient), info: info(name, content, from: from), signer: from)
        var chunks: [ByteBuffer] = []
        var offset = 0
        repeat {
            let piece = Array(content[offset..<min(content.count, offset + chunkSize)])
            chunks.append(try sealer.seal(ByteBuffer(bytes: piece), compressed: false, rawLength: UInt32(piece.count)))
            offset += chunkSize
        } while offset < content.count
        let end = try sealer.trailer(size: UInt64(content.count), sha256: Array(SHA256.hash(data: content)))
        return (sealer.header, chunks, end)
    }

    static func open(
        _ sealed: (header: ByteBuffer, chunks: [ByteBuffer], end: ByteBuffer), chunkSize: Int = 4,
        as key: SealingKey = receiver, from sender: NodeID? = Sealed.sender.id
    ) throws -> [UInt8] {
        var opener = try FileOpener(header: sealed.header, key: key, sender: sender)
        var content: [UInt8] = []
        for chunk in sealed.chunks {
            let length = UInt32(chunk.readableBytes - Sealing.tagSize)
            content += try opener.open(chunk, compressed: false, rawLength: length).readableBytesView
        }
        let (size, digest) = try opener.openTrailer(sealed.end)
        guard size == UInt64(content.count), digest == Array(SHA256.hash(data: content)) else {
            throw SealingFailure(.corrupt, "size or digest")
        }
        return content
    }

    static func flipped(_ buffer: ByteBuffer, at offset: Int = 0) -> ByteBuffer {
        var bytes = Array(buffer.readableBytesView)
        bytes[offset] ^= 0x01
        return ByteBuffer(bytes: bytes)
    }

    static func failure(_ body: () throws -> Any) -> SealingFailure.Kind? {
        do {
            _ = try body()
            return nil
        } catch let failure as SealingFailure {
            return failure.kind
        } catch {
            return nil
        }
    }
}

@Suite struct SealingTests {
    static let content = Array("sealed end to end, in chunks\n".utf8)

    @Test func aSealedTransferOpensWholeForItsReceiverAndOnlyIt() throws {
        let sealed = try Sealed.transfer(Self.content)
        #expect(sealed.chunks.count == 8)
        #expect(try Sealed.open(sealed) == Self.content)
        // Nothing of the name or the content shows: the header holds stanzas and ciphertext only.
        let header = Array(sealed.header.readableBytesView)
        #expect(!Self.contains(header, Array("report.txt".utf8)))
        #expect(!sealed.chunks.contains { Self.contains(Array($0.readableBytesView), Array("sealed".utf8)) })
        // Another key finds no stanza: refused, not corrupt.
        #expect(Sealed.failure { try Sealed.open(sealed, as: Sealed.other) } == .refused)
    }

    @Test func everyReceiverOfAGroupOpensTheSameUpload() throws {
        let sealed = try Sealed.transfer(Self.content, to: [Sealed.receiver, Sealed.other])
        #expect(try Sealed.open(sealed, as: Sealed.receiver) == Self.content)
        #expect(try Sealed.open(sealed, as: Sealed.other) == Self.content)
    }

    @Test func aChunkFlippedSwappedDroppedOrSplicedDoesNotOpen() throws {
        let sealed = try Sealed.transfer(Self.content)
        var flipped = sealed
        flipped.chunks[2] = Sealed.flipped(sealed.chunks[2], at: 1)
        #expect(Sealed.failure { try Sealed.open(flipped) } == .corrupt)

        var swapped = sealed
        swapped.chunks.swapAt(1, 2)
        #expect(Sealed.failure { try Sealed.open(swapped) } == .corrupt)

        // The last chunk dropped: every chunk opens, but the end is not where it was sealed.
        var truncated = sealed
        truncated.chunks.removeLast()
        #expect(Sealed.failure { try Sealed.open(truncated) } == .corrupt)

        // A chunk from another transfer of the same file to the same receiver (another file key).
        let other = try Sealed.transfer(Self.content)
        var spliced = sealed
        spliced.chunks[3] = other.chunks[3]
        #expect(Sealed.failure { try Sealed.open(spliced) } == .corrupt)
        var endSwapped = sealed
        endSwapped.end = other.end
        #expect(Sealed.failure { try Sealed.open(endSwapped) } == .corrupt)
    }

    @Test func theChunkHeaderIsBoundToo() throws {
        var sealer = try FileSealer(
            recipients: [Sealed.recipient(Sealed.receiver)], info: Sealed.info("report.txt", Self.content),
            signer: Sealed.sender)
        let chunk = try sealer.seal(ByteBuffer(bytes: Self.content), compressed: false, rawLength: 29)
        for (compressed, rawLength) in [(true, UInt32(29)), (false, UInt32(28))] {
            var opener = try FileOpener(header: sealer.header, key: Sealed.receiver, sender: Sealed.sender.id)
            #expect(
                Sealed.failure { try opener.open(chunk, compressed: compressed, rawLength: rawLength) } == .corrupt)
        }
    }

    @Test func theSenderMustBeTheKeyThatProvedItselfAndSigned() throws {
        let sealed = try Sealed.transfer(Self.content)
        // The hub says the sender is another key, or none: refused before any chunk.
        #expect(Sealed.failure { try Sealed.open(sealed, from: Sealed.other.id) } == .refused)
        #expect(Sealed.failure { try Sealed.open(sealed, from: nil) } == .refused)

        // A hub that knows the receiver's public key seals a file of its own naming the sender's key: its header is
        // refused as it arrives (the receiver answers on a header, already stored or a resume offer, only once the
        // sender's signature over it verifies), and its end could not be signed as the sender either.
        var forger = try FileSealer(
            recipients: [Sealed.recipient(Sealed.receiver)], info: Sealed.info("report.txt", Self.content),
            signer: Sealed.other)
        let chunk = try forger.seal(ByteBuffer(bytes: Self.content), compressed: false, rawLength: 29)
        let end = try forger.trailer(size: 29, sha256: Array(SHA256.hash(data: Self.content)))
        #expect(
            Sealed.failure { try Sealed.open((forger.header, [chunk], end), chunkSize: 29) } == .corrupt,
            "signed by another key")
        #expect(
            Sealed.failure {
                try FileOpener(header: forger.header, key: Sealed.receiver, sender: Sealed.sender.id)
            } == .corrupt, "the header alone")
    }

    @Test func aChangedHeaderDoesNotOpen() throws {
        let sealed = try Sealed.transfer(Self.content)
        let length = sealed.header.readableBytes
        for offset in [2, 40, 120, length - 3] {
            var changed = sealed
            changed.header = Sealed.flipped(sealed.header, at: offset)
            #expect(Sealed.failure { try Sealed.open(changed) } != nil, "offset \(offset)")
        }
        var garbage = sealed
        garbage.header = ByteBuffer(bytes: [1, 2, 3])
        #expect(Sealed.failure { try Sealed.open(garbage) } != nil)
    }

    @Test func messagesOpenInSequenceOnlyFromTheirSender() throws {
        var sealer = try MessageSealer(to: Sealed.recipient(Sealed.receiver), from: Sealed.sender)
        let flags = MessagePart.Flags([.start, .end, .sealed]).rawValue
        let parts = try (0..<3).map { index in
            try sealer.seal(ByteBuffer(string: "line \(index)"), messageID: UInt32(index + 1), flags: flags)
        }
        var opener = try MessageOpener(
            encapsulatedKey: sealer.encapsulatedKey, key: Sealed.receiver, sender: Sealed.recipient(Sealed.sender))
        #expect(String(buffer: try opener.open(parts[0], messageID: 1, flags: flags)) == "line 0")
        // Replayed: refused; a part lost on the way (1) is skipped, not fatal.
        #expect(Sealed.failure { try opener.open(parts[0], messageID: 1, flags: flags) } == .corrupt)
        #expect(String(buffer: try opener.open(parts[2], messageID: 3, flags: flags)) == "line 2")
        #expect(Sealed.failure { try opener.open(parts[1], messageID: 2, flags: flags) } == .corrupt)

        // Another message id or flags than were sealed: does not open.
        var fresh = try MessageOpener(
            encapsulatedKey: sealer.encapsulatedKey, key: Sealed.receiver, sender: Sealed.recipient(Sealed.sender))
        #expect(Sealed.failure { try fresh.open(parts[0], messageID: 9, flags: flags) } == .corrupt)
        #expect(
            Sealed.failure {
                try fresh.open(parts[0], messageID: 1, flags: flags | MessagePart.Flags.noReceipt.rawValue)
            } == .corrupt)
        // Auth mode: the session does not open as if from another key.
        #expect(
            Sealed.failure {
                try MessageOpener(
                    encapsulatedKey: sealer.encapsulatedKey, key: Sealed.receiver,
                    sender: Sealed.recipient(Sealed.other))
            } == .corrupt
                || Sealed.failure {
                    var wrong = try MessageOpener(
                        encapsulatedKey: sealer.encapsulatedKey, key: Sealed.receiver,
                        sender: Sealed.recipient(Sealed.other))
                    return try wrong.open(parts[0], messageID: 1, flags: flags)
                } == .corrupt)
    }

    /// A receiver's assembler: a sealed session replayed whole, a part left out of a message, and a part numbered
    /// with the session's last number are refused (the last would have trapped on the next number).
    @Test func theAssemblerRefusesReplayedSessionsGapsAndTheLastNumber() throws {
        let record = PeerRecord(id: 7, name: "cron", key: Sealed.sender.id.bytes, publicKey: Sealed.sender.spki)
        func sealedParts(_ texts: [String], sealer: inout MessageSealer, messageID: UInt32) throws -> [MessagePart] {
            try texts.enumerated().map { index, text in
                var flags = MessagePart.Flags.sealed
                if index == 0 { flags.insert(.start) }
                if index == texts.count - 1 { flags.insert(.end) }
                var body = try sealer.seal(ByteBuffer(string: text), messageID: messageID, flags: flags.rawValue)
                if sealer.sequence == 1 {  // the session's first part carries its key
                    var keyed = ByteBuffer(bytes: sealer.encapsulatedKey)
                    keyed.writeBuffer(&body)
                    body = keyed
                    flags.insert(.keyed)
                }
                return MessagePart(messageID: messageID, flags: flags, bytes: body)
            }
        }
        func assembler() -> MessageAssembler {
            var assembler = MessageAssembler(maxMessageSize: 1 << 20)
            assembler.sealing = Sealed.receiver
            return assembler
        }
        func text(_ outcome: MessageAssembler.Outcome) -> String? {
            if case .complete(let message) = outcome, message.sealed { return String(buffer: message.bytes) }
            return nil
        }
        func isRefused(_ outcome: MessageAssembler.Outcome) -> Bool {
            if case .refused(_, _, .refused, _, _) = outcome { return true }
            return false
        }

        var sealer = try MessageSealer(to: Sealed.recipient(Sealed.receiver), from: Sealed.sender)
        let first = try sealedParts(["rotate ", "the ", "logs"], sealer: &sealer, messageID: 1)
        let second = try sealedParts(["purge ", "the ", "cache"], sealer: &sealer, messageID: 2)
        var receiver = assembler()
        #expect(text(receiver.add(first[0], from: 7, record: record)) == nil)
        #expect(text(receiver.add(first[1], from: 7, record: record)) == nil)
        #expect(text(receiver.add(first[2], from: 7, record: record)) == "rotate the logs")
        // The middle part of the second message left out: refused, not delivered short.
        #expect(text(receiver.add(second[0], from: 7, record: record)) == nil)
        #expect(isRefused(receiver.add(second[2], from: 7, record: record)))
        // The first session replayed whole on the same connection (even under another peer id): refused.
        #expect(isRefused(receiver.add(first[0], from: 8, record: record)))
        #expect(isRefused(receiver.add(first[0], from: 7, record: record)))

        // A genuine session's key copied onto another body: refused, and the genuine part still opens after it.
        var fresh = try MessageSealer(to: Sealed.recipient(Sealed.receiver), from: Sealed.sender)
        let genuine = try sealedParts(["genuine"], sealer: &fresh, messageID: 1)
        var forged = genuine[0]
        forged.bytes = ByteBuffer(
            bytes: Array(genuine[0].bytes.readableBytesView.prefix(Sealing.encapsulatedKeySize)) + [1, 2, 3])
        #expect(isRefused(receiver.add(forged, from: 7, record: record)))
        #expect(text(receiver.add(genuine[0], from: 7, record: record)) == "genuine")

        // The last sequence number never opens (the session has no number after it).
        var last = try MessageSealer(to: Sealed.recipient(Sealed.receiver), from: Sealed.sender)
        let keyed = try sealedParts(["first"], sealer: &last, messageID: 1)
        last.sequence = .max
        let final = try sealedParts(["last"], sealer: &last, messageID: 2)
        var other = assembler()
        #expect(text(other.add(keyed[0], from: 7, record: record)) == "first")
        #expect(isRefused(other.add(final[0], from: 7, record: record)))
    }

    @Test func aPublicKeyIsBelievedOnlyUnderItsOwnID() {
        #expect(SealingRecipient(id: Sealed.other.id, spki: Sealed.receiver.spki) == nil)
        #expect(SealingRecipient(id: NodeID(spki: [1, 2, 3]), spki: [1, 2, 3]) == nil, "not a P-256 key")
        var peer = PeerRecord(id: 4, name: "archive", key: Sealed.receiver.id.bytes)
        #expect(SealingRecipient(peer) == nil, "no public key announced")
        peer.publicKey = Sealed.receiver.spki
        #expect(SealingRecipient(peer)?.id == Sealed.receiver.id)
        peer.publicKey = Sealed.other.spki
        #expect(SealingRecipient(peer) == nil)
    }

    // MARK: containers

    static func pipe(_ bytes: [UInt8]) throws -> Int32 {
        let path = "/tmp/tcpip-sealing-test-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw TestFailure("cannot make \(path)") }
        unlink(path)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        lseek(fd, 0, SEEK_SET)
        return fd
    }

    static func contents(_ fd: Int32) -> [UInt8] {
        lseek(fd, 0, SEEK_SET)
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if got <= 0 { break }
            bytes += buffer[..<got]
        }
        return bytes
    }

    static func container(_ content: [UInt8], chunkSize: Int = 7) throws -> [UInt8] {
        let input = try pipe(content)
        let output = try pipe([])
        defer {
            close(input)
            close(output)
        }
        _ = try SealedContainer.seal(
            from: input, to: output, recipients: [Sealed.recipient(Sealed.receiver)],
            info: SealedFileInfo(name: "queued.txt", sha256: nil, message: false, senderSPKI: Sealed.sender.spki),
            signer: Sealed.sender, chunkSize: chunkSize)
        return contents(output)
    }

    static func openContainer(_ bytes: [UInt8], as key: SealingKey = Sealed.receiver) throws -> [UInt8] {
        let input = try pipe(bytes)
        let output = try pipe([])
        defer {
            close(input)
            close(output)
        }
        let opened = try SealedContainer.open(from: input, to: output, key: key, sender: Sealed.sender.id)
        #expect(opened.info.name == "queued.txt")
        return contents(output)
    }

    @Test func aContainerOpensWholeOrNotAtAll() throws {
        for content in [Self.content, [], Array(repeating: UInt8(7), count: 70_000)] {
            let sealed = try Self.container(content)
            #expect(try Self.openContainer(sealed) == content)
            #expect(content.count < 6 || !Self.contains(sealed, Array(content.prefix(6))))
        }
        let sealed = try Self.container(Self.content)
        #expect(Sealed.failure { try Self.openContainer(sealed, as: Sealed.other) } == .refused)
        for offset in [0, 12, sealed.count / 2, sealed.count - 1] {
            var changed = sealed
            changed[offset] ^= 0x20
            #expect(Sealed.failure { try Self.openContainer(changed) } != nil, "offset \(offset)")
        }
        for cut in [1, 20, sealed.count - 30] {
            #expect(Sealed.failure { try Self.openContainer(Array(sealed.prefix(cut))) } == .corrupt, "cut at \(cut)")
        }
        #expect(Sealed.failure { try Self.openContainer(sealed + [0]) } == .corrupt, "bytes after the end")
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        return (0...(haystack.count - needle.count)).contains {
            haystack[$0..<($0 + needle.count)].elementsEqual(needle)
        }
    }
}

/// The receiver's machine with sealed transfers: it opens, checks the signature, and publishes nothing else.
@Suite struct SealedTransferMachineTests {
    static let content = Array("sealed through a hub\n".utf8)
    static let cron = PeerRecord(id: 7, name: "cron", key: Sealed.sender.id.bytes, publicKey: Sealed.sender.spki)

    static func machine(key: SealingKey? = Sealed.receiver) -> TransferMachine {
        var policy = TransferMachine.Policy()
        policy.sealingKey = key
        return TransferMachine(policy: policy)
    }

    static func events(_ sealed: (header: ByteBuffer, chunks: [ByteBuffer], end: ByteBuffer), size: Int)
        -> [TransferMachine.Event]
    {
        var start = FileStart(transferID: 1, name: "sealed", size: UInt64(size), chunkSize: 4)
        start.sealed = sealed.header
        var events: [TransferMachine.Event] = [.start(start, from: 7, sender: cron)]
        var left = size
        for chunk in sealed.chunks {
            let raw = UInt32(min(4, left))
            left -= Int(raw)
            events.append(
                .chunk(FileChunk(transferID: 1, rawLength: raw, compressed: false, data: chunk, sealed: true), from: 7))
        }
        var end = FileEnd(transferID: 1, size: 0, sha256: [])
        end.sealed = sealed.end
        events.append(.end(end, aborted: false, from: 7, sender: cron))
        return events
    }

    @Test func aSealedFileIsCommittedUnderItsSealedNameWithItsSigner() throws {
        var machine = Self.machine()
        let actions = TransferMachineTests.run(
            &machine, Self.events(try Sealed.transfer(Self.content), size: Self.content.count))
        let commit = try #require(TransferMachineTests.commits(actions).first, "\(actions)")
        #expect(commit.sentAs == "report.txt")
        #expect(commit.sha256 == Array(SHA256.hash(data: Self.content)))
        #expect(commit.signedBy == Sealed.sender.id)
        #expect(TransferMachineTests.receipts(actions).isEmpty)
    }

    /// A queued message comes as a sealed container, a little larger than what it holds: the receiver's message limit
    /// allows for that (what it holds is held to the limit once opened), and no more.
    @Test func aContainerMayExceedTheMessageLimitByItsSealingOnly() {
        func refused(size: UInt64) -> Bool {
            var policy = TransferMachine.Policy()
            policy.sealingKey = Sealed.receiver
            policy.maxMessageSize = 1 << 20
            var machine = TransferMachine(policy: policy)
            var start = FileStart(transferID: 1, name: "message-1.txt", size: size, chunkSize: 64 << 10)
            start.message = true
            start.container = true
            start.origin = Self.cron
            let store = PeerRecord(id: 2, name: "store", role: ClientSession.storeRole)
            let actions = TransferMachineTests.run(&machine, [.start(start, from: 2, sender: store)])
            #expect(!TransferMachineTests.receipts(actions).contains { $0.status == .invalid }, "\(actions)")
            return TransferMachineTests.receipts(actions).contains { $0.status == .refused }
        }
        #expect(!refused(size: (1 << 20) + 2048), "a message at the limit, sealed")
        #expect(refused(size: SealedContainer.sizeLimit(forContent: 1 << 20) + 1))
    }

    /// A receiver with a key answers "already stored" or offers a stored file only on a header its sender signed: a
    /// container's or a keyless peer's name and digest are the hub's to make up, and the answer would tell it what is
    /// stored. The same file sealed is answered.
    @Test func onlyASignedHeaderIsAnsweredFromTheIndex() throws {
        var policy = TransferMachine.Policy()
        policy.sealingKey = Sealed.receiver
        policy.alreadyStored = { _, _ in "report.txt" }
        policy.storedLike = { _, _ in (sha256: Array(repeating: 1, count: 32), storedAs: "report.txt") }
        func answers(_ start: FileStart, sender: PeerRecord, from: UInt32) -> [FileReceipt.Status] {
            var machine = TransferMachine(policy: policy)
            let actions = TransferMachineTests.run(&machine, [.start(start, from: from, sender: sender)])
            // A stored file offered as held whole (its SHA-256 for the sender to compare) counts as an answer too.
            let offers = actions.filter {
                if case .offer(let resume, _) = $0 { resume.offset == start.size } else { false }
            }.count
            return TransferMachineTests.receipts(actions).map(\.status) + (offers > 0 ? [.alreadyStored] : [])
        }
        let digest = Array(SHA256.hash(data: Self.content))
        var container = FileStart(transferID: 1, name: "report.txt", size: 100, chunkSize: 64, sha256: digest)
        container.container = true
        container.origin = Self.cron
        let store = PeerRecord(id: 2, name: "store", role: ClientSession.storeRole)
        #expect(answers(container, sender: store, from: 2).isEmpty)
        var resumable = FileStart(transferID: 2, name: "report.txt", size: 100, chunkSize: 64)
        resumable.container = true
        resumable.resumable = true
        resumable.origin = Self.cron
        #expect(answers(resumable, sender: store, from: 2).isEmpty)
        let keyless = PeerRecord(id: 9, name: "olive")
        let plain = FileStart(transferID: 3, name: "report.txt", size: 100, chunkSize: 64, sha256: digest)
        #expect(answers(plain, sender: keyless, from: 9).isEmpty)
        // Sealed and signed by its sender: answered.
        var sealed = FileStart(transferID: 4, name: "sealed", size: UInt64(Self.content.count), chunkSize: 4)
        sealed.sealed = try Sealed.transfer(Self.content).header
        #expect(answers(sealed, sender: Self.cron, from: 7) == [.alreadyStored])
    }

    @Test func tamperingIsRefusedAndNothingIsCommitted() throws {
        let sealed = try Sealed.transfer(Self.content)
        var flipped = sealed
        flipped.chunks[1] = Sealed.flipped(sealed.chunks[1], at: 2)
        var swapped = sealed
        swapped.chunks.swapAt(0, 1)
        for (label, case_) in [("flipped", flipped), ("swapped", swapped)] {
            var machine = Self.machine()
            let actions = TransferMachineTests.run(&machine, Self.events(case_, size: Self.content.count))
            #expect(TransferMachineTests.commits(actions).isEmpty, "\(label)")
            #expect(TransferMachineTests.receipts(actions).map(\.status) == [.corrupt], "\(label)")
        }
        // The last chunk dropped (sizes still add up to what was sent): the end does not open.
        var machine = Self.machine()
        var events = Self.events(sealed, size: Self.content.count)
        events.remove(at: events.count - 2)
        let actions = TransferMachineTests.run(&machine, events)
        #expect(TransferMachineTests.commits(actions).isEmpty)
        #expect(TransferMachineTests.receipts(actions).map(\.status) == [.corrupt])
    }

    @Test func anUnsealedFileFromAKeyIsRefusedAndASealedOneNeedsAKey() throws {
        var machine = Self.machine()
        let plain = FileStart(transferID: 1, name: "a.txt", size: 3, chunkSize: 4)
        var actions = machine.handle(.start(plain, from: 7, sender: Self.cron))
        #expect(TransferMachineTests.receipts(actions).map(\.status) == [.refused])

        var keyless = Self.machine(key: nil)
        actions = TransferMachineTests.run(
            &keyless, Self.events(try Sealed.transfer(Self.content), size: Self.content.count))
        #expect(TransferMachineTests.receipts(actions).map(\.status) == [.refused])
        #expect(TransferMachineTests.commits(actions).isEmpty)

        // A container only comes from the hub's store.
        var container = FileStart(transferID: 2, name: "queued.txt", size: 100, chunkSize: 4)
        container.container = true
        actions = machine.handle(.start(container, from: 7, sender: Self.cron))
        #expect(TransferMachineTests.receipts(actions).map(\.status) == [.invalid])
    }

    @Test func aFileSealedForAnotherKeyOrFromAnotherSenderIsRefused() throws {
        var machine = Self.machine(key: Sealed.other)
        var actions = TransferMachineTests.run(
            &machine, Self.events(try Sealed.transfer(Self.content), size: Self.content.count))
        #expect(TransferMachineTests.receipts(actions).first?.status == .refused)
        var impostor = Self.machine()
        var events = Self.events(try Sealed.transfer(Self.content, from: Sealed.other), size: Self.content.count)
        events[0] = {
            guard case .start(let start, let from, _) = events[0] else { return events[0] }
            return .start(start, from: from, sender: Self.cron)
        }()
        actions = TransferMachineTests.run(&impostor, events)
        #expect(TransferMachineTests.receipts(actions).first?.status == .refused)
        #expect(TransferMachineTests.commits(actions).isEmpty)
    }
}

/// The sealed formats' golden vectors: docs/PROTOCOL.md lists them as `sealed NAME: HEX`. HPKE's encapsulation and
/// ECDSA are randomized, so the header, the end and the message are checked by opening them; the chunks, sealed under
/// the documented file key, are checked byte for byte in both directions.
@Suite struct SealedGoldenVectorTests {
    static let plain = [Array("sealed end ".utf8), Array("to end\n".utf8)]
    static var content: [UInt8] { plain.flatMap { $0 } }
    static let messageFlags = MessagePart.Flags([.start, .end, .sealed]).rawValue

    static let documented: [String: [UInt8]] = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let text = (try? String(contentsOf: root.appendingPathComponent("docs/PROTOCOL.md"), encoding: .utf8)) ?? ""
        var vectors: [String: [UInt8]] = [:]
        // Only `sealed NAME: HEX` lines (prose in the doc may start with "sealed" too).
        for line in text.split(separator: "\n") where line.hasPrefix("sealed ") {
            let parts = line.dropFirst("sealed ".count).split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].allSatisfy({ $0.isLetter || $0.isNumber }) else { continue }
            let hex = parts[1].trimmingCharacters(in: .whitespaces)
            guard !hex.isEmpty, hex.count % 2 == 0, hex.allSatisfy(\.isHexDigit) else { continue }
            vectors[String(parts[0])] = Hex.bytes(hex)
        }
        return vectors
    }()

    static var info: SealedFileInfo { Sealed.info("report.txt", content) }

    /// Prints a fresh set (TCPIP_PRINT_SEALED_VECTORS=1), for the doc.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["TCPIP_PRINT_SEALED_VECTORS"] != nil))
    func printVectors() throws {
        let fileKey = SymmetricKey(size: .bits256)
        var sealer = try FileSealer(
            recipients: [Sealed.recipient(Sealed.receiver)], info: Self.info, signer: Sealed.sender, fileKey: fileKey)
        let chunks = try Self.plain.map {
            try sealer.seal(ByteBuffer(bytes: $0), compressed: false, rawLength: UInt32($0.count))
        }
        let end = try sealer.trailer(size: UInt64(Self.content.count), sha256: Array(SHA256.hash(data: Self.content)))
        var messages = try MessageSealer(to: Sealed.recipient(Sealed.receiver), from: Sealed.sender)
        let message = try messages.seal(ByteBuffer(string: "hello"), messageID: 1, flags: Self.messageFlags)
        let lines = [
            ("recipientKey", Sealed.receiver.signing.rawRepresentation.map { $0 }),
            ("senderKey", Sealed.sender.signing.rawRepresentation.map { $0 }),
            ("fileKey", fileKey.withUnsafeBytes { Array($0) }), ("header", Array(sealer.header.readableBytesView)),
            ("chunk0", Array(chunks[0].readableBytesView)), ("chunk1", Array(chunks[1].readableBytesView)),
            ("end", Array(end.readableBytesView)), ("messageKey", messages.encapsulatedKey),
            ("message0", Array(message.readableBytesView)),
        ]
        for (name, bytes) in lines { print("sealed \(name): \(bytes.hex)") }
    }

    @Test func theDocumentedKeysAreTheTestKeys() throws {
        #expect(Self.documented["recipientKey"] == Array(Sealed.receiver.signing.rawRepresentation))
        #expect(Self.documented["senderKey"] == Array(Sealed.sender.signing.rawRepresentation))
    }

    @Test func theDocumentedFileOpensAndItsChunksSealTheSame() throws {
        let header = ByteBuffer(bytes: try #require(Self.documented["header"], "docs/PROTOCOL.md has no sealed header"))
        var opener = try FileOpener(header: header, key: Sealed.receiver, sender: Sealed.sender.id)
        #expect(opener.info.name == Self.info.name && opener.info.sha256 == Self.info.sha256)
        #expect(opener.info.message == Self.info.message && opener.info.senderSPKI == Self.info.senderSPKI)
        let chunks = try ["chunk0", "chunk1"].map { try #require(Self.documented[$0]) }
        for (index, chunk) in chunks.enumerated() {
            let plain = try opener.open(
                ByteBuffer(bytes: chunk), compressed: false, rawLength: UInt32(Self.plain[index].count))
            #expect(Array(plain.readableBytesView) == Self.plain[index])
        }
        let (size, digest) = try opener.openTrailer(ByteBuffer(bytes: try #require(Self.documented["end"])))
        #expect(size == 18 && digest == Array(SHA256.hash(data: Self.content)))

        // Sealing direction: the same file key over the same header gives the same chunks.
        var sealer = FileSealer(
            fileKey: SymmetricKey(data: try #require(Self.documented["fileKey"])), header: header, info: Self.info,
            signer: Sealed.sender)
        for (index, plain) in Self.plain.enumerated() {
            let sealed = try sealer.seal(ByteBuffer(bytes: plain), compressed: false, rawLength: UInt32(plain.count))
            #expect(Array(sealed.readableBytesView) == chunks[index], "chunk\(index)")
        }
    }

    @Test func theDocumentedMessageOpens() throws {
        var opener = try MessageOpener(
            encapsulatedKey: try #require(Self.documented["messageKey"]), key: Sealed.receiver,
            sender: Sealed.recipient(Sealed.sender))
        let part = try opener.open(
            ByteBuffer(bytes: try #require(Self.documented["message0"])), messageID: 1, flags: Self.messageFlags)
        #expect(String(buffer: part) == "hello")
    }
}
