import Foundation
import NIOCore
import TCPIPTestSupport
import TCPIPWire
import Testing

/// The built tcpipd and tcpipctl on loopback, port 0.
@Suite struct HubEndToEndTests {
    static func json(_ text: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
    }

    @Test func twoPeersSeeEachOther() async throws {
        let hub = try await TestHub()
        let watcher = try RunningProgram(
            "tcpipctl", ["peers", "--watch", "--name", "alpha"], environment: hub.environment)
        // Wait until alpha is registered: a second client lists it.
        var listed: [[String: Any]] = []
        for _ in 0..<200 {
            let result = try await RunningProgram.run(
                "tcpipctl", ["peers", "--name", "beta", "--include-self"], environment: hub.environment)
            #expect(result.status == 0, "\(result.stderr)")
            listed = try #require(try Self.json(result.stdout) as? [[String: Any]])
            if listed.count == 2 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(listed.map { $0["name"] as? String } == ["alpha", "beta"])
        let alpha = try #require(listed.first)
        #expect((alpha["id"] as? Int ?? 0) >= 1)
        #expect((alpha["address"] as? String)?.hasPrefix("127.0.0.1:") == true)
        #expect(alpha["role"] as? String == "client")
        #expect(alpha["version"] as? String != nil)
        #expect((alpha["connectedAt"] as? String)?.hasSuffix("Z") == true)
        #expect(
            Set(alpha.keys) == [
                "id", "name", "host", "user", "address", "role", "connectedAt", "version", "key", "wire",
            ])
        #expect(alpha["wire"] as? String == "tcpip")
        #expect(alpha["key"] is NSNull, "no key on a plaintext link")

        // Without --include-self only the other peer is listed; the output is one line (not a terminal).
        let other = try await RunningProgram.run(
            "tcpipctl", ["peers", "--name", "gamma"], environment: hub.environment)
        #expect(other.stdout.filter { $0 == "\n" }.count == 1)
        #expect((try Self.json(other.stdout) as? [[String: Any]])?.map { $0["name"] as? String } == ["alpha"])
        watcher.signal(SIGTERM)
        #expect(try await watcher.waitForExit() == 128 + SIGTERM)
        #expect(try await hub.stop() == 0)
    }

    @Test func watchSeesAJoinAndALeave() async throws {
        let hub = try await TestHub()
        let watcher = try RunningProgram(
            "tcpipctl", ["peers", "--watch", "--count", "2", "--name", "watcher"], environment: hub.environment)
        // Registered is watching (the wish is in its credentials); a probe to wait for it would be a join it sees.
        try await hub.program.waitForStderr(containing: " watcher role=")
        let ping = try await RunningProgram.run(
            "tcpipctl", ["ping", "--name", "visitor"], environment: hub.environment)
        #expect(ping.status == 0, "\(ping.stderr)")
        #expect(try await watcher.waitForExit() == 0, "\(watcher.stderr)")
        let events = try watcher.stdoutLines.map { try #require(try Self.json($0) as? [String: Any]) }
        #expect(events.map { $0["event"] as? String } == ["joined", "left"])
        #expect(events.map { ($0["peer"] as? [String: Any])?["name"] as? String } == ["visitor", "visitor"])
        #expect(events.last?["reason"] as? String == "left")
        try await hub.stop()
    }

    @Test func watchListsPeersAlreadyPresent() async throws {
        let hub = try await TestHub()
        let first = try RunningProgram(
            "tcpipctl", ["peers", "--watch", "--name", "first"], environment: hub.environment)
        try await hub.waitForPeers(["first"])
        let second = try RunningProgram(
            "tcpipctl", ["peers", "--watch", "--name", "second"], environment: hub.environment)
        let lines = try await second.waitForLines(1)
        let event = try #require(try Self.json(lines[0]) as? [String: Any])
        #expect(event["event"] as? String == "present")
        #expect((event["peer"] as? [String: Any])?["name"] as? String == "first")
        _ = first
        try await hub.stop()
    }

    @Test(arguments: [
        ("garbage", Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)),
        ("absurd length", [0xFF, 0xFF, 0xFF, 0xFF]),
        ("4 GiB minus one then body", [0xFF, 0xFF, 0xFF, 0xFE] + [UInt8](repeating: 0, count: 64)),
        ("truncated frame", [0x00, 0x00, 0x00, 0x40, 0x00, 0x04]),
        ("bad maskTo", Hex.bytes("0000000e 000b 0000 07 01 00000000 00000000")),
        ("packet before registration", Hex.bytes("0000000e 000b 0000 02 01 00000000 00000000")),
    ])
    func badInputClosesOnlyThatConnection(_ name: String, bytes: [UInt8]) async throws {
        let hub = try await TestHub()
        let bystander = try RunningProgram(
            "tcpipctl", ["peers", "--watch", "--name", "bystander"], environment: hub.environment)
        try await hub.waitForPeers(["bystander"])
        let socket = try RawSocket(port: hub.port)
        socket.send(bytes)
        if name == "truncated frame" {
            // A truncated frame is only known once the sender gives up; the registration deadline ends it.
            shutdown(socket.fd, Int32(SHUT_WR))
        }
        let (received, closed) = await socket.readToEnd()
        #expect(closed, "the hub should close a connection that sent \(name)")
        // The hub greeted it with RequestCredentials; for refused frames an Error (64) follows.
        var buffer = ByteBuffer(bytes: received)
        let first = try FrameParser().nextPacket(from: &buffer)
        #expect(first?.header.type == .requestCredentials)
        if name != "truncated frame" {
            let second = try FrameParser().nextPacket(from: &buffer)
            #expect(second?.header.type == .error)
        }
        // The hub goes on serving, and the bystander is still connected.
        let after = try await RunningProgram.run("tcpipctl", ["peers", "--name", "next"], environment: hub.environment)
        #expect(after.status == 0, "\(after.stderr)")
        #expect(after.stdout.contains("\"bystander\""))
        #expect(hub.program.isRunning)
        try await hub.stop()
        _ = bystander
    }

    @Test func aClientThatSendsAndHalfClosesGetsEveryAnswerBeforeTheHubCloses() async throws {
        let hub = try await TestHub()
        let bystander = try RunningProgram(
            "tcpipctl", ["peers", "--watch", "--name", "bystander"], environment: hub.environment)
        try await hub.waitForPeers(["bystander"])
        // Register, ask for a peer, and say no more (shutdown(SHUT_WR), as `nc -N` does): the hub answers both, then
        // closes.
        let socket = try RawSocket(port: hub.port)
        var bytes = Credentials(name: "halfclosed").packet(PacketHeader(type: .myCredentials, maskTo: .hub)).encoded()
        var query = PeerQuery(requestID: 7, name: "bystander").packet(PacketHeader(type: .peerQuery, maskTo: .hub))
            .encoded()
        bytes.writeBuffer(&query)
        socket.send(Array(bytes.readableBytesView))
        shutdown(socket.fd, Int32(SHUT_WR))
        let (received, closed) = await socket.readToEnd()
        #expect(closed)
        var buffer = ByteBuffer(bytes: received)
        var types: [PacketType] = []
        var answer: PeerQueryResult?
        while let packet = try FrameParser().nextPacket(from: &buffer) {
            types.append(packet.header.type)
            if packet.header.type == .peerQueryResult { answer = try PeerQueryResult(tlv: packet.payload) }
        }
        #expect(Array(types.prefix(2)) == [.requestCredentials, .registered], "\(types)")
        #expect(answer?.requestID == 7)
        #expect(answer?.peer?.name == "bystander")
        #expect(hub.program.isRunning)
        try await hub.stop()
        _ = bystander
    }

    @Test func unreachableHubExits69() async throws {
        // Bind a port and close it again: nothing listens there now.
        let hub = try await TestHub()
        let address = hub.address
        try await hub.stop()
        let result = try await RunningProgram.run("tcpipctl", ["peers", "--server", address])
        #expect(result.status == 69)
        #expect(result.stderr.contains("cannot reach the hub"))
        #expect(result.stdout.isEmpty)
    }

    @Test func tokenIsRequiredAndChecked() async throws {
        let hub = try await TestHub([], environment: ["TCPIP_TOKEN": "correct horse"])
        let none = try await RunningProgram.run("tcpipctl", ["peers"], environment: hub.environment)
        #expect(none.status == 77)
        let wrong = try await RunningProgram.run(
            "tcpipctl", ["peers"], environment: hub.environment.merging(["TCPIP_TOKEN": "battery"]) { $1 })
        #expect(wrong.status == 77)
        #expect(wrong.stderr.contains("token"))
        #expect(!wrong.stderr.contains("battery"))

        let directory = try Unprivileged.makeDirectory("tcpip-token")
        defer { try? FileManager.default.removeItem(at: directory) }
        let tokenFile = directory.appendingPathComponent("token")
        try "correct horse\n".write(to: tokenFile, atomically: true, encoding: .utf8)
        let right = try await RunningProgram.run(
            "tcpipctl", ["peers", "--token-file", tokenFile.path], environment: hub.environment)
        #expect(right.status == 0, "\(right.stderr)")
        let viaEnv = try await RunningProgram.run(
            "tcpipctl", ["peers"], environment: hub.environment.merging(["TCPIP_TOKEN_FILE": tokenFile.path]) { $1 })
        #expect(viaEnv.status == 0, "\(viaEnv.stderr)")
        let missingFile = try await RunningProgram.run(
            "tcpipctl", ["peers", "--token-file", "/nonexistent/token"], environment: hub.environment)
        #expect(missingFile.status == 66)
        #expect(!hub.program.stderr.contains("correct horse"))
        try await hub.stop()
    }

    @Test(arguments: [
        ["peers", "--server", "127.0.0.1:99999"],
        ["peers", "--server", "::1:9999"],
        ["peers", "--timeout", "0"],
        ["peers", "--count", "3"],
        ["peers", "--no-such-option"],
        ["ping", "--count", "-1"],
        ["peers", "--name", "bad\u{1b}name"],
        ["frobnicate"],
    ])
    func badUsageExits64(arguments: [String]) async throws {
        let result = try await RunningProgram.run("tcpipctl", arguments, environment: ["TCPIP_SERVER": "127.0.0.1:1"])
        #expect(result.status == 64, "\(arguments): \(result.stderr)")
        #expect(!result.stderr.isEmpty)
        #expect(result.stdout.isEmpty)
    }

    @Test func hubRefusesAPublicAddressWithoutTLSOrAWayToTellWhoJoins() async throws {
        let result = try await RunningProgram.run("tcpipd", ["--listen", "0.0.0.0:0"])
        #expect(result.status == 64)
        #expect(result.stderr.contains("without TLS"))
        #expect(result.stdout.isEmpty)
        let state = try Unprivileged.makeDirectory("hub-state")
        defer { try? FileManager.default.removeItem(at: state) }
        let open = try await RunningProgram.run(
            "tcpipd", ["--listen", "0.0.0.0:0", "--tls", "--state-dir", state.path + "/keys"])
        #expect(open.status == 64)
        #expect(open.stderr.contains("--authorized-peers"))
        #expect(open.stdout.isEmpty)
    }

    @Test func sigtermTellsConnectedClientsAndExitsZero() async throws {
        let hub = try await TestHub()
        let watcher = try RunningProgram("tcpipctl", ["peers", "--watch", "--name", "w"], environment: hub.environment)
        // Registered, not merely started: on a loaded machine 300 ms was not always enough to connect.
        try await hub.waitForPeers(["w"])
        #expect(try await hub.stop() == 0)
        #expect(try await watcher.waitForExit() == 75)
        #expect(watcher.stderr.contains("shutting down"))
    }

    @Test func pingTheHubAndAPeer() async throws {
        let hub = try await TestHub()
        let result = try await RunningProgram.run(
            "tcpipctl", ["ping", "--count", "3", "--interval", "0.01"], environment: hub.environment)
        #expect(result.status == 0, "\(result.stderr)")
        let replies = try result.stdout.split(separator: "\n").map {
            try #require(try Self.json(String($0)) as? [String: Any])
        }
        #expect(replies.map { $0["seq"] as? Int } == [1, 2, 3])
        #expect(
            replies.allSatisfy {
                ($0["rttMs"] as? Double ?? -1) >= 0 && $0["offsetMs"] is Double && $0["to"] as? String == "hub"
            })

        // A host name goes through the resolver; an address (above) connects directly.
        let byName = try await RunningProgram.run(
            "tcpipctl", ["ping", "--server", "localhost:\(hub.port)"], environment: hub.environment)
        #expect(byName.status == 0, "\(byName.stderr)")

        let peer = try RunningProgram(
            "tcpipctl", ["peers", "--watch", "--name", "echoer"], environment: hub.environment)
        try await hub.waitForPeers(["echoer"])
        let toPeer = try await RunningProgram.run("tcpipctl", ["ping", "--to", "echoer"], environment: hub.environment)
        #expect(toPeer.status == 0, "\(toPeer.stderr)")
        let reply = try #require(try Self.json(toPeer.stdout) as? [String: Any])
        #expect((reply["to"] as? [String: Any])?["name"] as? String == "echoer")

        let unknown = try await RunningProgram.run(
            "tcpipctl", ["ping", "--to", "nobody"], environment: hub.environment)
        #expect(unknown.status == 68)
        #expect(unknown.stderr.contains("nobody"))
        _ = peer
        try await hub.stop()
    }

    @Test func takenNamesAreRefusedButDefaultNamesAreMadeUnique() async throws {
        let hub = try await TestHub()
        let holder = try RunningProgram("tcpipctl", ["peers", "--watch"], environment: hub.environment)
        let named = try RunningProgram("tcpipctl", ["peers", "--watch", "--name", "ops"], environment: hub.environment)
        try await hub.waitForPeers(["ops"])
        let clash = try await RunningProgram.run("tcpipctl", ["peers", "--name", "ops"], environment: hub.environment)
        #expect(clash.status == 75)
        #expect(clash.stderr.contains("ops"))
        let viaEnv = try await RunningProgram.run(
            "tcpipctl", ["peers"], environment: hub.environment.merging(["TCPIP_NAME": "ops"]) { $1 })
        #expect(viaEnv.status == 75)
        let defaulted = try await RunningProgram.run(
            "tcpipctl", ["peers", "--include-self"], environment: hub.environment)
        #expect(defaulted.status == 0, "\(defaulted.stderr)")
        let names = (try Self.json(defaulted.stdout) as? [[String: Any]])?.compactMap { $0["name"] as? String } ?? []
        #expect(names.count == 3)
        #expect(names.contains { $0.contains("#") })
        _ = (holder, named)
        try await hub.stop()
    }

    @Test func unregisteredConnectionIsClosedAtTheDeadline() async throws {
        let hub = try await TestHub(["--registration-timeout", "0.3"])
        let socket = try RawSocket(port: hub.port)
        let started = SuspendingClock.now
        let (received, closed) = await socket.readToEnd()
        // Closed, not timed out: the raw socket stops reading after 10 s of silence, so this says "at the deadline,
        // not never" without timing a loaded two-core machine.
        #expect(closed, "still open \(seconds(since: started)) s after a 0.3 s deadline")
        var buffer = ByteBuffer(bytes: received)
        #expect(try FrameParser().nextPacket(from: &buffer)?.header.type == .requestCredentials)
        let error = try #require(try FrameParser().nextPacket(from: &buffer))
        #expect(try ErrorPayload(tlv: error.payload).code == .registrationTimeout)
        try await hub.stop()
    }

    @Test func jsonLogsAreOneObjectPerLine() async throws {
        let hub = try await TestHub(["--log-format", "json", "--log-level", "info"])
        let named = try await RunningProgram.run("tcpipctl", ["peers", "--name", "ünï"], environment: hub.environment)
        #expect(named.status == 0)
        try await hub.stop()
        let lines = hub.program.stderr.split(separator: "\n")
        #expect(lines.count >= 2)
        for line in lines {
            let object = try #require(try Self.json(String(line)) as? [String: Any], "\(line)")
            #expect(object["level"] is String)
            #expect(object["message"] is String)
        }
        #expect(hub.program.stderr.contains("ünï"))
    }

    @Test func versionIsTheSameEverywhere() async throws {
        let hubVersion = try await RunningProgram.run("tcpipd", ["--version"])
        let clientVersion = try await RunningProgram.run("tcpipctl", ["--version"])
        #expect(hubVersion.status == 0)
        #expect(!hubVersion.stdout.isEmpty)
        #expect(hubVersion.stdout == clientVersion.stdout)
    }
}
