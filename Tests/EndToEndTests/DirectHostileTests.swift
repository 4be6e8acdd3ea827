import Foundation
import TCPIPTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// An attacker's campaign against `tcpiprecvd`'s direct listener and the hub's introduction packets, written from
/// docs/PROTOCOL.md alone (every byte put together here). After each attack the hub, the receiver and the listener
/// must still serve, and the receiver process must still run.
@Suite(.serialized) struct DirectHostileTests {
    typealias T = HostilePeerTests

    // MARK: helpers

    static func hello(_ ticket: [UInt8], from: UInt32, to: UInt32) -> [UInt8] {
        T.frame(74, maskTo: 1, idTo: to, T.field(1, ticket) + T.field(2, T.u32(from)) + T.field(3, T.u32(to)))
    }

    static func u64(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(value >> (56 - 8 * UInt64($0)) & 0xFF) } }

    /// The code of the Error a connection got (nil when the first frame was not an Error), and whether it was closed.
    static func refusal(_ socket: RawSocket) async -> (code: Int?, closed: Bool) {
        guard let frame = await socket.readFrame() else { return (nil, await socket.readToEnd().closed) }
        guard frame.type == 64 else { return (-Int(frame.type), await socket.readToEnd().closed) }
        let code = DirectEndToEndTests.fields(frame.payload)[1]?.first.map { Int($0[0]) << 8 | Int($0[1]) }
        return (code, await socket.readToEnd().closed)
    }

    /// The id the hub gave `name`.
    static func id(of name: String, _ scene: HostilePeerTests.Scene) async throws -> UInt32 {
        let peers = try await RunningProgram.run("tcpipctl", ["peers"], environment: scene.fixture.hub.environment)
        let list = try JSONSerialization.jsonObject(with: Data(peers.stdout.utf8)) as? [[String: Any]] ?? []
        let id = list.first { $0["name"] as? String == name }?["id"] as? Int
        return UInt32(try #require(id, "\(name) not in \(peers.stdout) \(peers.stderr)"))
    }

    /// Reads frames until one of `types` arrives (at most `limit` frames).
    static func next(_ socket: RawSocket, _ types: Set<UInt16>, limit: Int = 50) async -> RawSocket.Frame? {
        for _ in 0..<limit {
            guard let frame = await socket.readFrame() else { return nil }
            if types.contains(frame.type) { return frame }
        }
        return nil
    }

    /// A fresh ticket for `peer` asked by `asker`.
    static func ticket(_ asker: RawSocket, for peer: UInt32, request: UInt32 = 1) async throws -> [UInt8] {
        asker.send(T.frame(71, T.field(1, T.u32(request)) + T.field(2, T.u32(peer))))
        let introduction = try #require(await next(asker, [72, 64]))
        #expect(introduction.type == 72)
        return try #require(DirectEndToEndTests.fields(introduction.payload)[3]?.first)
    }

    /// Writes without blocking until everything went or the peer stopped reading for `seconds`.
    static func pour(_ fd: Int32, _ bytes: [UInt8], stall seconds: Double = 2) -> Int {
        var sent = 0
        var lastProgress = Date()
        while sent < bytes.count && Date().timeIntervalSince(lastProgress) < seconds {
            let n = bytes.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_DONTWAIT))
            }
            if n > 0 {
                sent += n
                lastProgress = Date()
            } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                usleep(5_000)
            } else {
                break
            }
        }
        return sent
    }

    static func receiverRuns(_ scene: HostilePeerTests.Scene, _ attack: String) {
        #expect(scene.fixture.receiver?.isRunning == true, "\(attack): the receiver process is gone")
    }

    /// Every attack's start: the hostile-peer scene, its receiver's direct port and id, and a raw client registered at
    /// the hub as "mallory", with its id.
    static func attacker() async throws -> (
        scene: HostilePeerTests.Scene, receiver: RunningProgram, port: Int, me: UInt32, mallory: RawSocket,
        malloryID: UInt32
    ) {
        let scene = try await HostilePeerTests.Scene()
        let receiver = try #require(scene.fixture.receiver)
        let port = try await DirectEndToEndTests.directPort(receiver)
        let mallory = try await scene.registered("mallory")
        return (scene, receiver, port, scene.receiverID, mallory, try await Self.id(of: "mallory", scene))
    }

    static func status(_ receipt: RawSocket.Frame?) -> UInt8? {
        guard let receipt, receipt.type == 16 else { return nil }
        return DirectEndToEndTests.fields(receipt.payload)[2]?.first?.first
    }

    // MARK: the hello itself

    @Test(.timeLimit(.minutes(3))) func malformedHellosAreRefusedAndASplitHelloIsAdmitted() async throws {
        let (scene, _, port, me, mallory, malloryID) = try await Self.attacker()

        // 1. A real hello in pieces of 7 bytes with pauses (cut inside the length, the header and the fields): well
        //    within the 5 s a hello may take even on a loaded machine, so it must be admitted.
        do {
            let ticket = try await Self.ticket(mallory, for: me)
            let slow = try RawSocket(port: port)
            let bytes = Self.hello(ticket, from: malloryID, to: me)
            for start in stride(from: 0, to: bytes.count, by: 7) {
                slow.send(Array(bytes[start..<min(start + 7, bytes.count)]))
                try await Task.sleep(for: .milliseconds(15))
            }
            #expect(await slow.readFrame()?.type == 75, "a hello split byte by byte")
            // 2. A second hello on the admitted link: any other type closes it.
            slow.send(Self.hello(ticket, from: malloryID, to: me))
            #expect(await slow.readToEnd().closed, "a second hello on one link")
        }

        // 3. Hellos that are wrong, each with a fresh real ticket so that only the flaw can refuse them.
        var cases: [(String, ([UInt8]) -> [UInt8])] = [
            ("ticket of 31 bytes", { Self.hello(Array($0.prefix(31)), from: malloryID, to: me) }),
            ("ticket of 33 bytes", { Self.hello($0 + [0], from: malloryID, to: me) }),
            (
                "no ticket",
                { _ in T.frame(74, maskTo: 1, idTo: me, T.field(2, T.u32(malloryID)) + T.field(3, T.u32(me))) }
            ),
            ("no from", { T.frame(74, maskTo: 1, idTo: me, T.field(1, $0) + T.field(3, T.u32(me))) }),
            ("no to", { T.frame(74, maskTo: 1, idTo: me, T.field(1, $0) + T.field(2, T.u32(malloryID))) }),
            ("to another id", { Self.hello($0, from: malloryID, to: me &+ 1000) }),
            ("to id 0", { Self.hello($0, from: malloryID, to: 0) }),
            ("from id 0", { Self.hello($0, from: 0, to: me) }),
            (
                "a field length past the frame",
                {
                    T.frame(
                        74, maskTo: 1, idTo: me,
                        T.field(1, $0) + T.field(2, T.u32(malloryID)) + T.field(3, T.u32(me), length: 40))
                }
            ),
            (
                "a ticket length that lies short",
                {
                    T.frame(
                        74, maskTo: 1, idTo: me,
                        T.field(1, $0, length: 16) + T.field(2, T.u32(malloryID)) + T.field(3, T.u32(me)))
                }
            ),
            (
                "a 9-byte id",
                {
                    T.frame(
                        74, maskTo: 1, idTo: me,
                        T.field(1, $0) + T.field(2, [0] + Self.u64(UInt64(malloryID)))
                            + T.field(3, T.u32(me)))
                }
            ),
            (
                "over 512 bytes",
                { Self.hello($0, from: malloryID, to: me).dropFirst(0) + [] }
            ),
            (
                "protocol level 2",
                {
                    T.frame(
                        74, maskTo: 1, idTo: me, level: 2, Array(Self.hello($0, from: malloryID, to: me).dropFirst(18)))
                }
            ),
            (
                "maskTo 9",
                { T.frame(74, maskTo: 9, idTo: me, Array(Self.hello($0, from: malloryID, to: me).dropFirst(18))) }
            ),
            ("a length prefix under 14", { _ in T.u32(5) + [0, 74, 0, 0, 1] }),
            ("a DirectWelcome first", { _ in T.frame(75, maskTo: 1, idTo: me, T.field(1, T.u32(me))) }),
            ("a Close first", { _ in T.frame(10) }),
        ]
        // Over 512 bytes: the hello padded with an unknown tag (readers skip those) to 600 bytes.
        cases[11].1 = { ticket in
            let payload =
                T.field(9, [UInt8](repeating: 0x41, count: 520)) + T.field(1, ticket)
                + T.field(2, T.u32(malloryID)) + T.field(3, T.u32(me))
            return T.frame(74, maskTo: 1, idTo: me, payload)
        }
        var request: UInt32 = 10
        for (name, make) in cases {
            request += 1
            let ticket = try await Self.ticket(mallory, for: me, request: request)
            let socket = try RawSocket(port: port)
            socket.send(make(ticket))
            let answer = await Self.refusal(socket)
            #expect(answer.code != -75, "\(name): admitted")
            #expect(answer.closed, "\(name): not closed \(answer)")
            if name.hasPrefix("to ") || name.hasPrefix("from") {
                #expect(answer.code == 4, "\(name): \(answer)")
            } else if name.hasPrefix("ticket of") {
                // A ticket of the wrong length is malformed (1) or refused (4); either way an Error.
                #expect(answer.code == 1 || answer.code == 4, "\(name): \(answer)")
            }
        }

        // 4. A connection that never says anything is closed after 5 s.
        // (Closed, not timed out: the raw socket gives up reading after 10 s.)
        let silent = try RawSocket(port: port)
        let end = await silent.readToEnd()
        #expect(end.closed, "a silent connection was not closed")

        // 5. Half a hello, then nothing: the same.
        let half = try RawSocket(port: port)
        half.send(Array(Self.hello([UInt8](repeating: 1, count: 32), from: malloryID, to: me).prefix(30)))
        #expect(await half.readToEnd().closed, "half a hello")

        Self.receiverRuns(scene, "malformed hellos")
        try await scene.everyoneIsStillServed("malformed hellos")
        try await scene.stop()
    }

    // MARK: connections that never say hello

    @Test(.timeLimit(.minutes(3))) func aFloodOfSilentConnectionsDoesNotKeepARealSenderOut() async throws {
        let scene = try await HostilePeerTests.Scene()
        let receiver = try #require(scene.fixture.receiver)
        let port = try await DirectEndToEndTests.directPort(receiver)

        // 100 connections that never send a hello (three times the 32 that may wait), some with a byte of one.
        var flood: [RawSocket] = []
        for index in 0..<100 {
            let socket = try RawSocket(port: port)
            if index % 3 == 0 { socket.send([0]) }
            flood.append(socket)
        }
        try await Task.sleep(for: .milliseconds(300))
        let path = try scene.fixture.file("during-flood.txt", Array("sent during a flood".utf8))
        let sent = try await scene.fixture.sendFile(["--to", "archive", "--json", "--timeout", "20", path])
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(scene.fixture.spooled("during-flood.txt") == Array("sent during a flood".utf8))
        // The oldest were shed: at most 32 still wait, the rest are closed (bounded waits: the limit is 5 s anyway).
        var closed = 0
        for socket in flood where await socket.readToEnd().closed { closed += 1 }
        #expect(closed == 100, "\(closed) of 100 silent connections closed")

        // The same, with the flood still coming while a direct-only send runs: a new attacker connection every 5 ms.
        let stop = ManagedFlag()
        let attacker = Task.detached {
            var held: [RawSocket] = []
            while !stop.value {
                if let socket = try? RawSocket(port: port) { held.append(socket) }
                if held.count > 200 { held.removeFirst(100) }
                usleep(5_000)
            }
            return held.count
        }
        let second = try scene.fixture.file("during-flood-2.txt", Array("again".utf8))
        let auto = try await scene.fixture.sendFile(["--to", "archive", "--json", "--timeout", "20", second])
        stop.value = true
        _ = await attacker.value
        #expect(auto.status == 0, "\(auto.stderr)")
        #expect(scene.fixture.spooled("during-flood-2.txt") == Array("again".utf8))

        Self.receiverRuns(scene, "silent flood")
        try await scene.everyoneIsStillServed("silent flood")
        try await scene.stop()
    }

    // MARK: an admitted raw link

    @Test(.timeLimit(.minutes(3))) func anAdmittedLinkCannotPublishWhatItShouldNot() async throws {
        let (scene, receiver, port, me, mallory, malloryID) = try await Self.attacker()

        func link() async throws -> RawSocket {
            let ticket = try await Self.ticket(mallory, for: me)
            let socket = try RawSocket(port: port)
            socket.send(Self.hello(ticket, from: malloryID, to: me))
            let welcome = try #require(await socket.readFrame())
            #expect(welcome.type == 75)
            return socket
        }
        func start(_ id: UInt32, _ name: [UInt8], size: UInt64, sha: [UInt8]? = nil) -> [UInt8] {
            var payload = T.field(1, T.u32(id)) + T.field(2, name) + T.field(3, Self.u64(size))
            payload += T.field(4, T.u32(65_536)) + T.field(5, [0])
            if let sha { payload += T.field(6, sha) }
            return T.frame(13, maskTo: 1, idTo: me, payload)
        }
        func chunk(_ id: UInt32, _ bytes: [UInt8]) -> [UInt8] {
            T.frame(14, maskTo: 1, idTo: me, T.u32(id) + T.u32(UInt32(bytes.count)) + bytes)
        }
        func end(_ id: UInt32, size: UInt64, sha: [UInt8]) -> [UInt8] {
            T.frame(15, maskTo: 1, idTo: me, T.field(1, T.u32(id)) + T.field(2, Self.u64(size)) + T.field(3, sha))
        }
        let abcSHA: [UInt8] = [
            0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
            0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
        ]

        let raw = try await link()
        // A good file first: the status it gets is what success looks like.
        raw.send(start(1, Array("good.txt".utf8), size: 3))
        raw.send(chunk(1, Array("abc".utf8)))
        raw.send(end(1, size: 3, sha: abcSHA))
        let good = try #require(await Self.next(raw, [16]))
        let stored = Self.status(good)
        #expect(scene.fixture.spooled("good.txt") == Array("abc".utf8), "a good file on a raw direct link")

        // Hostile names: refused as invalid (4), nothing outside the spool.
        for (id, name) in [
            (UInt32(2), "../x"), (3, "/tmp/direct-evil"), (4, "a/../../y"), (5, ".."), (6, ""), (7, "a\u{0}b"),
        ] {
            raw.send(start(id, Array(name.utf8), size: 3))
            raw.send(chunk(id, Array("abc".utf8)))
            raw.send(end(id, size: 3, sha: abcSHA))
            let receipt = await Self.next(raw, [16])
            #expect(Self.status(receipt) == 4, "name \(name.debugDescription): \(String(describing: receipt))")
        }
        #expect(!FileManager.default.fileExists(atPath: scene.fixture.spool + "/../x"))
        #expect(!FileManager.default.fileExists(atPath: "/tmp/direct-evil"))

        // A chunk larger than announced, a chunk past the size, a wrong digest, a FileStart digest that disagrees.
        raw.send(start(20, Array("big-chunk.txt".utf8), size: 3))
        raw.send(chunk(20, [UInt8](repeating: 0x42, count: 10)))
        raw.send(end(20, size: 3, sha: abcSHA))
        let bigChunk = await Self.next(raw, [16])
        #expect(Self.status(bigChunk) != nil && Self.status(bigChunk) != stored, "a chunk past the announced size")

        raw.send(start(21, Array("past.txt".utf8), size: 3))
        raw.send(chunk(21, Array("ab".utf8)))
        raw.send(chunk(21, Array("cd".utf8)))
        raw.send(end(21, size: 3, sha: abcSHA))
        let past = await Self.next(raw, [16])
        #expect(Self.status(past) != nil && Self.status(past) != stored, "two chunks past the announced size")

        raw.send(start(22, Array("wrong-digest.txt".utf8), size: 3))
        raw.send(chunk(22, Array("abd".utf8)))
        raw.send(end(22, size: 3, sha: abcSHA))
        let digest = await Self.next(raw, [16])
        #expect(Self.status(digest) != nil && Self.status(digest) != stored, "a wrong digest")

        raw.send(start(23, Array("start-digest.txt".utf8), size: 3, sha: [UInt8](repeating: 7, count: 32)))
        raw.send(chunk(23, Array("abc".utf8)))
        raw.send(end(23, size: 3, sha: abcSHA))
        let startDigest = await Self.next(raw, [16])
        #expect(Self.status(startDigest) != nil && Self.status(startDigest) != stored, "FileStart's digest disagrees")

        raw.send(start(24, Array("short.txt".utf8), size: 10))
        raw.send(chunk(24, Array("abc".utf8)))
        raw.send(end(24, size: 3, sha: abcSHA))
        let short = await Self.next(raw, [16])
        #expect(Self.status(short) != nil && Self.status(short) != stored, "FileEnd's size disagrees with FileStart's")

        for name in ["big-chunk.txt", "past.txt", "wrong-digest.txt", "start-digest.txt", "short.txt"] {
            #expect(scene.fixture.spooled(name) == nil, "\(name) was published")
        }

        // An open transfer, then the link breaks: nothing is published.
        raw.send(start(30, Array("cut.txt".utf8), size: 6))
        raw.send(chunk(30, Array("abc".utf8)))
        try await Task.sleep(for: .milliseconds(200))
        shutdown(raw.fd, Int32(SHUT_RDWR))
        try await Task.sleep(for: .milliseconds(300))
        #expect(scene.fixture.spooled("cut.txt") == nil)
        Self.receiverRuns(scene, "hostile files")
        try await scene.everyoneIsStillServed("hostile files on a direct link")

        // A flood of pings, never reading a PingResponse: the receiver must not queue answers without bound.
        let pinger = try await link()
        let pid = receiver.process.processIdentifier
        let before = try HostilePeerTests.memoryKiB(pid, "VmRSS")
        let ping = T.frame(
            1, maskTo: 1, idTo: me, T.field(1, T.u32(1)) + T.field(2, [0, 0x06, 0x44, 0x68, 0x30, 0x6c, 0xfb, 0]))
        var batch: [UInt8] = []
        for _ in 0..<4096 { batch += ping }
        var poured = 0
        // A few seconds of it: enough to fill every buffer on the way (the suite runs beside the others on two cores).
        let deadline = Date().addingTimeInterval(4)
        while Date() < deadline {
            let n = Self.pour(pinger.fd, batch, stall: 2)
            poured += n
            if n < batch.count { break }
        }
        let peak = try HostilePeerTests.memoryKiB(pid, "VmRSS")
        print(
            "ping flood: \(poured) bytes of pings (\(poured / ping.count) pings); receiver RSS \(before) -> \(peak) KiB"
        )
        #expect(peak - before < 64 << 10, "the receiver grew from \(before) to \(peak) KiB under a ping flood")
        shutdown(pinger.fd, Int32(SHUT_RDWR))
        try await Task.sleep(for: .milliseconds(500))
        Self.receiverRuns(scene, "ping flood")
        try await scene.everyoneIsStillServed("ping flood on a direct link")
        try await scene.stop()
    }

    // MARK: the hub's introduction packets

    @Test(.timeLimit(.minutes(4))) func introductionsCannotBeForgedOrFloodedIntoHarm() async throws {
        let (scene, _, port, me, mallory, malloryID) = try await Self.attacker()

        // 1. Introductions for itself, for id 0, for an id nobody has: no ticket; the connection stays.
        for (peer, name) in [(malloryID, "itself"), (UInt32(0), "id 0"), (UInt32(999_999), "nobody")] {
            mallory.send(T.frame(71, T.field(1, T.u32(5)) + T.field(2, T.u32(peer))))
            let answer = try #require(await Self.next(mallory, [64, 72]), "\(name)")
            let fields = DirectEndToEndTests.fields(answer.payload)
            if answer.type == 64 {
                #expect(fields[4]?.first == [0, 71], "\(name): packetType \(fields)")
            } else {
                #expect(fields[3] == nil, "\(name): an introduction with a ticket")
            }
        }
        _ = try await Self.ticket(mallory, for: me, request: 6)

        // 2. Malformed IntroductionRequests: Error, then closed.
        for (payload, name) in [
            (T.field(1, T.u32(1)) + T.field(2, T.u32(me), length: 30), "a field past the frame"),
            (T.field(1, T.u32(1)) + T.field(2, [1, 2, 3, 4, 5, 6, 7, 8, 9]), "a 9-byte peer"),
        ] {
            let socket = try await scene.registered("prober")
            socket.send(T.frame(71, payload))
            let answer = await Self.next(socket, [64, 72])
            #expect(answer?.type == 64, "\(name): \(String(describing: answer))")
            #expect(await socket.readToEnd().closed, "\(name)")
        }
        do {
            let socket = try await scene.registered("prober")
            socket.send(T.frame(71, T.field(1, T.u32(1))))
            let answer = await Self.next(socket, [64, 72])
            #expect(answer != nil && DirectEndToEndTests.fields(answer!.payload)[3] == nil, "no peer field")
        }

        // 3. Forged Introduction and IntroductionNotice: unsupported, closed; the forged ticket admits nobody.
        let forgedTicket = [UInt8](repeating: 0x5A, count: 32)
        for type in [72, 73] {
            let forger = try await scene.registered("forger")
            let record = T.field(1, T.u32(malloryID)) + T.text(2, "mallory")
            forger.send(
                T.frame(
                    type, maskTo: 1, idTo: me,
                    T.field(1, forgedTicket) + T.field(2, record) + T.field(3, T.u32(30_000))))
            let answer = await Self.next(forger, [64])
            #expect(answer?.type == 64, "forged \(type)")
            #expect(await forger.readToEnd().closed, "forged \(type)")
        }
        let forged = try RawSocket(port: port)
        forged.send(Self.hello(forgedTicket, from: malloryID, to: me))
        let forgedAnswer = await Self.refusal(forged)
        #expect(forgedAnswer.code == 4 && forgedAnswer.closed, "a forged notice's ticket: \(forgedAnswer)")
        try await scene.everyoneIsStillServed("forged introductions")

        // 4. Hundreds of IntroductionRequests from one peer: the receiver keeps at most 8 of its tickets (256 in all),
        // the soonest to expire goes.
        let oldest = try await Self.ticket(mallory, for: me, request: 7)
        let count = 600
        var requests: [UInt8] = []
        for index in 0..<count {
            requests += T.frame(71, T.field(1, T.u32(UInt32(100 + index))) + T.field(2, T.u32(me)))
        }
        mallory.send(requests)
        var latest: [UInt8]?
        var introductions = 0
        for _ in 0..<(count + 50) {
            guard let frame = await mallory.readFrame() else { break }
            if frame.type == 72 {
                introductions += 1
                latest = DirectEndToEndTests.fields(frame.payload)[3]?.first
                if introductions == count { break }
            }
        }
        #expect(introductions == count, "\(introductions) introductions of \(count)")
        // The newest ticket admits (so every notice before it has been taken in), the oldest has been pushed out.
        let newest = try RawSocket(port: port)
        newest.send(Self.hello(try #require(latest), from: malloryID, to: me))
        #expect(await newest.readFrame()?.type == 75, "the newest ticket after a flood of introductions")
        let old = try RawSocket(port: port)
        old.send(Self.hello(oldest, from: malloryID, to: me))
        let oldAnswer = await Self.refusal(old)
        #expect(oldAnswer.code == 4 && oldAnswer.closed, "the 3001st-newest ticket still admits: \(oldAnswer)")
        shutdown(newest.fd, Int32(SHUT_RDWR))
        Self.receiverRuns(scene, "introduction flood")
        let path = try scene.fixture.file("after-intro-flood.txt", Array("direct still".utf8))
        let sent = try await scene.fixture.sendFile(["--to", "archive", "--json", "--direct", "only", path])
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(scene.fixture.spooled("after-intro-flood.txt") == Array("direct still".utf8))
        try await scene.everyoneIsStillServed("introduction flood")

        // 5. DirectHints: host names, port 0, over 64 bytes, bad UTF-8, tag-1 port 0: Error, closed.
        let long = "[2001:db8:0:0:0:0:0:1]:7000" + String(repeating: "0", count: 40)
        for (payload, name) in [
            (T.text(2, "example.com:7000"), "a host name"),
            (T.text(2, "localhost:7000"), "localhost"),
            (T.text(2, "127.0.0.1:0"), "port 0"),
            (T.text(2, "127.0.0.1"), "no port"),
            (T.text(2, "127.0.0.1:70000"), "port 70000"),
            (T.text(2, long), "a 65+-byte hint"),
            (T.field(2, [0xFF, 0xFE, 0x3A, 0x31]), "bad UTF-8"),
            (T.field(1, [0, 0]), "tag-1 port 0"),
            (T.field(2, Array("127.0.0.1:7000".utf8), length: 90), "a hint past the frame"),
        ] {
            let hinter = try await scene.registered("hinter")
            hinter.send(T.frame(70, payload))
            let answer = await Self.next(hinter, [64])
            #expect(answer?.type == 64, "\(name): \(String(describing: answer))")
            #expect(await hinter.readToEnd().closed, "\(name)")
        }
        // Nine valid hints: at most 8 are passed on to a sender (or the hinter is refused).
        let nine = try await scene.registered("nine")
        var hints: [UInt8] = []
        for index in 1...9 { hints += T.text(2, "192.0.2.\(index):7000") }
        nine.send(T.frame(70, hints))
        if let refused = await Self.next(nine, [64], limit: 5) {
            // Refused as malformed: an Error, then closed.
            #expect(refused.type == 64)
            #expect(await nine.readToEnd().closed, "nine hints: an Error but not closed")
        } else {
            let nineID = try await Self.id(of: "nine", scene)
            mallory.send(T.frame(71, T.field(1, T.u32(9)) + T.field(2, T.u32(nineID))))
            let introduction = try #require(await Self.next(mallory, [72, 64]))
            let passed = DirectEndToEndTests.fields(introduction.payload)[4] ?? []
            #expect(passed.count <= 8, "\(passed.count) hints passed on")
        }
        Self.receiverRuns(scene, "bad hints")
        try await scene.everyoneIsStillServed("bad hints")
        try await scene.stop()
    }
}

extension DirectHostileTests {
    static let maxU64: [UInt8] = [UInt8](repeating: 0xFF, count: 8)

    /// Integers are "1 to 8 bytes wide (readers accept any width)": values that do not fit the field they fill, and
    /// sizes and offsets at the edge of 64 bits, on the direct listener, on an admitted link and at the hub.
    @Test(.timeLimit(.minutes(3))) func numbersThatDoNotFitAreRefusedNotTrapped() async throws {
        let (scene, _, port, me, mallory, malloryID) = try await Self.attacker()

        // 1. Hellos whose ids are 8 bytes wide and do not fit a u32, with a real ticket each.
        for (name, from, to) in [
            ("from 2^64-1", Self.maxU64, T.u32(me)), ("to 2^64-1", T.u32(malloryID), Self.maxU64),
            ("from 2^32 + its id", [0, 0, 0, 1] + T.u32(malloryID), T.u32(me)),
        ] {
            let ticket = try await Self.ticket(mallory, for: me)
            let socket = try RawSocket(port: port)
            socket.send(T.frame(74, maskTo: 1, idTo: me, T.field(1, ticket) + T.field(2, from) + T.field(3, to)))
            let answer = await Self.refusal(socket)
            #expect(answer.code != -75 && answer.closed, "\(name): \(answer)")
            Self.receiverRuns(scene, name)
        }

        // 2. At the hub: an IntroductionRequest with 8-byte ids, DirectHints with a port that does not fit a u16.
        for (type, payload, name) in [
            (71, T.field(1, Self.maxU64) + T.field(2, T.u32(me)), "a requestID of 2^64-1"),
            (71, T.field(1, T.u32(1)) + T.field(2, [0, 0, 0, 1] + T.u32(me)), "a peer of 2^32 + the receiver's id"),
            (70, T.field(1, T.u32(70_000)), "a port of 70000"),
            (70, T.field(1, Self.maxU64), "a port of 2^64-1"),
        ] {
            let socket = try await scene.registered("numbers")
            socket.send(T.frame(type, payload))
            let answer = await Self.next(socket, [64, 72], limit: 5)
            if let answer, answer.type == 72 {
                #expect(DirectEndToEndTests.fields(answer.payload)[3] == nil, "\(name): a ticket")
            }
            Self.receiverRuns(scene, name)
        }
        try await scene.everyoneIsStillServed("numbers at the hub")

        // 3. On an admitted link: sizes and offsets at the edge of 64 bits.
        func start(_ id: [UInt8], _ name: String, size: [UInt8], chunk: [UInt8] = T.u32(65_536)) -> [UInt8] {
            T.frame(
                13, maskTo: 1, idTo: me,
                T.field(1, id) + T.text(2, name) + T.field(3, size) + T.field(4, chunk) + T.field(5, [0])
                    + T.field(7, [1]))
        }
        let cases: [(String, [[UInt8]])] = [
            ("a size of 2^64-1", [start(T.u32(40), "huge-1", size: Self.maxU64)]),
            ("a size of 2^63", [start(T.u32(41), "huge-2", size: [0x80, 0, 0, 0, 0, 0, 0, 0])]),
            ("a chunk size of 2^32-1", [start(T.u32(42), "huge-3", size: Self.u64(3), chunk: T.u32(.max))]),
            ("a chunk size of 2^64-1", [start(T.u32(43), "huge-4", size: Self.u64(3), chunk: Self.maxU64)]),
            ("a transfer id of 2^64-1", [start(Self.maxU64, "huge-5", size: Self.u64(3))]),
            (
                "a seek to 2^64-1",
                [
                    start(T.u32(44), "huge-6", size: Self.u64(3)),
                    T.frame(18, maskTo: 1, idTo: me, T.field(1, T.u32(44)) + T.field(2, Self.maxU64)),
                    T.frame(14, maskTo: 1, idTo: me, T.u32(44) + T.u32(3) + Array("abc".utf8)),
                ]
            ),
            (
                "a seek to 2^63-1 then a chunk",
                [
                    start(T.u32(45), "huge-7", size: Self.maxU64),
                    T.frame(
                        18, maskTo: 1, idTo: me,
                        T.field(1, T.u32(45)) + T.field(2, [0x7F] + [UInt8](repeating: 0xFF, count: 7))),
                    T.frame(14, maskTo: 1, idTo: me, T.u32(45) + T.u32(3) + Array("abc".utf8)),
                ]
            ),
            (
                "a FileEnd of 2^64-1 bytes",
                [
                    start(T.u32(46), "huge-8", size: Self.u64(3)),
                    T.frame(14, maskTo: 1, idTo: me, T.u32(46) + T.u32(3) + Array("abc".utf8)),
                    T.frame(15, maskTo: 1, idTo: me, T.field(1, T.u32(46)) + T.field(2, Self.maxU64)),
                ]
            ),
            (
                "a chunk whose length says 2^32-1",
                [
                    start(T.u32(47), "huge-9", size: Self.u64(3)),
                    T.frame(14, maskTo: 1, idTo: me, T.u32(47) + T.u32(.max) + Array("abc".utf8)),
                ]
            ),
            (
                "a chunk of 2 MiB for a 64 KiB chunk size",
                [
                    start(T.u32(48), "huge-10", size: Self.u64(4 << 20)),
                    T.frame(
                        14, maskTo: 1, idTo: me, T.u32(48) + T.u32(2 << 20) + [UInt8](repeating: 1, count: 2 << 20)),
                ]
            ),
        ]
        for (name, frames) in cases {
            let ticket = try await Self.ticket(mallory, for: me)
            let socket = try RawSocket(port: port)
            socket.send(Self.hello(ticket, from: malloryID, to: me))
            #expect(await socket.readFrame()?.type == 75, "\(name): not admitted")
            for frame in frames { _ = Self.pour(socket.fd, frame) }
            // Whatever the receiver answers (a refusal, a closed link), it must still run and publish nothing.
            _ = await Self.next(socket, [16], limit: 3)
            shutdown(socket.fd, Int32(SHUT_RDWR))
            try await Task.sleep(for: .milliseconds(200))
            Self.receiverRuns(scene, name)
            if scene.fixture.receiver?.isRunning != true { break }
        }
        #expect(scene.fixture.visible.allSatisfy { !$0.hasPrefix("huge-") }, "\(scene.fixture.visible)")
        try await scene.everyoneIsStillServed("numbers on a direct link")
        try await scene.stop()
    }

    /// One path at a time per sender: a file packet through the hub closes the sender's direct link. And a direct
    /// link that drips its hello is closed at the 5 s deadline, not kept alive by each byte.
    @Test(.timeLimit(.minutes(3))) func oneAdmissionDeadlineAndOnePathPerSender() async throws {
        let (scene, _, port, me, mallory, malloryID) = try await Self.attacker()

        // A frame announced at 400 bytes, dripped a byte every 150 ms: 60 s' worth. Closed at the hello deadline (5 s),
        // long before the frame could be whole; the loop gives it 30 s on a loaded machine.
        let drip = try RawSocket(port: port)
        let start = Date()
        drip.send(T.u32(400))
        var closedAt: Double?
        for _ in 0..<200 {
            try await Task.sleep(for: .milliseconds(150))
            var byte: UInt8 = 0
            let n = Glibc.send(drip.fd, &byte, 1, Int32(MSG_NOSIGNAL))
            if n < 0 {
                closedAt = Date().timeIntervalSince(start)
                break
            }
            var probe = pollfd(fd: drip.fd, events: Int16(POLLIN), revents: 0)
            if poll(&probe, 1, 0) > 0 {
                closedAt = Date().timeIntervalSince(start)
                break
            }
        }
        #expect(closedAt != nil, "a dripped hello was still open after 200 bytes")

        // Two links from one sender at once, with the same transfer id: the receiver survives, nothing torn.
        var links: [RawSocket] = []
        for _ in 0..<2 {
            let ticket = try await Self.ticket(mallory, for: me)
            let socket = try RawSocket(port: port)
            socket.send(Self.hello(ticket, from: malloryID, to: me))
            #expect(await socket.readFrame()?.type == 75)
            links.append(socket)
        }
        let abc = Array("abc".utf8)
        let fileStart = { (name: String) in
            T.frame(
                13, maskTo: 1, idTo: me,
                T.field(1, T.u32(1)) + T.text(2, name) + T.field(3, Self.u64(3)) + T.field(4, T.u32(65_536))
                    + T.field(5, [0]))
        }
        links[0].send(fileStart("twin-a.txt"))
        links[1].send(fileStart("twin-b.txt"))
        links[1].send(T.frame(14, maskTo: 1, idTo: me, T.u32(1) + T.u32(3) + Array("xyz".utf8)))
        links[0].send(T.frame(14, maskTo: 1, idTo: me, T.u32(1) + T.u32(3) + abc))
        for link in links {
            link.send(
                T.frame(
                    15, maskTo: 1, idTo: me,
                    T.field(1, T.u32(1)) + T.field(2, Self.u64(3))))
        }
        try await Task.sleep(for: .milliseconds(500))
        Self.receiverRuns(scene, "twin links")
        for name in ["twin-a.txt", "twin-b.txt"] {
            if let bytes = scene.fixture.spooled(name) {
                #expect(
                    bytes == (name == "twin-a.txt" ? abc : Array("xyz".utf8)), "\(name) holds the other link's bytes")
            }
        }
        for link in links { shutdown(link.fd, Int32(SHUT_RDWR)) }

        // A direct link open, then a file packet from the same sender through the hub: the link is closed.
        let ticket = try await Self.ticket(mallory, for: me)
        let direct = try RawSocket(port: port)
        direct.send(Self.hello(ticket, from: malloryID, to: me))
        #expect(await direct.readFrame()?.type == 75)
        mallory.send(fileStart("via-hub.txt"))
        #expect(await direct.readToEnd().closed, "the direct link stayed open while the hub path was used")
        mallory.send(T.frame(14, maskTo: 1, idTo: me, T.u32(1) + T.u32(3) + abc))
        mallory.send(T.frame(15, maskTo: 1, idTo: me, T.field(1, T.u32(1)) + T.field(2, Self.u64(3))))
        _ = await Self.next(mallory, [16], limit: 10)
        Self.receiverRuns(scene, "one path per sender")
        try await scene.everyoneIsStillServed("one path per sender")
        try await scene.stop()
    }
}

extension DirectHostileTests {
    /// A ticket is spent by the first hello that names it, whatever the outcome; frames pipelined behind a refused
    /// hello are never taken as a file; a ticket lives at most 30 s.
    @Test(.timeLimit(.minutes(3))) func ticketsAreSpentAndNothingRidesBehindARefusedHello() async throws {
        let (scene, _, port, me, mallory, malloryID) = try await Self.attacker()

        // 1. A refused hello spends the ticket: wrong `from`, then wrong `to`, then the right one is refused too.
        for (name, wrong) in [
            ("a wrong from", { (ticket: [UInt8]) in Self.hello(ticket, from: scene.listenerID, to: me) }),
            ("a wrong to", { (ticket: [UInt8]) in Self.hello(ticket, from: malloryID, to: me &+ 77) }),
        ] {
            let ticket = try await Self.ticket(mallory, for: me)
            let first = try RawSocket(port: port)
            first.send(wrong(ticket))
            #expect(await Self.refusal(first).code == 4, "\(name)")
            let second = try RawSocket(port: port)
            second.send(Self.hello(ticket, from: malloryID, to: me))
            let answer = await Self.refusal(second)
            #expect(answer.code == 4 && answer.closed, "a ticket refused for \(name) admitted later: \(answer)")
        }

        // 1b. One ticket on 20 connections at once, five times over: exactly one is admitted each time.
        for round in 0..<5 {
            let ticket = try await Self.ticket(mallory, for: me)
            let racers = try (0..<20).map { _ in try RawSocket(port: port) }
            try await Task.sleep(for: .milliseconds(100))
            let hello = Self.hello(ticket, from: malloryID, to: me)
            for racer in racers { racer.send(hello) }
            var welcomed = 0
            for racer in racers where await racer.readFrame()?.type == 75 { welcomed += 1 }
            #expect(welcomed == 1, "round \(round): one ticket admitted \(welcomed) connections")
            for racer in racers { shutdown(racer.fd, Int32(SHUT_RDWR)) }
        }

        // 2. A forged hello with a whole file pipelined behind it in one write: refused, nothing published.
        let abc = Array("abc".utf8)
        let abcSHA: [UInt8] = [
            0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
            0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
        ]
        func file(_ name: String) -> [UInt8] {
            T.frame(
                13, maskTo: 1, idTo: me,
                T.field(1, T.u32(1)) + T.text(2, name) + T.field(3, Self.u64(3)) + T.field(4, T.u32(65_536))
                    + T.field(5, [0]))
                + T.frame(14, maskTo: 1, idTo: me, T.u32(1) + T.u32(3) + abc)
                + T.frame(15, maskTo: 1, idTo: me, T.field(1, T.u32(1)) + T.field(2, Self.u64(3)) + T.field(3, abcSHA))
        }
        let forged = try RawSocket(port: port)
        forged.send(Self.hello([UInt8](repeating: 3, count: 32), from: malloryID, to: me) + file("pipelined.txt"))
        let forgedAnswer = await Self.refusal(forged)
        // Refused (4), or refused for what came behind the hello (1): an Error either way, then closed.
        #expect(forgedAnswer.code != nil && forgedAnswer.code != -75 && forgedAnswer.closed, "\(forgedAnswer)")
        // A spent ticket, the same.
        let spent = try await Self.ticket(mallory, for: me)
        let use = try RawSocket(port: port)
        use.send(Self.hello(spent, from: malloryID, to: me))
        #expect(await use.readFrame()?.type == 75)
        let again = try RawSocket(port: port)
        again.send(Self.hello(spent, from: malloryID, to: me) + file("pipelined-2.txt"))
        #expect(await Self.refusal(again).closed)
        shutdown(use.fd, Int32(SHUT_RDWR))
        try await Task.sleep(for: .milliseconds(500))
        #expect(scene.fixture.spooled("pipelined.txt") == nil, "a file behind a forged hello was published")
        #expect(scene.fixture.spooled("pipelined-2.txt") == nil, "a file behind a spent ticket was published")
        // A live ticket with the file pipelined (the sender did not wait for the welcome): whatever the receiver
        // decides, it serves on and any file it keeps is whole.
        let live = try await Self.ticket(mallory, for: me)
        let eager = try RawSocket(port: port)
        eager.send(Self.hello(live, from: malloryID, to: me) + file("eager.txt"))
        _ = await Self.next(eager, [16], limit: 3)
        shutdown(eager.fd, Int32(SHUT_RDWR))
        try await Task.sleep(for: .milliseconds(300))
        #expect([nil, abc].contains(scene.fixture.spooled("eager.txt")))
        Self.receiverRuns(scene, "pipelined")

        // 3. The Introduction says how long the ticket lives (at most 30 s); past that it admits nobody.
        mallory.send(T.frame(71, T.field(1, T.u32(3)) + T.field(2, T.u32(me))))
        let introduction = try #require(await Self.next(mallory, [72]))
        let fields = DirectEndToEndTests.fields(introduction.payload)
        let lifetime = (fields[5]?.first ?? []).reduce(0) { $0 << 8 | Int($1) }
        #expect((1...30_000).contains(lifetime), "lifetime \(lifetime) ms")
        let old = try #require(fields[3]?.first)
        try await Task.sleep(for: .milliseconds(min(lifetime, 30_000) + 1_500))
        let late = try RawSocket(port: port)
        late.send(Self.hello(old, from: malloryID, to: me))
        let lateAnswer = await Self.refusal(late)
        #expect(lateAnswer.code == 4 && lateAnswer.closed, "an expired ticket: \(lateAnswer)")
        try await scene.everyoneIsStillServed("spent and expired tickets")
        try await scene.stop()
    }
}

extension DirectHostileTests {
    /// Many admitted links from one registered attacker: the per-sender cap on transfers holds across links, and
    /// half-sent large frames on many links do not grow the receiver without bound.
    @Test(.timeLimit(.minutes(3))) func manyAdmittedLinksFromOneSender() async throws {
        let (scene, receiver, port, me, mallory, malloryID) = try await Self.attacker()
        func link() async throws -> RawSocket? {
            let ticket = try await Self.ticket(mallory, for: me)
            let socket = try RawSocket(port: port)
            socket.send(Self.hello(ticket, from: malloryID, to: me))
            return await socket.readFrame()?.type == 75 ? socket : nil
        }

        // 1. Three links, 12 transfers each: at most 16 in progress for this sender.
        var links: [RawSocket] = []
        for _ in 0..<3 { if let socket = try await link() { links.append(socket) } }
        for (index, socket) in links.enumerated() {
            for id in 0..<12 {
                socket.send(
                    T.frame(
                        13, maskTo: 1, idTo: me,
                        T.field(1, T.u32(UInt32(1000 * index + id))) + T.text(2, "cap-\(index)-\(id)")
                            + T.field(3, Self.u64(1024)) + T.field(4, T.u32(65_536)) + T.field(5, [0])))
            }
        }
        try await Task.sleep(for: .milliseconds(800))
        let open = scene.fixture.inProgress
        print("in progress after 36 starts on 3 links: \(open.count) \(scene.fixture.inProgress.count)")
        #expect(open.count <= 16, "\(open.count) transfers in progress for one sender across 3 links")
        for socket in links { shutdown(socket.fd, Int32(SHUT_RDWR)) }
        links.removeAll()
        try await Task.sleep(for: .milliseconds(300))

        // 2. 40 admitted links, each with a 1 MiB frame sent but its last bytes held back.
        let pid = receiver.process.processIdentifier
        let before = try HostilePeerTests.memoryKiB(pid, "VmRSS")
        let partial = T.u32(14 + (1 << 20) - 64) + [UInt8](repeating: 0, count: 14 + (1 << 20) - 1000)
        var admitted = 0
        for _ in 0..<40 {
            guard let socket = try await link() else { continue }
            admitted += 1
            _ = Self.pour(socket.fd, partial, stall: 1)
            links.append(socket)
        }
        try await Task.sleep(for: .milliseconds(500))
        let held = try HostilePeerTests.memoryKiB(pid, "VmRSS")
        print("40 links with 1 MiB frames held back: \(admitted) admitted; receiver RSS \(before) -> \(held) KiB")
        #expect(held - before < 64 << 10, "the receiver grew from \(before) to \(held) KiB")
        Self.receiverRuns(scene, "held-back frames")
        try await scene.everyoneIsStillServed("held-back frames")
        for socket in links { shutdown(socket.fd, Int32(SHUT_RDWR)) }

        // 3. A decoy whose hints point at the hub, at the receiver's direct port and at a black hole: a sender told
        // `--direct only` gives up with 75 in bounded time, and the receiver refuses the misdirected hello.
        let decoy = try RawSocket(port: scene.fixture.hub.port)
        #expect(await decoy.readFrame()?.type == 3)
        decoy.send(T.frame(T.myCredentials, T.text(1, "decoy") + T.text(4, "receiver")))
        #expect(await decoy.readFrame()?.type == 5)
        decoy.send(
            T.frame(
                70,
                T.text(2, "127.0.0.1:\(scene.fixture.hub.port)") + T.text(2, "127.0.0.1:\(port)")
                    + T.text(2, "192.0.2.1:9")))
        try await Task.sleep(for: .milliseconds(300))
        let path = try scene.fixture.file("to-decoy.txt", Array("decoy".utf8))
        let only = try await scene.fixture.sendFile(["--to", "decoy", "--direct", "only", "--timeout", "20", path])
        #expect(only.status == 75, "\(only.status): \(only.stderr)")
        Self.receiverRuns(scene, "decoy hints")
        try await scene.everyoneIsStillServed("decoy hints")
        try await scene.stop()
    }
}

/// A flag one task sets and another reads.
final class ManagedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    var value: Bool {
        get { lock.withLock { flag } }
        set { lock.withLock { flag = newValue } }
    }
}
