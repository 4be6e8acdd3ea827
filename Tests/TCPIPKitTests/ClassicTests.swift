import Crypto
import Foundation
import Logging
import NIOCore
import TCPIPCore
import TCPIPTestSupport
import TCPIPWire
import Testing

@testable import TCPIPHub
@testable import TCPIPReceiver

/// The classic wire's golden vectors: docs/PROTOCOL.md lists each 1024-byte packet as `classic NAME: OFFSET:HEX …`
/// (the runs of bytes that are not zero; every other byte is zero).
enum ClassicVectors {
    static let time: WireTime = 1_764_064_140_000_000
    static let bob = PeerRecord(
        id: 3, name: "bob", host: "srv", user: "bob", address: "127.0.0.1:50001", role: "receiver",
        connectedAt: time, version: "0.1.0")

    static let documented: [String: [UInt8]] = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let text = (try? String(contentsOf: root.appendingPathComponent("docs/PROTOCOL.md"), encoding: .utf8)) ?? ""
        var vectors: [String: [UInt8]] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("classic ") {
            let parts = line.dropFirst("classic ".count).split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            var bytes = [UInt8](repeating: 0, count: ClassicPacket.size)
            for run in parts[1].split(separator: " ") {
                let field = run.split(separator: ":")
                guard field.count == 2, let offset = Int(field[0]) else { continue }
                for (index, byte) in Hex.bytes(String(field[1])).enumerated() where offset + index < bytes.count {
                    bytes[offset + index] = byte
                }
            }
            vectors[String(parts[0])] = bytes
        }
        return vectors
    }()

    /// The sparse form the doc uses: runs of bytes that are not zero (gaps of up to 3 zeros kept inside a run).
    static func sparse(_ bytes: [UInt8]) -> String {
        var runs: [String] = []
        var index = 0
        while index < bytes.count {
            guard bytes[index] != 0 else {
                index += 1
                continue
            }
            var end = index
            var probe = index
            while probe < bytes.count && probe - end <= 4 {
                if bytes[probe] != 0 { end = probe }
                probe += 1
            }
            runs.append("\(index):" + Hex.string(ByteBuffer(bytes: bytes[index...end])))
            index = end + 1
        }
        return runs.joined(separator: " ")
    }

    /// A translator for client 1 at 127.0.0.1:50000 that has registered (its roster was empty).
    static func registered() -> ClassicTranslator {
        var translator = ClassicTranslator(address: "127.0.0.1:50000")
        _ = translator.deliver(
            CredentialsRequest(hubVersion: "0.1.0", tokenRequired: false).packet(
                PacketHeader(type: .requestCredentials, maskTo: .client, idTo: 1)), now: time)
        var credentials = ClassicPacket(.myCredentials)
        credentials.setText(Array("alice".utf8), .string150)
        _ = translator.received(credentials, now: time)
        let self1 = PeerRecord(id: 1, name: "alice", role: "classic")
        _ = translator.deliver(
            Registered(peer: self1, hubTime: time, heartbeatMilliseconds: 15000, rosterCount: 0).packet(
                PacketHeader(type: .registered, maskTo: .client, idTo: 1)), now: time)
        return translator
    }

    static func hub(_ type: PacketType, from: UInt32 = 0, dataType: UInt16 = 0, _ payload: ByteBuffer = ByteBuffer())
        -> Packet
    {
        Packet(
            header: PacketHeader(type: type, dataType: dataType, maskTo: .client, idTo: 1, idFrom: from),
            payload: payload)
    }

    /// What the hub sends a classic client, by vector name: the packets of ours that make it, in order; the vector is the
    /// last classic packet they produce.
    static let toClient: [(name: String, input: [Packet])] = [
        (
            "requestCredentials",
            [
                CredentialsRequest(hubVersion: "0.1.0", tokenRequired: false).packet(
                    PacketHeader(type: .requestCredentials, maskTo: .client, idTo: 1))
            ]
        ),
        (
            "registered",
            [
                Registered(
                    peer: PeerRecord(id: 1, name: "alice"), hubTime: time, heartbeatMilliseconds: 15000, rosterCount: 0
                ).packet(PacketHeader(type: .registered, maskTo: .client, idTo: 1))
            ]
        ),
        ("clientData", [hub(.clientData, from: 3, dataType: 2, bob.encoded())]),
        ("clientDisconnecting", [hub(.clientDisconnecting, from: 3, bob.encoded())]),
        ("hostExiting", [hub(.hostExiting, Reason("stopped").encoded())]),
        ("ping", [hub(.ping, PingPayload(sequence: 1, sentAt: time).encoded())]),
        (
            "messageEnd",
            [
                MessagePart(messageID: 1, flags: [.start, .end], bytes: ByteBuffer(string: "hi")).packet(
                    PacketHeader(type: .message, maskTo: .client, idTo: 1, idFrom: 3))
            ]
        ),
        ("messageReceived", [hub(.messageReceived, from: 3, MessageReceipt(messageID: 1, bytes: 2).encoded())]),
        (
            "fileStart",
            [
                hub(
                    .fileStart, from: 3,
                    FileStart(transferID: 1, name: "a.txt", size: 3, chunkSize: 65536).encoded()),
                FileChunk(transferID: 1, rawLength: 3, compressed: false, data: ByteBuffer(string: "abc")).packet(
                    PacketHeader(type: .fileChunk, maskTo: .client, idTo: 1, idFrom: 3)),
            ]
        ),
        (
            "doneReceivingFile",
            [hub(.doneReceivingFile, from: 3, FileReceipt(transferID: 1, status: .stored, storedAs: "a.txt").encoded())]
        ),
    ]

    /// What a classic client sends: the vector, and the packets of ours the translator makes of it.
    static let fromClient: [String] = [
        "myCredentials", "pingResponse", "messageGuts", "fileChunk", "close", "clientMessageReceived",
        "clientDoneReceivingFile",
    ]
}

@Suite struct ClassicTests {
    /// Prints the vectors in the doc's form (for writing them down): `CLASSIC_PRINT=1`.
    @Test func hubToClientVectorsMatchTheDoc() throws {
        for (name, input) in ClassicVectors.toClient {
            var translator =
                name == "requestCredentials" || name == "registered"
                ? ClassicTranslator(address: "127.0.0.1:50000") : ClassicVectors.registered()
            if name == "registered" {
                _ = translator.deliver(input[0].withType(.requestCredentials), now: ClassicVectors.time)
            }
            if name == "doneReceivingFile" {
                // A file the client sent (transfer 1) that bob stored.
                var start = ClassicPacket(.fileStart)
                start.fileIDTo = 3
                start.fileID = 7
                start.setText(Array("a.txt".utf8), .fileName)
                _ = translator.received(start, now: ClassicVectors.time)
            }
            var last: ClassicPacket?
            for packet in input {
                last = translator.deliver(packet, now: ClassicVectors.time).toClient.last ?? last
            }
            let produced = try #require(last, "\(name) produced no classic packet")
            if ProcessInfo.processInfo.environment["CLASSIC_PRINT"] != nil {
                print("classic \(name): \(ClassicVectors.sparse(produced.bytes))")
                continue
            }
            let documented = try #require(ClassicVectors.documented[name], "docs/PROTOCOL.md has no classic \(name)")
            #expect(
                produced.bytes == documented,
                "\(name): \(ClassicVectors.sparse(produced.bytes)) != \(ClassicVectors.sparse(documented))")
        }
    }

    @Test func clientToHubVectorsTranslate() throws {
        func vector(_ name: String) throws -> ClassicPacket {
            let bytes = try #require(ClassicVectors.documented[name], "no classic \(name)")
            return try #require(ClassicPacket(bytes: bytes))
        }
        let time = ClassicVectors.time
        // MyCredentials: station in A, version in B, the user's name in the 150-char field.
        var fresh = ClassicTranslator(address: "127.0.0.1:50000")
        let credentials = fresh.received(try vector("myCredentials"), now: time).toHub
        #expect(credentials.map(\.header.type) == [.myCredentials])
        let decoded = try Credentials(tlv: credentials[0].payload)
        #expect(decoded.name == "alice" && decoded.host == "box" && decoded.version == "1.1.2")
        #expect(decoded.role == "classic")

        var translator = ClassicVectors.registered()
        // A hub ping goes out with its ticks; the vector's PingResponse echoes them back to the hub.
        let ping = translator.deliver(
            ClassicVectors.hub(.ping, PingPayload(sequence: 1, sentAt: time).encoded()), now: time)
        #expect(ping.toClient.first?.dataLong1 == ClassicTicks.ticks(microseconds: time))
        let answer = translator.received(try vector("pingResponse"), now: time).toHub
        #expect(answer.map(\.header.type) == [.pingResponse])
        #expect(answer.first?.header.maskTo == .hub)
        #expect(try PingPayload(tlv: answer[0].payload).sequence == 1)

        // Guts without a Start is lost, as the original loses it; after a Start it is the next part.
        #expect(translator.received(try vector("messageGuts"), now: time).toHub.isEmpty)
        var start = try vector("messageGuts")
        start.dataType = 0
        _ = translator.received(start, now: time)
        let guts = translator.received(try vector("messageGuts"), now: time).toHub
        #expect(guts.count == 1)
        let part = try MessagePart(guts[0])
        #expect(part.flags == [] && String(buffer: part.bytes) == "ho")
        #expect(guts[0].header.idTo == 3)

        // A chunk of a file not started is ignored; after a FileStart of that FileID to 3, it goes on.
        #expect(translator.received(try vector("fileChunk"), now: time).toHub.isEmpty)
        var fileStart = ClassicPacket(.fileStart)
        fileStart.fileIDTo = 3
        fileStart.fileID = 7
        fileStart.fileSize = 914 + 3
        fileStart.setText(Array("a.txt".utf8), .fileName)
        let announced = translator.received(fileStart, now: time).toHub
        #expect(announced.map(\.header.type) == [.fileStart, .fileChunk])
        let chunk = translator.received(try vector("fileChunk"), now: time).toHub
        #expect(chunk.map(\.header.type) == [.fileChunk])
        #expect(String(buffer: try FileChunk(chunk[0]).data) == "abc")

        #expect(translator.received(try vector("close"), now: time).toHub.map(\.header.type) == [.close])

        // The client's MessageReceived answers the oldest message it was given.
        _ = translator.deliver(
            MessagePart(messageID: 9, flags: [.start, .end], bytes: ByteBuffer(string: "x")).packet(
                PacketHeader(type: .message, maskTo: .client, idTo: 1, idFrom: 3)), now: time)
        let receipt = translator.received(try vector("clientMessageReceived"), now: time).toHub
        #expect(receipt.first?.header.idTo == 3)
        #expect(try MessageReceipt(tlv: receipt[0].payload).messageID == 9)

        // The client's DoneRecievingFile (from 3's file "a.txt") settles that transfer.
        _ = translator.deliver(
            ClassicVectors.hub(
                .fileStart, from: 3, FileStart(transferID: 5, name: "a.txt", size: 0, chunkSize: 1).encoded()),
            now: time)
        let ended = translator.deliver(
            ClassicVectors.hub(
                .fileEnd, from: 3,
                FileEnd(transferID: 5, size: 0, sha256: Array(SHA256.hash(data: [UInt8]()))).encoded()),
            now: time)
        #expect(ended.toClient.map(\.type) == [.fileEnd])
        let stored = translator.received(try vector("clientDoneReceivingFile"), now: time).toHub
        #expect(stored.first?.header.idTo == 3)
        let fileReceipt = try FileReceipt(tlv: stored[0].payload)
        #expect(fileReceipt.transferID == 5 && fileReceipt.status == .stored)
    }

    @Test func everyClassicVectorIsTested() {
        let tested = Set(ClassicVectors.toClient.map(\.name) + ClassicVectors.fromClient)
        #expect(Set(ClassicVectors.documented.keys) == tested)
    }

    @Test func textIsWindows1252OneBytePerCharacter() {
        #expect(ClassicText.encode("Aé€").bytes == [0x41, 0xE9, 0x80])
        #expect(ClassicText.encode("a→b😀").bytes == Array("a?b?".utf8))
        #expect(ClassicText.encode("a→b😀").replaced == 2)
        #expect(ClassicText.decode([0x41, 0xE9, 0x80, 0x9F]) == "Aé€Ÿ")
        var packet = ClassicPacket(.message)
        // A full field has no NUL; readers trim only trailing NULs (an inner one stays).
        packet.setText([UInt8](repeating: 0x61, count: 300), .stringA)
        #expect(packet.textBytes(.stringA).count == 300)
        packet.setText([0x61, 0, 0x62], .stringA)
        #expect(packet.text(.stringA) == "a\u{0}b")
        packet.setText([UInt8](repeating: 0x61, count: 60), .userName, terminated: true)
        #expect(packet.textBytes(.userName).count == 49)
        #expect(ClassicTicks.usDate(microseconds: ClassicVectors.time) == "11/25/2025 9:49:00 AM")
        #expect(ClassicTicks.usDate(microseconds: 0) == "1/1/1970 12:00:00 AM")
        #expect(ClassicTicks.ticks(microseconds: 0) == 621_355_968_000_000_000)
    }

    @Test func framerCutsEvery1024BytesWhateverTheReads() {
        var framer = ClassicFramer()
        let packets = (1...3).map { index -> [UInt8] in
            var packet = ClassicPacket(.ping)
            packet.dataLong1 = Int64(index)
            return packet.bytes
        }
        var all = ByteBuffer(bytes: packets.joined())
        var got: [Int64] = []
        while all.readableBytes > 0 {
            var piece = all.readSlice(length: min(333, all.readableBytes))!
            got += framer.packets(from: &piece).map(\.dataLong1)
        }
        #expect(got == [1, 2, 3])
        var half = ByteBuffer(bytes: packets[0].prefix(512))
        #expect(framer.packets(from: &half).isEmpty)
        #expect(framer.bufferedBytes == 512)
    }

    @Test func messagesAreCutAsTheOriginalCutsThem() throws {
        var translator = ClassicVectors.registered()
        let text = String(repeating: "x", count: 673) + "é"
        let out = translator.deliver(
            MessagePart(messageID: 1, flags: [.start, .end], bytes: ByteBuffer(string: text)).packet(
                PacketHeader(type: .message, maskTo: .client, idTo: 1, idFrom: 3)), now: ClassicVectors.time)
        // 674 characters: Start(300) + Guts(300) + Guts(74) + End(674), End repeating the last chunk.
        #expect(out.toClient.map(\.dataType) == [0, 1, 1, 2])
        #expect(out.toClient.map { $0.data(1) } == [300, 300, 74, 674])
        #expect(out.toClient.allSatisfy { $0.idFrom == 3 && $0.idTo == 1 && $0.packetSize == 16 })
        #expect(out.toClient[0].textBytes(.stringA).count == 300)
        #expect(out.toClient[2].textBytes(.stringA) == out.toClient[3].textBytes(.stringA))
        #expect(out.toClient[3].textBytes(.stringA).last == 0xE9)
        // 300 characters: Start + End.
        let short = translator.deliver(
            MessagePart(
                messageID: 2, flags: [.start, .end], bytes: ByteBuffer(string: String(repeating: "y", count: 300))
            )
            .packet(PacketHeader(type: .message, maskTo: .client, idTo: 1, idFrom: 3)), now: ClassicVectors.time)
        #expect(short.toClient.map(\.dataType) == [0, 2])

        // From the client: End's repeated text is never appended; the message arrives whole.
        var parts: [Packet] = []
        for (subType, chunk) in [(0, "ab"), (1, "cd"), (2, "cd")] {
            var packet = ClassicPacket(.message)
            packet.dataType = UInt16(subType)
            packet.idTo = 3
            packet.setText(Array(chunk.utf8), .stringA)
            parts += translator.received(packet, now: ClassicVectors.time).toHub
        }
        let joined = try parts.map { String(buffer: try MessagePart($0).bytes) }.joined()
        #expect(joined == "abcd")
        #expect(try parts.map { try MessagePart($0).flags } == [[.start], [], [.end]])
    }

    @Test func filesFromAClassicClientCarryTheirSizeAndNoDigest() throws {
        var translator = ClassicVectors.registered()
        let content = (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        var start = ClassicPacket(.fileStart)
        start.fileIDTo = 3
        start.fileID = 42
        start.fileSize = UInt32(content.count)
        start.setText(Array("data.bin".utf8), .fileName)
        start.setBytes(content.prefix(914), at: ClassicField.filePart1.offset)
        var out = translator.received(start, now: ClassicVectors.time).toHub
        var offset = 914
        var count: UInt32 = 0
        while offset < content.count {
            var chunk = ClassicPacket(.fileChunk)
            chunk.fileIDTo = 3
            chunk.fileID = 42
            let piece = content[offset..<min(offset + 1010, content.count)]
            chunk.chunkSize = UInt16(piece.count)
            chunk.chunkCount = count
            chunk.setBytes(piece, at: ClassicField.fileChunk.offset)
            out += translator.received(chunk, now: ClassicVectors.time).toHub
            offset += piece.count
            count += 1
        }
        var end = start
        end.setU16(ClassicType.fileEnd.rawValue, at: 0)
        out += translator.received(end, now: ClassicVectors.time).toHub
        // The first 914 bytes (from FileStart), then 1010 + 1010 + 66.
        #expect(out.map(\.header.type) == [.fileStart, .fileChunk, .fileChunk, .fileChunk, .fileChunk, .fileEnd])
        #expect(out.allSatisfy { $0.header.idTo == 3 && $0.header.maskTo == .client })
        let announced = try FileStart(tlv: out[0].payload)
        #expect(announced.name == "data.bin" && announced.size == 3000 && announced.sha256 == nil)
        let bytes = try out.filter { $0.header.type == .fileChunk }.flatMap {
            Array(try FileChunk($0).data.readableBytesView)
        }
        #expect(bytes == content)
        let ended = try FileEnd(tlv: out.last!.payload)
        #expect(ended.size == 3000 && ended.sha256.isEmpty)

        // A chunk past 1010 bytes breaks the wire: the client is closed.
        _ = translator.received(start, now: ClassicVectors.time)
        var big = ClassicPacket(.fileChunk)
        big.fileIDTo = 3
        big.fileID = 42
        big.chunkSize = 1011
        #expect(translator.received(big, now: ClassicVectors.time).violation != nil)

        // More bytes than the size announced: the file is aborted, nothing past the size goes on.
        var liar = start
        liar.fileID = 43
        liar.fileSize = 10
        _ = translator.received(liar, now: ClassicVectors.time)
        var more = ClassicPacket(.fileChunk)
        more.fileIDTo = 3
        more.fileID = 43
        more.chunkSize = 5
        let aborted = translator.received(more, now: ClassicVectors.time).toHub
        #expect(aborted.map(\.header.type) == [.fileEnd])
        #expect(aborted.first?.header.dataType == 1)
    }

    @Test func filesToAClassicClientGoOutIn914And1010ByteParts() throws {
        var translator = ClassicVectors.registered()
        let content = (0..<102_400).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) }
        let digest = Array(SHA256.hash(data: content))
        var out = translator.deliver(
            ClassicVectors.hub(
                .fileStart, from: 3,
                FileStart(
                    transferID: 4, name: "report.pdf", size: UInt64(content.count), chunkSize: 65536, resumable: true
                )
                .encoded()), now: ClassicVectors.time)
        // A resumable sender is told to start from 0.
        #expect(out.toHub.map(\.header.type) == [.fileResume])
        var classic: [ClassicPacket] = []
        for slice in stride(from: 0, to: content.count, by: 65536) {
            let piece = content[slice..<min(slice + 65536, content.count)]
            out = translator.deliver(
                FileChunk(
                    transferID: 4, rawLength: UInt32(piece.count), compressed: false, data: ByteBuffer(bytes: piece)
                )
                .packet(PacketHeader(type: .fileChunk, maskTo: .client, idTo: 1, idFrom: 3)), now: ClassicVectors.time)
            classic += out.toClient
        }
        out = translator.deliver(
            ClassicVectors.hub(
                .fileEnd, from: 3, FileEnd(transferID: 4, size: UInt64(content.count), sha256: digest).encoded()),
            now: ClassicVectors.time)
        classic += out.toClient
        // FileStart(914) + 100 × 1010 + 486, then FileEnd: as the original sends a 102,400-byte file.
        #expect(classic.count == 103)
        #expect(classic.first?.type == .fileStart && classic.last?.type == .fileEnd)
        #expect(classic.dropFirst().dropLast().map(\.chunkCount) == Array(0..<101))
        #expect(classic[101].chunkSize == 486)
        var rebuilt = Array(classic[0].bytes[110..<1024])
        for chunk in classic.dropFirst().dropLast() {
            rebuilt += chunk.bytes[14..<14 + Int(chunk.chunkSize)]
        }
        #expect(rebuilt == content)
        #expect(classic.allSatisfy { $0.fileIDTo == 1 && $0.fileIDFrom == 3 && $0.fileID == classic[0].fileID })
        #expect(classic[0].text(.fileName) == "report.pdf" && classic[0].fileSize == 102_400)
        #expect(classic.last!.text(.fileName).contains("|"))

        // The same with a wrong digest: no FileEnd goes out, and the sender hears the file was corrupt.
        _ = translator.deliver(
            ClassicVectors.hub(
                .fileStart, from: 3, FileStart(transferID: 5, name: "b", size: 1, chunkSize: 1).encoded()),
            now: ClassicVectors.time)
        _ = translator.deliver(
            FileChunk(transferID: 5, rawLength: 1, compressed: false, data: ByteBuffer(bytes: [1])).packet(
                PacketHeader(type: .fileChunk, maskTo: .client, idTo: 1, idFrom: 3)), now: ClassicVectors.time)
        let bad = translator.deliver(
            ClassicVectors.hub(.fileEnd, from: 3, FileEnd(transferID: 5, size: 1, sha256: digest).encoded()),
            now: ClassicVectors.time)
        #expect(bad.toClient.isEmpty)
        #expect(try FileReceipt(tlv: bad.toHub[0].payload).status == .corrupt)

        // Names a classic client cannot take, compression, unknown sizes: refused before anything goes out.
        for (start, status) in [
            (FileStart(transferID: 6, name: "dir/a", size: 1, chunkSize: 1), FileReceipt.Status.invalid),
            (FileStart(transferID: 7, name: "..", size: 1, chunkSize: 1), .invalid),
            (FileStart(transferID: 8, name: "a→b", size: 1, chunkSize: 1), .invalid),
            (FileStart(transferID: 9, name: String(repeating: "n", count: 98), size: 1, chunkSize: 1), .invalid),
            (FileStart(transferID: 10, name: "z", size: 1, chunkSize: 1, compression: 1), .invalid),
            (FileStart(transferID: 11, name: "z", size: nil, chunkSize: 1), .refused),
            (FileStart(transferID: 12, name: "z", size: 1 << 32, chunkSize: 1), .refused),
        ] {
            let refused = translator.deliver(
                ClassicVectors.hub(.fileStart, from: 3, start.encoded()), now: ClassicVectors.time)
            #expect(refused.toClient.isEmpty)
            #expect(try FileReceipt(tlv: refused.toHub[0].payload).status == status, "\(start.name)")
        }
    }

    @Test func pingsFromPeersAreAnsweredByTheClient() throws {
        var translator = ClassicVectors.registered()
        let ping = PingPayload(sequence: 8, sentAt: ClassicVectors.time)
        let first = translator.deliver(
            ClassicVectors.hub(.ping, from: 5, dataType: 2, ping.encoded()), now: ClassicVectors.time)
        let second = translator.deliver(
            ClassicVectors.hub(.ping, PingPayload(sequence: 9, sentAt: 1).encoded()), now: ClassicVectors.time)
        let ticks = try #require(first.toClient.first?.dataLong1)
        #expect(second.toClient.first?.dataLong1 == ticks + 1)
        var response = ClassicPacket(.pingResponse)
        response.dataLong1 = ticks
        let answer = translator.received(response, now: ClassicVectors.time + 10).toHub
        #expect(
            answer.first?.header.idTo == 5 && answer.first?.header.maskTo == .client
                && answer.first?.header.dataType == 2)
        #expect(try PingPayload(tlv: answer[0].payload).sequence == 8)
        // An answer to nothing (the client's own connection-test broadcast answers) goes nowhere.
        response.dataLong1 = 0
        #expect(translator.received(response, now: ClassicVectors.time).toHub.isEmpty)
    }

    @Test func theRosterGoesOutBeforeRegistered() throws {
        var translator = ClassicTranslator(address: "[::1]:5000")
        let request = translator.deliver(
            CredentialsRequest(hubVersion: "0.1.0", tokenRequired: false).packet(
                PacketHeader(type: .requestCredentials, maskTo: .client, idTo: 9)), now: 0)
        #expect(request.toClient.first?.idTo == 9 && request.toClient.first?.text(.stringA) == "::1")
        var credentials = ClassicPacket(.myCredentials)
        credentials.setText(Array("carol".utf8), .string150)
        _ = translator.received(credentials, now: 0)
        var out = translator.deliver(
            Registered(peer: PeerRecord(id: 9, name: "carol"), hubTime: 0, heartbeatMilliseconds: 1, rosterCount: 2)
                .packet(PacketHeader(type: .registered, maskTo: .client, idTo: 9)), now: 0)
        #expect(out.toClient.isEmpty)
        for peer in [ClassicVectors.bob, PeerRecord(id: 70000, name: "far")] {
            out = translator.deliver(
                peer.packet(PacketHeader(type: .clientData, dataType: 1, maskTo: .client, idTo: 9, idFrom: peer.id)),
                now: 0)
        }
        // bob's ClientData came before; a peer whose id does not fit 16 bits is not announced; then Registered.
        #expect(out.toClient.map(\.type) == [.registered])
        #expect(translator.registered)
        // Packets before registration are not relayed: the translator says so by dropping them.
        var early = ClassicTranslator(address: "127.0.0.1:1")
        #expect(early.received(ClassicPacket(.message), now: 0).toHub.isEmpty)
    }

    @Test func anAcknowledgementOfADepartedSendersMessageSettlesNothingElse() throws {
        var translator = ClassicVectors.registered()
        for (from, id) in [(UInt32(3), UInt32(1)), (5, 2)] {
            _ = translator.deliver(
                MessagePart(messageID: id, flags: [.start, .end], bytes: ByteBuffer(string: "m")).packet(
                    PacketHeader(type: .message, maskTo: .client, idTo: 1, idFrom: from)), now: 0)
        }
        _ = translator.deliver(ClassicVectors.hub(.clientDisconnecting, from: 3, ClassicVectors.bob.encoded()), now: 0)
        // The first acknowledgement is for 3's message (3 left: no receipt); the second is 5's.
        #expect(translator.received(ClassicPacket(.messageReceived), now: 0).toHub.isEmpty)
        let second = translator.received(ClassicPacket(.messageReceived), now: 0).toHub
        #expect(second.first?.header.idTo == 5)
        #expect(try MessageReceipt(tlv: second[0].payload).messageID == 2)
    }

    @Test func fileIDsAreNeverAKnownPeersID() throws {
        var translator = ClassicVectors.registered()
        var peer = ClassicVectors.bob
        peer.id = 65534
        _ = translator.deliver(
            peer.packet(PacketHeader(type: .clientData, dataType: 2, maskTo: .client, idTo: 1, idFrom: peer.id)), now: 0
        )
        let start = translator.deliver(
            ClassicVectors.hub(
                .fileStart, from: 3, FileStart(transferID: 1, name: "a", size: 0, chunkSize: 1).encoded()),
            now: 0)
        #expect(start.toClient.first?.fileID == 65533)
        // A file whose FileID is the id of a peer that leaves is dropped by the original client: its sender hears so.
        peer.id = 65533
        let gone = translator.deliver(ClassicVectors.hub(.clientDisconnecting, from: 65533, peer.encoded()), now: 0)
        #expect(gone.toHub.first?.header.idTo == 3)
        #expect(try FileReceipt(tlv: gone.toHub[0].payload).status == .unavailable)
    }

    @Test func hubOnlyTypesFromAClientGoNowhere() {
        var translator = ClassicVectors.registered()
        for type in [ClassicType.requestCredentials, .registered, .hostExiting, .clientData, .clientDisconnecting] {
            var packet = ClassicPacket(type)
            packet.idTo = 0
            let out = translator.received(packet, now: 0)
            #expect(out.toHub.isEmpty && out.toClient.isEmpty && out.violation == nil)
        }
        var unknown = ClassicPacket(.ping)
        unknown.setU16(999, at: 0)
        #expect(translator.received(unknown, now: 0).toHub.isEmpty)
    }
}

@Suite struct ClassicHubCoreTests {
    @Test func classicClientsLearnTheirIdFirstAndGetNoNameAKeyOwns() throws {
        var hub = HubHarness { $0.classicListen = HostPort(host: "127.0.0.1", port: 0) }
        let ordinary = hub.join("alice")
        let id = ConnectionID(100)
        let greeting = hub.core.connected(id, address: "127.0.0.1:6000", now: hub.now, classic: true)
        #expect(greeting.first?.packet?.header.idTo == 2)
        // The name is in use: the classic client gets name#ID, with role and wire classic and no key.
        let actions = hub.send(
            Credentials(name: "alice", host: "box", role: "classic").packet(PacketHeader(type: .myCredentials)),
            from: id)
        let registered = try Registered(tlv: try #require(actions.first { $0.type == .registered }?.packet).payload)
        #expect(registered.peer.id == 2 && registered.peer.name == "alice#2")
        #expect(registered.peer.isClassic && registered.peer.role == "classic" && registered.peer.key == nil)
        #expect(ordinary.peer == 1)
        // An ordinary client cannot register the role classic.
        let (_, refused) = hub.register(Credentials(name: "mallory", role: "classic"))
        #expect(refused.first?.error?.code == .invalidCredentials)
    }

    @Test func aClassicClientNeverTakesANameAKeyOwnsOnAKeyedHub() throws {
        var hub = HubKeyTests.harness()
        hub.core.configuration.classicListen = HostPort(host: "127.0.0.1", port: 0)
        let id = ConnectionID(200)
        _ = hub.core.connected(id, address: "127.0.0.1:6001", now: hub.now, classic: true)
        // No key and no token: it still joins (the classic listener is the operator's permission), not as archive.
        let actions = hub.send(
            Credentials(name: "archive", role: "classic").packet(PacketHeader(type: .myCredentials)), from: id)
        let registered = try Registered(tlv: try #require(actions.first { $0.type == .registered }?.packet).payload)
        #expect(registered.peer.name == "archive#\(registered.peer.id)")
        #expect(registered.peer.key == nil)
        // The key that owns the name still registers it afterwards.
        let (_, owner) = HubKeyTests.register(
            &hub, key: HubKeyTests.archiveKey, Credentials(name: "archive", role: "receiver"))
        #expect(owner.contains { $0.type == .registered })
    }

    @Test func idsFitIn16BitsWithAClassicListener() {
        var hub = HubHarness { $0.classicListen = HostPort(host: "127.0.0.1", port: 0) }
        hub.core.nextPeerID = 65535
        let last = hub.join("last")
        let wrapped = hub.join("wrapped")
        #expect(last.peer == 65535)
        #expect(wrapped.peer == 1)
        var plain = HubHarness()
        plain.core.nextPeerID = 65535
        _ = plain.join("a")
        #expect(plain.join("b").peer == 65536)
    }
}

@Suite struct ClassicReceiverTests {
    @Test func aKeyIDInAllowFromIsNeverSatisfiedByAClassicPeer() throws {
        var configuration = ReceiverConfiguration(spool: Spool(root: "/nonexistent-classic"))
        configuration.acceptClassic = true
        let key = NodeID(bytes: Array(repeating: 9, count: 32))!
        configuration.allowFrom = [key.description]
        let policy = configuration.policy(receiverName: "archive", index: nil)
        #expect(!policy.allows(4, Self.classic))
        var keyed = PeerRecord(id: 5, name: "olive", key: key.bytes)
        #expect(policy.allows(5, keyed))
        keyed.wire = PeerRecord.classicWire
        keyed.key = nil
        #expect(!policy.allows(5, keyed))
    }

    static let classic = PeerRecord(id: 4, name: "olive", role: "classic", wire: PeerRecord.classicWire)

    @Test func aReceiverTakesClassicFilesOnlyWhenToldAndChecksTheirSize() {
        var machine = TransferMachine(policy: TransferMachine.Policy())
        let start = FileStart(transferID: 1, name: "a.txt", size: 3, chunkSize: 1010)
        let refused = machine.handle(.start(start, from: 4, sender: Self.classic))
        #expect(refused.contains { if case .send(let receipt, _) = $0 { receipt.status == .refused } else { false } })

        var policy = TransferMachine.Policy()
        policy.takesClassic = true
        machine = TransferMachine(policy: policy)
        let taken = machine.handle(.start(start, from: 4, sender: Self.classic))
        #expect(taken.contains { if case .create = $0 { true } else { false } })
    }
}

extension Packet {
    fileprivate func withType(_ type: PacketType) -> Packet {
        var copy = self
        copy.header.type = type
        return copy
    }
}
