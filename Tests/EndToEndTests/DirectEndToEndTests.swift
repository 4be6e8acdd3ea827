import Foundation
import TCPIPTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Direct transfers on one machine: the hub introduces, the bytes go point to point, and the direct listener admits
/// nobody without a live ticket. (DirectNamespaceTests does it across simulated machines.)
@Suite struct DirectEndToEndTests {
    typealias T = HostilePeerTests

    /// Bytes the program has read through read(2) and friends, sockets included (/proc/PID/io).
    static func bytesRead(_ program: RunningProgram) -> Int {
        let text = (try? String(contentsOfFile: "/proc/\(program.process.processIdentifier)/io", encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") where line.hasPrefix("rchar:") {
            return Int(line.dropFirst(6).trimmingCharacters(in: .whitespaces)) ?? 0
        }
        return 0
    }

    /// The port a receiver's direct listener got, from its log.
    static func directPort(_ receiver: RunningProgram) async throws -> Int {
        try await receiver.waitForStderr(containing: "listening for direct transfers")
        let line = try #require(receiver.stderr.split(separator: "\n").first { $0.contains("listening for direct") })
        return try #require(Int(line.split(separator: ":").last ?? ""))
    }

    static func json(_ line: Substring) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
    }

    @Test func aFileGoesPointToPointAndTheHubCarriesAlmostNone() async throws {
        let fixture = try await FileTransferEndToEndTests.Fixture()
        try await fixture.startReceiver()
        var generator = SeededGenerator(seed: 21)
        let bytes = (0..<(24 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let path = try fixture.file("big.bin", bytes)

        let before = Self.bytesRead(fixture.hub.program)
        let direct = try await fixture.sendFile(["--to", "archive", "--json", "-v", path])
        #expect(direct.status == 0, "\(direct.stderr)")
        let line = try Self.json(try #require(direct.stdout.split(separator: "\n").first))
        #expect(line["path"] as? String == "direct", "\(direct.stderr)")
        #expect(line["status"] as? String == "stored")
        #expect(fixture.spooled("big.bin") == bytes)
        let directBytes = Self.bytesRead(fixture.hub.program) - before
        // Registration, lookups and the introduction: a few KiB, not the file.
        #expect(directBytes < 256 << 10, "the hub read \(directBytes) bytes of a direct transfer")

        let relayBefore = Self.bytesRead(fixture.hub.program)
        let relayed = try await fixture.sendFile(["--to", "archive", "--json", "--direct", "never", "--as", "b2", path])
        #expect(relayed.status == 0, "\(relayed.stderr)")
        #expect(try Self.json(try #require(relayed.stdout.split(separator: "\n").first))["path"] as? String == "relay")
        #expect(Self.bytesRead(fixture.hub.program) - relayBefore > 24 << 20)
        #expect(fixture.spooled("b2") == bytes)
        // The metadata records say how each file came.
        for (name, path) in [("big.bin", "direct"), ("b2", "relay")] {
            let data = FileManager.default.contents(atPath: fixture.spool + "/.tcpip/meta/\(name).json") ?? Data()
            #expect(try TLSEndToEndTests.object(String(decoding: data, as: UTF8.self))["path"] as? String == path)
        }
        // TCPIP_DIRECT does what --direct does; a bad value is a usage error.
        let bad = try await RunningProgram.run(
            "tcpipctl", ["send-file", "--to", "archive", path],
            environment: fixture.hub.environment.merging(
                ["TCPIP_DIRECT": "sometimes"]) { $1 })
        #expect(bad.status == 64, "\(bad.stderr)")
        try await fixture.stop()
    }

    /// A large file is hashed as it is sent, not first: sent again, the receiver offers the stored file of that name and
    /// size, the sender checks it against its own, and nothing crosses; other content of the same name and size is
    /// sent whole and stored beside it.
    @Test func aLargeFileSentAgainIsRecognisedWithoutReadingItTwiceFirst() async throws {
        let fixture = try await FileTransferEndToEndTests.Fixture()
        try await fixture.startReceiver()
        var generator = SeededGenerator(seed: 5)
        let bytes = (0..<(6 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let path = try fixture.file("large.bin", bytes)
        let first = try await fixture.sendFile(["--to", "archive", "--json", path])
        #expect(first.status == 0, "\(first.stderr)")
        for mode in ["auto", "never"] {
            let again = try await fixture.sendFile(["--to", "archive", "--json", "--direct", mode, path])
            #expect(again.status == 0, "\(again.stderr)")
            let line = try Self.json(try #require(again.stdout.split(separator: "\n").first))
            #expect(line["status"] as? String == "already-stored", "\(mode): \(again.stdout)")
            #expect(line["wireBytes"] as? Int == 0, "\(mode): \(again.stdout)")
            #expect(
                line["sha256"] as? String == (try? Self.json(first.stdout.split(separator: "\n")[0]))?["sha256"]
                    as? String)
        }
        var other = bytes
        other[3 << 20] ^= 0xFF
        let changed = try fixture.file("large.bin", other)
        let third = try await fixture.sendFile(["--to", "archive", "--json", changed])
        #expect(third.status == 0, "\(third.stderr)")
        #expect(try Self.json(try #require(third.stdout.split(separator: "\n").first))["status"] as? String == "stored")
        #expect(fixture.visible == ["large.bin", "large.bin.1"])
        #expect(fixture.spooled("large.bin") == bytes && fixture.spooled("large.bin.1") == other)
        try await fixture.stop()
    }

    @Test func aReceiverWithoutADirectListenerGetsEverythingThroughTheHub() async throws {
        let fixture = try await FileTransferEndToEndTests.Fixture()
        try await fixture.startReceiver(["--direct-listen", "off"])
        let path = try fixture.file("note.txt", Array("via the hub".utf8))
        let sent = try await fixture.sendFile(["--to", "archive", "--json", path])
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(try Self.json(try #require(sent.stdout.split(separator: "\n").first))["path"] as? String == "relay")
        // --direct only: no direct link, no transfer, 75 (retry later), nothing stored.
        let only = try await fixture.sendFile(["--to", "archive", "--direct", "only", "--as", "only.txt", path])
        #expect(only.status == 75, "\(only.stderr)")
        #expect(only.stderr.contains("no direct link"))
        #expect(fixture.spooled("only.txt") == nil)
        // A plaintext listener off loopback needs --insecure-plaintext, as a plaintext hub does.
        let open = try await RunningProgram.run(
            "tcpiprecvd", ["--spool", fixture.spool + "2", "--direct-listen", "0.0.0.0:0"],
            environment: fixture.hub.environment)
        #expect(open.status == 64, "\(open.stderr)")
        try await fixture.stop()
    }

    @Test func overTLSTheDirectLinkProvesBothKeys() async throws {
        let scene = try await TLSEndToEndTests.Scene()
        try await scene.startReceiver()
        let path = try scene.file("over-tls.txt", "pinned both ways")
        let sent = try await scene.run("cron", ["send-file", "--json", "--direct", "only", path, "--to", "archive"])
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(try Self.json(try #require(sent.stdout.split(separator: "\n").first))["path"] as? String == "direct")
        #expect(FileManager.default.contents(atPath: scene.spool + "/over-tls.txt") == Data("pinned both ways".utf8))
        // The record names the key the sender proved on the direct link.
        let record = try TLSEndToEndTests.object(
            String(
                decoding: FileManager.default.contents(atPath: scene.spool + "/.tcpip/meta/over-tls.txt.json")
                    ?? Data(), as: UTF8.self))
        #expect((record["from"] as? [String: Any])?["key"] as? String == scene.ids["cron"])
        #expect(record["path"] as? String == "direct")
        try await scene.stop()
    }

    /// A stranger on the direct port: a made-up ticket, a ticket used twice, a ticket presented by the wrong peer,
    /// another packet first, a first frame too large. Each is refused and closed; the receiver serves on.
    @Test func theDirectListenerAdmitsOnlyALiveTicketOnce() async throws {
        let scene = try await HostilePeerTests.Scene()
        let receiver = try #require(scene.fixture.receiver)
        let port = try await Self.directPort(receiver)
        let me = scene.receiverID
        func hello(_ ticket: [UInt8], from: UInt32) -> [UInt8] {
            T.frame(
                74, maskTo: 1, idTo: me, T.field(1, ticket) + T.field(2, T.u32(from)) + T.field(3, T.u32(me)))
        }
        /// The code of the Error a connection got, and whether it was closed after it.
        func refusal(_ socket: RawSocket) async -> (code: Int?, closed: Bool) {
            guard let frame = await socket.readFrame(), frame.type == 64 else { return (nil, true) }
            let code = Self.fields(frame.payload)[1]?.first.map { Int($0[0]) << 8 | Int($0[1]) }
            return (code, await socket.readToEnd().closed)
        }

        let forged = try RawSocket(port: port)
        forged.send(hello([UInt8](repeating: 9, count: 32), from: 99))
        let forgedAnswer = await refusal(forged)
        #expect(forgedAnswer.code == 4 && forgedAnswer.closed, "a made-up ticket: \(forgedAnswer)")

        // A real ticket, from the hub, for a raw client.
        let mallory = try await scene.registered("mallory")
        let peers = try await RunningProgram.run("tcpipctl", ["peers"], environment: scene.fixture.hub.environment)
        let list = try JSONSerialization.jsonObject(with: Data(peers.stdout.utf8)) as? [[String: Any]] ?? []
        let malloryID = UInt32(try #require(list.first { $0["name"] as? String == "mallory" }?["id"] as? Int))
        func ticket() async throws -> [UInt8] {
            mallory.send(T.frame(71, T.field(1, T.u32(1)) + T.field(2, T.u32(me))))
            let introduction = try #require(await mallory.readReply())
            #expect(introduction.type == 72)
            let fields = Self.fields(introduction.payload)
            #expect(fields[4]?.contains(Array("127.0.0.1:\(port)".utf8)) == true, "hints: \(fields[4] ?? [])")
            return try #require(fields[3]?.first)
        }
        let first = try await ticket()
        let admitted = try RawSocket(port: port)
        admitted.send(hello(first, from: malloryID))
        #expect(await admitted.readFrame()?.type == 75)
        let replay = try RawSocket(port: port)
        replay.send(hello(first, from: malloryID))
        let replayAnswer = await refusal(replay)
        #expect(replayAnswer.code == 4 && replayAnswer.closed, "a ticket used twice: \(replayAnswer)")
        // On the admitted link, anything but a file packet closes it.
        admitted.send(T.frame(11, maskTo: 1, idTo: me, T.u32(1) + [0, 0]))
        #expect(await refusal(admitted).closed)

        let second = try await ticket()
        let impostor = try RawSocket(port: port)
        impostor.send(hello(second, from: scene.listenerID))
        let impostorAnswer = await refusal(impostor)
        #expect(impostorAnswer.code == 4 && impostorAnswer.closed, "another peer's ticket: \(impostorAnswer)")

        let early = try RawSocket(port: port)
        early.send(T.frame(13, maskTo: 3, T.field(1, T.u32(1)) + T.text(2, "x.txt")))
        let earlyAnswer = await refusal(early)
        #expect(earlyAnswer.code == 3 && earlyAnswer.closed, "a file before the ticket: \(earlyAnswer)")

        let huge = try RawSocket(port: port)
        huge.send(T.u32(1 << 20) + [UInt8](repeating: 0, count: 4096))
        #expect(await huge.readToEnd().closed)
        try await scene.everyoneIsStillServed("direct listener")
        try await scene.stop()
    }

    /// TLV fields by tag, as docs/PROTOCOL.md lays them out.
    static func fields(_ payload: [UInt8]) -> [UInt8: [[UInt8]]] {
        var fields: [UInt8: [[UInt8]]] = [:]
        var index = 0
        while index + 3 <= payload.count {
            let length = Int(payload[index + 1]) << 8 | Int(payload[index + 2])
            guard index + 3 + length <= payload.count else { break }
            fields[payload[index], default: []].append(Array(payload[(index + 3)..<(index + 3 + length)]))
            index += 3 + length
        }
        return fields
    }
}
