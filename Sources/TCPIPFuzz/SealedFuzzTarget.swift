import Crypto
import NIOCore
import TCPIPCore
import TCPIPWire

#if canImport(Glibc)
    import Glibc
#endif

extension FuzzTargets {
    /// The documented sealed transfer and message (docs/PROTOCOL.md "Sealed golden vectors"): a fixed base, so a
    /// finding reproduces.
    enum SealedBase {
        static func key(_ label: String) -> SealingKey {
            let scalar = Array(SHA256.hash(data: Array(label.utf8)))
            return SealingKey((try? P256.Signing.PrivateKey(rawRepresentation: scalar)) ?? P256.Signing.PrivateKey())
        }
        static let receiver = key("tcpip golden recipient")
        static let sender = key("tcpip golden sender")
        static let content = Array("sealed end to end\n".utf8)
        static let plain = [Array(content[..<11]), Array(content[11...])]
        static let header = bytes(
            "010091ccde1779ea863db88f3df1f19602672025bccb6c159bc7bf78d7df561e59cc810485122cef9df5ab1ef817bec5",
            "80797d9cefffd6c644af1d0fedeeacf73e8166154d944ace3d3268f2c0aac056885fea5f5428d3c95022433be74dfe5a",
            "e78801077e92ccf8ebb2a219f9f3f2f63b0c911feb1780c9de4a514e5afbcc939db74a38ac5920a876d76e417806fbc4",
            "b7796cd802009efe326a3f078c6458ca84e35609f370cd91e93ac4cad8f2bd2d473c487ce09c530db429f5c5ca4d4a47",
            "7f4e725235724e29cc4c4558e534e0217346688c574d4af6db2e7ed2a27ec5d38028197013c6853ced05b359edd13cd2",
            "16c22b07e2cbcf258e68e01d9535b58cdddc93f0feddfca41451de19dc479f9c10cde12f7235bf9fd75da1286a1ad198",
            "0ffb4aea5ac9043da81eebfaf73bcf9e27b6cc4342")
        static let chunks = [
            bytes("f19fbd2b13d9bc44c151881e85a4484a16d18901feb531c6abd79e"),
            bytes("4432e9d9520ff0e7725fd78e86bb5212e9161a0f858869"),
        ]
        static let end = bytes(
            "f295041455110943a7eba7d2cd3118dcf4d9291219cbf044c83503eefbda441780b123dc2e9efbd86099146a920acef6",
            "829e978a3b5771f222563953428a5368b9ad704bc9de169f23d3647d6ee706c9e7967d1a65ed83dcc874b54ceb7e73d6",
            "3f3aebab2120a014f5741b78af23f08b59379a062e5e4e30058d437597884e5cc3f2cd164087919c8a")
        static let messageKey = bytes(
            "04e3a11cba3628c0b33bc17e4b2d2d3538cb0bd3d98ac6de1e567018927a049776fe4a9a216dd3bc13b2130692e884ba",
            "627c5a17770286c94553dd8fd96582dc8c")
        static let message = bytes("00000000000000006474d8800a6b90c19f55a8543553463d3a540788f1")

        static func bytes(_ hex: String...) -> [UInt8] {
            var out: [UInt8] = []
            var high: UInt8?
            for character in hex.joined().utf8 {
                let digit: UInt8
                switch character {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = character - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = character - UInt8(ascii: "a") + 10
                default: continue
                }
                if let value = high {
                    out.append(value << 4 | digit)
                    high = nil
                } else {
                    high = digit
                }
            }
            return out
        }
    }

    /// Sealed data changed by the fuzzer: the first byte picks what (0 the documented transfer, 1 a header of the
    /// input's own, 2 the documented message, 3 a container of the input's own); the rest are edits or the bytes
    /// themselves. Whatever it is, nothing traps, and whatever opens and verifies is exactly what was sealed: no
    /// change yields other content that passes.
    static func sealed(_ bytes: [UInt8]) {
        guard let mode = bytes.first else { return }
        let rest = Array(bytes.dropFirst())
        switch mode % 4 {
        case 0: sealedTransfer(edits: rest)
        case 1:
            _ = try? FileOpener(header: ByteBuffer(bytes: rest), key: SealedBase.receiver, sender: SealedBase.sender.id)
        case 2: sealedMessage(edits: rest)
        default: sealedContainer(rest)
        }
    }

    /// The documented transfer with edits: triples of (what, offset, xor) on the header, chunk 0 or 1 or the end;
    /// `what` 4 swaps the chunks, 5 drops the last one, 6 repeats the first.
    static func sealedTransfer(edits: [UInt8]) {
        var header = SealedBase.header
        var chunks = SealedBase.chunks
        var end = SealedBase.end
        var plain = SealedBase.plain
        var index = 0
        while index + 2 < edits.count {
            let (piece, offset, mask) = (edits[index], Int(edits[index + 1]), edits[index + 2])
            index += 3
            func flip(_ target: inout [UInt8]) {
                guard !target.isEmpty else { return }
                target[(offset * 7) % target.count] ^= mask
            }
            switch piece % 7 {
            case 0: flip(&header)
            case 1: if !chunks.isEmpty { flip(&chunks[0]) }
            case 2: if chunks.count > 1 { flip(&chunks[1]) }
            case 3: flip(&end)
            case 4:
                chunks.reverse()
                plain.reverse()
            case 5:
                chunks.removeLast(min(1, chunks.count))
                plain.removeLast(min(1, plain.count))
            default:
                if let first = chunks.first, let text = plain.first {
                    chunks.append(first)
                    plain.append(text)
                }
            }
        }
        // Unchanged, the documented transfer must open (else the base itself is wrong).
        let edited = edits.count >= 3
        guard
            var opener = try? FileOpener(
                header: ByteBuffer(bytes: header), key: SealedBase.receiver, sender: SealedBase.sender.id)
        else { return check(edited, "the documented header does not open") }
        var opened: [UInt8] = []
        for (chunk, text) in zip(chunks, plain) {
            guard
                let bytes = try? opener.open(
                    ByteBuffer(bytes: chunk), compressed: false, rawLength: UInt32(text.count))
            else { return check(edited, "a documented chunk does not open") }
            opened += bytes.readableBytesView
        }
        guard let (size, digest) = try? opener.openTrailer(ByteBuffer(bytes: end)) else {
            return check(edited, "the documented end does not open")
        }
        check(opened == SealedBase.content, "a changed transfer opened as \(opened)")
        check(size == UInt64(opened.count) && digest == Array(SHA256.hash(data: opened)), "the signed end differs")
        check(opener.info.name == "report.txt" && opener.senderID == SealedBase.sender.id, "other info opened")
    }

    /// The documented message with edits: (offset, xor) pairs on the encapsulated key, then the part.
    static func sealedMessage(edits: [UInt8]) {
        var key = SealedBase.messageKey
        var part = SealedBase.message
        var index = 0
        while index + 1 < edits.count {
            let (offset, mask) = (Int(edits[index]), edits[index + 1])
            index += 2
            if offset < key.count { key[offset] ^= mask } else { part[(offset - key.count) % part.count] ^= mask }
        }
        guard let sender = SealingRecipient(id: SealedBase.sender.id, spki: SealedBase.sender.spki),
            var opener = try? MessageOpener(encapsulatedKey: key, key: SealedBase.receiver, sender: sender),
            let opened = try? opener.open(ByteBuffer(bytes: part), messageID: 1, flags: 35)
        else { return check(edits.count >= 2, "the documented message does not open") }
        check(Array(opened.readableBytesView) == Array("hello".utf8), "a changed message opened")
    }

    /// Arbitrary bytes as a sealed container (through a pipe, as from a file): refused, never a trap.
    static func sealedContainer(_ bytes: [UInt8]) {
        var ends: [Int32] = [-1, -1]
        guard bytes.count < 60_000, pipe(&ends) == 0 else { return }
        let sink = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer {
            close(ends[0])
            if sink >= 0 { close(sink) }
        }
        _ = bytes.withUnsafeBytes { write(ends[1], $0.baseAddress, $0.count) }
        close(ends[1])
        guard sink >= 0 else { return }
        _ = try? SealedContainer.open(from: ends[0], to: sink, key: SealedBase.receiver, sender: SealedBase.sender.id)
    }
}
