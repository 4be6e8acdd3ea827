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
            "010091ccde1779ea863db88f3df1f19602672025bccb6c159bc7bf78d7df561e59cc8104439a9be4fd7d8b8811eb702a",
            "26e1002ac3902d5992dd4bc8b3953e8a49695ce9dfab0da516475aff38f50624fc2fd6629aa07af9057cc3b58716da0f",
            "48ab995cb8ce71cc60c880a32ad4ffe4c060db8c136f385477af178067e66177372fb76fc50af0787cba74cc94522c81",
            "4d1baad50200e7c3e3a742f1dab9d168a27b71c96d20bfd92e11fe6e0b713b19c2df9892448a53be82f9c0cd89dca1b5",
            "a54b565e26f14d99071034d25dc17502fcec4d8cf40a3008af5d618dd5266fd87eee79b6c139031c9e5d9898f27a4b59",
            "d898daf65c6ed1d4bb731ef2dc82c05d812377dbcad87ed60eaa152da3735b0f9e541c47d5fd5cc8ed01367c3b2bd495",
            "d835055f4924bc8c0e29679dad5a908a9b25798778d9d2133ca3e688fbe097bd58afecabd832d93288727484112af502",
            "3d78f16ab5cba9a2a6cb5b5f2a1fc280b64cd719297574c99b22c65a5053b468cafc9e2a28daaa6a163713f0a8db")
        static let chunks = [
            bytes("70113a040596f7dac30848c20137aa09fa0eb519d3a48ea45c351e"),
            bytes("38691a66e6935400d7b79147fe4e7cf22d1b434d318ad8"),
        ]
        static let end = bytes(
            "aa4d952488ba9d762e0a5bb87d2b7d0025b62c6047b59e8034c6ba5a566f1f66d0f528460af74b65ae31e582a60621a2",
            "ab87f64d456acced8607bb7eeb95051960ff901ac1b6f9badfd667b2be4c407cf9c7f88b67b2fa64136a1809d02c6bfe",
            "e549bdbbad10ef9ede29e2d68091ad0f84d0f0a84912cd4f10a5ba7503e5bd1754852d48a7228670")
        static let messageKey = bytes(
            "04daa95e2b77dcdc7b08bbc9fb2ec4648cba8b7ded636bd01334359a7a431408d08bfa4ffc2d6ea75855d872c7501692",
            "7941b5cbe9a7e3471726e7eebc98026f7a")
        static let message = bytes("00000000000000005cd70db472e184aea4860ae95169c3fcaa621fcfd5")

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
