import Crypto
import NIOCore
import TCPIPReceiver
import TCPIPWire
import Testing

/// The receiver's transfer lifecycle without sockets or disks: events in, actions out.
@Suite struct TransferMachineTests {
    typealias Key = TransferMachine.Key

    static let content = Array("hello, spool".utf8)
    static let digest = Array(SHA256.hash(data: content))

    static func start(_ id: UInt32 = 1, name: String = "a.txt", sha256: [UInt8]? = nil) -> FileStart {
        FileStart(
            transferID: id, name: name, size: UInt64(content.count), chunkSize: 1024, compression: 0, sha256: sha256)
    }

    static func chunk(_ id: UInt32 = 1, _ bytes: [UInt8] = content) -> FileChunk {
        FileChunk(transferID: id, rawLength: UInt32(bytes.count), compressed: false, data: ByteBuffer(bytes: bytes))
    }

    /// Performs the machine's requests as a faithful disk would, and returns every action it took. A partial file
    /// (a resumable transfer's) is found holding `held`; with `resumable`, every transfer must ask for one.
    static func run(
        _ machine: inout TransferMachine, held: ArraySlice<UInt8> = [], resumable: Bool = false,
        _ events: [TransferMachine.Event]
    ) -> [TransferMachine.Action] {
        var all: [TransferMachine.Action] = []
        var next = events
        var descriptor: Int32 = 10
        while !next.isEmpty {
            for action in machine.handle(next.removeFirst()) {
                all.append(action)
                switch action {
                case .create(let key, _, let partial):
                    if resumable { #expect(partial != nil, "a resumable transfer names its partial file") }
                    descriptor += 1
                    var hasher = SHA256()
                    hasher.update(data: Array(partial == nil ? [] : held))
                    next.insert(
                        .created(
                            key, .init(descriptor: descriptor, path: "tmp/\(descriptor)"),
                            held: partial == nil ? 0 : UInt64(held.count), hasher: hasher), at: 0)
                case .write(let key, let chunk, _, _, let hasher):
                    var hasher = hasher
                    hasher.update(data: Array(chunk.data.readableBytesView))
                    next.insert(
                        .wrote(
                            key, hasher: hasher, raw: UInt64(chunk.rawLength), wire: UInt64(chunk.data.readableBytes)),
                        at: 0)
                default:
                    break
                }
            }
        }
        return all
    }

    static func receipts(_ actions: [TransferMachine.Action]) -> [FileReceipt] {
        actions.compactMap { if case .send(let receipt, _) = $0 { receipt } else { nil } }
    }

    static func commits(_ actions: [TransferMachine.Action]) -> [TransferMachine.Commit] {
        actions.compactMap { if case .commit(let commit) = $0 { commit } else { nil } }
    }

    static func discards(_ actions: [TransferMachine.Action]) -> Int {
        actions.filter { if case .discard = $0 { true } else { false } }.count
    }

    @Test func aWholeFileIsCommittedWithTheDigestItWasCheckedAgainst() throws {
        var machine = TransferMachine(policy: .init())
        let actions = Self.run(
            &machine,
            [
                .start(Self.start(sha256: Self.digest), from: 7, sender: nil), .chunk(Self.chunk(), from: 7),
                .end(
                    FileEnd(transferID: 1, size: UInt64(Self.content.count), sha256: Self.digest), aborted: false,
                    from: 7, sender: nil),
            ])
        let commit = try #require(Self.commits(actions).first)
        #expect(commit.sha256 == Self.digest)
        #expect(commit.size == UInt64(Self.content.count))
        #expect(commit.sentAs == "a.txt")
        #expect(Self.receipts(actions).isEmpty, "the committer answers once the file is durable")
        #expect(machine.open == 0)
    }

    @Test func aDigestThatDiffersFromTheEndOrTheStartIsCorruptAndDiscarded() {
        let wrong = Array(repeating: UInt8(1), count: 32)
        for (announced, atEnd) in [(nil, wrong), (wrong, Self.digest)] as [([UInt8]?, [UInt8])] {
            var machine = TransferMachine(policy: .init())
            let actions = Self.run(
                &machine,
                [
                    .start(Self.start(sha256: announced), from: 7, sender: nil), .chunk(Self.chunk(), from: 7),
                    .end(
                        FileEnd(transferID: 1, size: UInt64(Self.content.count), sha256: atEnd), aborted: false,
                        from: 7, sender: nil),
                ])
            #expect(Self.commits(actions).isEmpty)
            #expect(Self.receipts(actions).map(\.status) == [.corrupt])
            #expect(Self.discards(actions) == 1)
        }
    }

    @Test(arguments: ["../x", "/etc/passwd", "a/../../b", "", "d/"])
    func anUnsafeNameIsRefusedBeforeAFileIsMade(name: String) {
        var machine = TransferMachine(policy: .init())
        let actions = Self.run(&machine, [.start(Self.start(name: name), from: 7, sender: nil)])
        #expect(Self.receipts(actions).map(\.status) == [.invalid])
        #expect(!actions.contains { if case .create = $0 { true } else { false } })
    }

    @Test func moreBytesThanAnnouncedAbortOnlyThatTransfer() {
        var machine = TransferMachine(policy: .init())
        let actions = Self.run(
            &machine,
            [
                .start(Self.start(1), from: 7, sender: nil), .start(Self.start(2), from: 8, sender: nil),
                .chunk(Self.chunk(1, Self.content + [0]), from: 7),
            ])
        #expect(Self.receipts(actions).map(\.status) == [.corrupt])
        #expect(Self.discards(actions) == 1)
        #expect(machine.open(from: 8) == 1)
    }

    @Test func aMalformedPacketCostsItsSenderThatTransferOnly() {
        var machine = TransferMachine(policy: .init())
        let actions = Self.run(
            &machine,
            [
                .start(Self.start(1), from: 7, sender: nil), .start(Self.start(2), from: 7, sender: nil),
                .malformed(.fileChunk, from: 7, transferID: 1, error: "short"),
            ])
        #expect(Self.receipts(actions).map(\.status) == [.invalid])
        #expect(Self.receipts(actions).first?.transferID == 1)
        #expect(machine.open(from: 7) == 1)
    }

    @Test func aSenderThatLeavesTakesOnlyItsOwnTransfers() {
        var machine = TransferMachine(policy: .init())
        let actions = Self.run(
            &machine,
            [
                .start(Self.start(1), from: 7, sender: nil), .start(Self.start(1), from: 8, sender: nil),
                .senderLeft(7),
            ])
        #expect(Self.discards(actions) == 1)
        #expect(machine.open(from: 7) == 0)
        #expect(machine.open(from: 8) == 1)
    }

    @Test func limitsAndStoppingRefuseWithUnavailable() {
        var policy = TransferMachine.Policy()
        policy.maxTransfersPerSender = 2
        var machine = TransferMachine(policy: policy)
        var actions = Self.run(&machine, (1...3).map { .start(Self.start($0), from: 7, sender: nil) })
        #expect(Self.receipts(actions).map(\.status) == [.unavailable])
        actions = Self.run(&machine, [.stopTaking, .start(Self.start(9), from: 8, sender: nil)])
        #expect(Self.receipts(actions).map(\.status) == [.unavailable])
        // Those in progress may still finish.
        actions = Self.run(
            &machine,
            [
                .chunk(Self.chunk(1), from: 7),
                .end(
                    FileEnd(transferID: 1, size: UInt64(Self.content.count), sha256: Self.digest), aborted: false,
                    from: 7, sender: nil),
            ])
        #expect(Self.commits(actions).count == 1)
    }

    @Test func aFileAlreadyStoredIsAnsweredWithoutAFile() {
        var policy = TransferMachine.Policy()
        policy.alreadyStored = { sentAs, sha256 in sentAs == "a.txt" && sha256 == Self.digest.hexString ? "a.txt" : nil
        }
        var machine = TransferMachine(policy: policy)
        let actions = Self.run(
            &machine, [.start(Self.start(sha256: Self.digest), from: 7, sender: nil), .chunk(Self.chunk(), from: 7)])
        #expect(Self.receipts(actions).map(\.status) == [.alreadyStored])
        #expect(!actions.contains { if case .create = $0 { true } else { false } })
        #expect(!actions.contains { if case .write = $0 { true } else { false } })
    }

    @Test func aFailedWriteDiscardsAndAnswersStorageFailed() {
        var machine = TransferMachine(policy: .init())
        _ = Self.run(&machine, [.start(Self.start(), from: 7, sender: nil)])
        let actions = Self.run(&machine, [.writeFailed(Key(from: 7, id: 1), .storageFailed, reason: "disk full")])
        #expect(Self.receipts(actions).map(\.status) == [.storageFailed])
        #expect(Self.discards(actions) == 1)
        #expect(machine.open == 0)
    }
}

extension Array where Element == UInt8 {
    fileprivate var hexString: String { map { String(format: "%02x", $0) }.joined() }
}

/// Resume: a resumable transfer offers what it holds, waits for the sender's FileSeek, and keeps its partial file when
/// the sender goes away.
@Suite struct TransferMachineResumeTests {
    typealias Key = TransferMachine.Key
    static let content = Array((0..<200).map { UInt8($0) })
    static let digest = Array(SHA256.hash(data: content))
    static let sender = PeerRecord(id: 7, name: "cron")

    static func start(_ id: UInt32 = 1) -> FileStart {
        FileStart(
            transferID: id, name: "big.bin", size: UInt64(content.count), chunkSize: 100, sha256: digest,
            resumable: true)
    }

    static func chunk(_ bytes: ArraySlice<UInt8>, _ id: UInt32 = 1) -> FileChunk {
        FileChunk(transferID: id, rawLength: UInt32(bytes.count), compressed: false, data: ByteBuffer(bytes: bytes))
    }

    static func end(_ id: UInt32 = 1) -> TransferMachine.Event {
        .end(
            FileEnd(transferID: id, size: UInt64(content.count), sha256: digest), aborted: false, from: 7,
            sender: sender)
    }

    static func run(_ machine: inout TransferMachine, held: ArraySlice<UInt8> = [], _ events: [TransferMachine.Event])
        -> [TransferMachine.Action]
    {
        TransferMachineTests.run(&machine, held: held, resumable: true, events)
    }

    @Test func aKeptPrefixIsOfferedAndTheRestCompletesTheFile() throws {
        var machine = TransferMachine(policy: .init())
        let held = Self.content[..<120]
        let actions = Self.run(
            &machine, held: held,
            [
                .start(Self.start(), from: 7, sender: Self.sender),
                .seek(FileSeek(transferID: 1, offset: 120), from: 7),
                .chunk(Self.chunk(Self.content[120...]), from: 7), Self.end(),
            ])
        let offer = try #require(actions.lazy.compactMap { if case .offer(let r, _) = $0 { r } else { nil } }.first)
        #expect(offer.offset == 120)
        #expect(offer.prefixSHA256 == Array(SHA256.hash(data: Array(held))))
        let commit = try #require(actions.lazy.compactMap { if case .commit(let c) = $0 { c } else { nil } }.first)
        #expect(commit.sha256 == Self.digest)
        #expect(commit.resumedFrom == 120)
    }

    @Test func aSenderWhoseFileDiffersStartsOverFromZero() throws {
        var machine = TransferMachine(policy: .init())
        let actions = Self.run(
            &machine, held: Array(repeating: 0xEE, count: 50)[...],
            [
                .start(Self.start(), from: 7, sender: Self.sender), .seek(FileSeek(transferID: 1, offset: 0), from: 7),
                .chunk(Self.chunk(Self.content[..<100]), from: 7), .chunk(Self.chunk(Self.content[100...]), from: 7),
                Self.end(),
            ])
        #expect(actions.contains { if case .truncate = $0 { true } else { false } })
        let commit = try #require(actions.lazy.compactMap { if case .commit(let c) = $0 { c } else { nil } }.first)
        #expect(commit.sha256 == Self.digest)
        #expect(commit.resumedFrom == 0)
    }

    @Test func chunksBeforeTheSeekOrASeekElsewhereAreInvalid() {
        for events: [TransferMachine.Event] in [
            [.chunk(Self.chunk(Self.content[..<100]), from: 7)], [.seek(FileSeek(transferID: 1, offset: 3), from: 7)],
        ] {
            var machine = TransferMachine(policy: .init())
            let actions = Self.run(&machine, [.start(Self.start(), from: 7, sender: Self.sender)] + events)
            let statuses = actions.compactMap { if case .send(let r, _) = $0 { r.status } else { nil } }
            #expect(statuses == [.invalid])
        }
    }

    @Test func aSenderThatLeavesLeavesItsPartialFileBehindForLater() {
        var machine = TransferMachine(policy: .init())
        let actions = Self.run(
            &machine,
            [
                .start(Self.start(), from: 7, sender: Self.sender), .seek(FileSeek(transferID: 1, offset: 0), from: 7),
                .chunk(Self.chunk(Self.content[..<100]), from: 7), .senderLeft(7),
            ])
        #expect(actions.contains { if case .keep = $0 { true } else { false } })
        #expect(!actions.contains { if case .discard = $0 { true } else { false } })
        #expect(machine.open == 0)
    }
}

/// A file the hub's store delivers names who queued it (FileStart tag 9); the receiver believes that only from a peer
/// with the role store, which only the hub's own connection can have.
@Suite struct TransferMachineOriginTests {
    typealias Base = TransferMachineTests

    static func deliver(from sender: PeerRecord, allowing allowed: String) -> [TransferMachine.Action] {
        var policy = TransferMachine.Policy()
        policy.allows = { _, record in record?.name == allowed }
        var machine = TransferMachine(policy: policy)
        var start = Base.start(sha256: Base.digest)
        start.origin = PeerRecord(id: 0, name: "cron")
        let end = FileEnd(transferID: 1, size: UInt64(Base.content.count), sha256: Base.digest)
        return Base.run(
            &machine,
            [
                .start(start, from: sender.id, sender: sender), .chunk(Base.chunk(), from: sender.id),
                .end(end, aborted: false, from: sender.id, sender: sender),
            ])
    }

    @Test func aFileFromTheStoreIsFromWhoeverQueuedIt() {
        let store = PeerRecord(id: 4, name: "store", role: "store")
        let actions = Self.deliver(from: store, allowing: "cron")
        #expect(Base.commits(actions).map(\.senderName) == ["cron"], "allowed, and recorded as cron's")
    }

    @Test func anyOtherPeerCannotClaimAnOrigin() {
        let mallory = PeerRecord(id: 5, name: "mallory", role: "client")
        let actions = Self.deliver(from: mallory, allowing: "cron")
        #expect(Base.commits(actions).isEmpty)
        #expect(Base.receipts(actions).map(\.status) == [.refused], "judged as mallory, not as cron")
    }
}

/// A message sent as a file (FileStart tag 10, `send --queue`) is judged as a message: by the message size limit, and
/// never taken for a file of the same name (nor a file for it).
@Suite struct TransferMachineMessageTests {
    typealias Base = TransferMachineTests

    static func run(message: Bool, _ configure: (inout TransferMachine.Policy) -> Void) -> [TransferMachine.Action] {
        var policy = TransferMachine.Policy()
        configure(&policy)
        var machine = TransferMachine(policy: policy)
        var start = Base.start(name: "report.csv", sha256: Base.digest)
        start.message = message
        let end = FileEnd(transferID: 1, size: UInt64(Base.content.count), sha256: Base.digest)
        return Base.run(
            &machine,
            [
                .start(start, from: 3, sender: nil), .chunk(Base.chunk(), from: 3),
                .end(end, aborted: false, from: 3, sender: nil),
            ])
    }

    @Test func aMessageIsBoundByTheMessageLimitNotTheFileLimit() {
        let limits: (inout TransferMachine.Policy) -> Void = {
            $0.maxFileSize = 4
            $0.maxMessageSize = 1024
        }
        #expect(Base.commits(Self.run(message: true, limits)).map(\.message) == [true])
        #expect(Base.receipts(Self.run(message: false, limits)).map(\.status) == [.refused])
        #expect(Base.receipts(Self.run(message: true) { $0.maxMessageSize = 4 }).map(\.status) == [.refused])
    }

    @Test func aMessageIsNeverTakenForAStoredFileOfTheSameName() {
        let fileStored: (inout TransferMachine.Policy) -> Void = {
            $0.alreadyStored = { name, _ in name == "report.csv" ? "report.csv" : nil }
        }
        #expect(Base.commits(Self.run(message: true, fileStored)).count == 1, "stored as a message")
        #expect(Base.receipts(Self.run(message: false, fileStored)).map(\.status) == [.alreadyStored])
    }
}
