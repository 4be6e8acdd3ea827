import Crypto
import NIOCore
import Synchronization
import TCPIPCore
import TCPIPReceiver
import TCPIPWire

extension FuzzTargets {
    /// One zlib pair for every input (each call resets its stream, so nothing carries over from one input to the
    /// next): a pair per input took a tenth to a sixth of the time on short inputs under ASAN (4,545 exec/s before,
    /// 5,000 to 5,263 after, over the same 100,000 runs from the seeds). Held for a whole input: a stream is one
    /// caller's.
    static let codec: Mutex<(compressor: ChunkCompressor, decompressor: ChunkDecompressor)> = {
        guard let compressor = try? ChunkCompressor(level: 1, headroom: 0), let decompressor = try? ChunkDecompressor()
        else { fatalError("zlib") }
        return Mutex((compressor, decompressor))
    }()

    /// The receiver's transfer state machine driven by packets from three senders (the bytes say which packet, from
    /// whom, for which transfer, and whether the disk fails), with the disk simulated in memory. Whatever arrives:
    /// it never publishes a file whose SHA-256 over the bytes written differs from the one its sender announced (at
    /// the start, if it did, and at the end); it never publishes under a name that leaves the spool; it writes only
    /// to open temporary files, in order; every temporary file is published or discarded exactly once; a sender that
    /// leaves keeps nothing open; and the limits on open transfers hold.
    static func receiver(_ bytes: [UInt8]) {
        codec.withLock { receiver(bytes, compressor: $0.compressor, decompressor: $0.decompressor) }
    }

    static func receiver(_ bytes: [UInt8], compressor: ChunkCompressor, decompressor: ChunkDecompressor) {
        var policy = TransferMachine.Policy()
        policy.maxChunkSize = 64
        policy.maxTransfersPerSender = 3
        policy.maxTransfers = 6
        policy.maxFileSize = 1000
        policy.allows = { from, _ in from != 2 }
        // A stored "ok" of 20 bytes, offered to a resumable sender that announced no SHA-256.
        let storedDigest = Array(SHA256.hash(data: Array("stored".utf8)))
        policy.storedLike = { name, size in name == "ok" && size == 20 ? (storedDigest, "ok") : nil }
        var machine = TransferMachine(policy: policy)
        // The simulated spool: open temporary files by descriptor, with the transfer that owns each (and the partial
        // file's name for a resumable one); partial files kept between attempts, by name.
        var files: [Int32: (key: TransferMachine.Key, bytes: [UInt8])] = [:]
        var partialOf: [Int32: String] = [:]
        var partials: [String: [UInt8]] = [:]
        var offered: [TransferMachine.Key: UInt64] = [:]
        var nextDescriptor: Int32 = 3
        var failCreate = false
        var failWrite = false
        var lastEnd: (key: TransferMachine.Key, sha256: [UInt8], announced: [UInt8]?)?
        var announced: [TransferMachine.Key: [UInt8]] = [:]

        func run(_ event: TransferMachine.Event) {
            var next = [event]
            while !next.isEmpty {
                let actions = machine.handle(next.removeFirst())
                for action in actions {
                    if let outcome = perform(action) { next.append(outcome) }
                }
            }
            check(machine.open <= policy.maxTransfers, "\(machine.open) transfers open")
            for sender in UInt32(0)..<3 {
                check(machine.open(from: sender) <= policy.maxTransfersPerSender, "too many open from \(sender)")
            }
        }

        func perform(_ action: TransferMachine.Action) -> TransferMachine.Event? {
            switch action {
            case .send(let receipt, let to):
                check(to < 3, "a receipt to \(to), who sent nothing")
                _ = receipt.encoded()
            case .offer(let resume, let to):
                let key = TransferMachine.Key(from: to, id: resume.transferID)
                guard let file = files.values.first(where: { $0.key == key }) else {
                    // Only a stored file is offered before anything is made on disk: whole, with its own SHA-256.
                    check(
                        resume.offset == 20 && resume.prefixSHA256 == storedDigest,
                        "an offer for a transfer without a file that is not the stored one")
                    offered[key] = resume.offset
                    return nil
                }
                check(resume.offset == UInt64(file.bytes.count), "offered \(resume.offset) of \(file.bytes.count) held")
                if resume.offset > 0 {
                    check(
                        resume.prefixSHA256 == Array(SHA256.hash(data: file.bytes)), "offered a prefix hash that lies")
                }
                _ = resume.encoded()
                offered[key] = resume.offset
            case .keep(let temporary):
                guard let file = files.removeValue(forKey: temporary.descriptor),
                    let name = partialOf.removeValue(forKey: temporary.descriptor)
                else { fatalError("invariant broken: kept a file that is not an open partial file") }
                partials[name] = file.bytes
            case .truncate(let temporary):
                check(files[temporary.descriptor] != nil, "truncated a closed file")
                files[temporary.descriptor]?.bytes = []
            case .log:
                break
            case .create(let key, _, let partial):
                if failCreate { return .createFailed(key, reason: "simulated") }
                let descriptor = nextDescriptor
                nextDescriptor += 1
                guard let partial else {
                    files[descriptor] = (key, [])
                    return .created(key, TransferMachine.Temporary(descriptor: descriptor, path: "tmp/\(descriptor)"))
                }
                check(!partialOf.values.contains(partial.name), "two open transfers on one partial file")
                let held = partials.removeValue(forKey: partial.name) ?? []
                files[descriptor] = (key, held)
                partialOf[descriptor] = partial.name
                var hasher = SHA256()
                hasher.update(data: held)
                return .created(
                    key, TransferMachine.Temporary(descriptor: descriptor, path: "partial/\(partial.name)"),
                    held: UInt64(held.count), hasher: hasher)
            case .write(let key, let chunk, let temporary, let offset, let hasher):
                guard let file = files[temporary.descriptor] else {
                    fatalError("invariant broken: a write to a closed file")
                }
                check(file.key == key, "a write for \(key) to \(file.key)'s file")
                check(offset == UInt64(file.bytes.count), "a write at \(offset) to a file of \(file.bytes.count) bytes")
                check(
                    Array(hasher.finalize()) == Array(SHA256.hash(data: file.bytes)),
                    "the hasher handed over does not cover the bytes written")
                if failWrite { return .writeFailed(key, .storageFailed, reason: "simulated") }
                let data: ByteBuffer
                if chunk.compressed {
                    guard let inflated = try? decompressor.decompress(chunk.data, rawLength: Int(chunk.rawLength))
                    else { return .writeFailed(key, .corrupt, reason: "bad zlib") }
                    data = inflated
                } else {
                    data = chunk.data
                }
                check(data.readableBytes <= policy.maxChunkSize, "inflated \(data.readableBytes) bytes")
                var updated = hasher
                updated.update(data: Array(data.readableBytesView))
                files[temporary.descriptor]?.bytes += Array(data.readableBytesView)
                return .wrote(
                    key, hasher: updated, raw: UInt64(chunk.rawLength), wire: UInt64(chunk.data.readableBytes))
            case .discard(let temporary):
                check(files.removeValue(forKey: temporary.descriptor) != nil, "discarded a file twice")
                partialOf[temporary.descriptor] = nil
            case .commit(let commit):
                guard let file = files.removeValue(forKey: commit.temporary.descriptor) else {
                    fatalError("invariant broken: published a file that is not open")
                }
                partialOf[commit.temporary.descriptor] = nil
                let digest = Array(SHA256.hash(data: file.bytes))
                check(file.key == commit.key, "published \(file.key)'s file for \(commit.key)")
                check(digest == commit.sha256, "published a file whose SHA-256 is not the one checked")
                check(lastEnd?.key == commit.key && lastEnd?.sha256 == digest, "published without a matching FileEnd")
                if let announced = lastEnd?.announced { check(announced == digest, "published against the announced") }
                check(UInt64(file.bytes.count) == commit.size, "published size differs")
                check(SpoolName.problem(withPath: commit.sentAs) == nil, "published as \(commit.sentAs)")
                check(
                    !commit.sentAs.hasPrefix("/") && !commit.sentAs.split(separator: "/").contains(".."),
                    "published outside the spool: \(commit.sentAs)")
            }
            return nil
        }

        let names = ["a.txt", "dir/b.bin", "../escape", "/etc/passwd", "", ".", "a/../../b", "ok", "x\u{0}y", "d/"]
        var index = 0
        func byte() -> UInt8? {
            guard index < bytes.count else { return nil }
            defer { index += 1 }
            return bytes[index]
        }
        while let op = byte(), let who = byte() {
            let from = UInt32(who % 3)
            let key = TransferMachine.Key(from: from, id: UInt32((who >> 2) % 4))
            failCreate = who & 0x40 != 0 && who & 0x80 != 0
            failWrite = who & 0x80 != 0 && op & 0x80 != 0
            switch op % 10 {
            case 0:
                // FileStart: name, size (none or a byte's worth), chunk size, compression, digest (none, of the
                // empty file, or of "hello").
                guard let a = byte(), let b = byte() else { return }
                let digest: [UInt8]? =
                    switch a >> 6 {
                    case 1: Array(SHA256.hash(data: []))
                    case 2: Array(SHA256.hash(data: Array("hello".utf8)))
                    default: nil
                    }
                let size: UInt64? = b & 1 == 0 ? nil : UInt64((b >> 1) & 0x1F) * 4
                let start = FileStart(
                    transferID: key.id, name: names[Int(a % 10)], size: size,
                    chunkSize: UInt32((a >> 4) & 3) * 24, compression: (b >> 6) % 3, sha256: digest,
                    resumable: op & 0x40 != 0 && size != nil)
                announced[key] = digest
                run(
                    .start(start, from: from, sender: b & 0x20 == 0 ? PeerRecord(id: from, name: "sender\(from)") : nil)
                )
            case 1, 2:
                // A chunk: raw (its length honest, or not) or compressed (really, or not).
                guard let a = byte() else { return }
                let length = min(Int(a % 80), bytes.count - index)
                var data = ByteBuffer(bytes: bytes[index..<(index + length)])
                index += length
                var rawLength = UInt32(length)
                let compressed = op % 9 == 2
                if compressed, a & 0x80 != 0, let deflated = compressor.compress(data) {
                    data = deflated
                } else if a & 0x40 != 0 {
                    rawLength = UInt32(a)
                }
                run(
                    .chunk(
                        FileChunk(transferID: key.id, rawLength: rawLength, compressed: compressed, data: data),
                        from: from))
            case 3:
                // An honest FileEnd for what was written.
                let written = files.values.first { $0.key == key }?.bytes ?? []
                let end = FileEnd(
                    transferID: key.id, size: UInt64(written.count), sha256: Array(SHA256.hash(data: written)))
                lastEnd = (key, end.sha256, announced[key])
                run(.end(end, aborted: false, from: from, sender: nil))
            case 4:
                // A FileEnd that lies about the size or the digest, or aborts.
                guard let a = byte() else { return }
                let written = files.values.first { $0.key == key }?.bytes ?? []
                let digest = a & 1 == 0 ? Array(repeating: a, count: 32) : Array(SHA256.hash(data: written))
                let end = FileEnd(transferID: key.id, size: UInt64(a >> 1), sha256: digest)
                lastEnd = (key, digest, announced[key])
                run(.end(end, aborted: a & 0x80 != 0, from: from, sender: nil))
            case 5:
                run(.malformed(.fileChunk, from: from, transferID: who & 0x20 == 0 ? key.id : nil, error: "fuzz"))
            case 6:
                run(.senderLeft(from))
                check(!files.values.contains { $0.key.from == from }, "a sender that left keeps a file open")
            case 7:
                run(.stopTaking)
            case 9:
                // FileSeek: to what was offered, to 0, or anywhere.
                guard let a = byte() else { return }
                let target: UInt64 =
                    switch a % 3 {
                    case 0: offered[key] ?? 0
                    case 1: 0
                    default: UInt64(a)
                    }
                run(.seek(FileSeek(transferID: key.id, offset: target), from: from))
            default:
                run(.abandonAll(reason: "fuzz"))
                check(files.isEmpty, "abandoning all keeps \(files.count) files open")
            }
        }
        run(.abandonAll(reason: "end"))
        check(files.isEmpty, "the end keeps \(files.count) files open")
    }
}
