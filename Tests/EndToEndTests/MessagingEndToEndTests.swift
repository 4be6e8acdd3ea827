import Foundation
import TCPIPTestSupport
import TCPIPWire
import Testing

/// `tcpipctl send` and `tcpipctl listen` through a real hub.
@Suite struct MessagingEndToEndTests {
    static func object(_ line: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    static func random(_ count: Int) -> [UInt8] {
        var generator = SeededGenerator(seed: UInt64(count))
        return generator.bytes(count)
    }

    /// A one-shot does not wait for the greeting, nor for Registered before it looks its recipient up: MyCredentials
    /// and the PeerQuery for the recipient leave at once, one behind the other, to a stand-in hub that says nothing.
    @Test func aOneShotSendsItsLookupRightBehindItsCredentials() async throws {
        let listener = try RawListener()
        let send = try RunningProgram(
            "tcpipctl", ["send", "--to", "sink", "--message", "hi", "--timeout", "10"],
            environment: ["TCPIP_SERVER": "127.0.0.1:\(listener.port)"])
        let socket = try #require(await listener.accept())
        let credentials = try #require(await socket.readFrame())
        #expect(credentials.type == 4, "MyCredentials first")
        let query = try #require(await socket.readFrame())
        #expect(query.type == 65, "then a PeerQuery, with no greeting sent")
        #expect(query.payload.count >= 4 && String(decoding: query.payload, as: UTF8.self).contains("sink"))
        send.signal(SIGKILL)
        _ = try await send.waitForExit()
    }

    @Test func textArrivesAsJSON() async throws {
        let hub = try await TestHub()
        let listener = try RunningProgram(
            "tcpipctl", ["listen", "--name", "ops", "--count", "1"], environment: hub.environment)
        let text = "df -h\nhéllo \u{1F680} \"quoted\"\t\n"
        let sent = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "ops", "--wait-for-peer", "10", "--json", "--name", "sender"],
            environment: hub.environment,
            stdin: Array(text.utf8)
        )
        #expect(sent.status == 0, "\(sent.stderr)")
        let summary = try Self.object(sent.stdout.trimmingCharacters(in: .newlines))
        #expect(summary["status"] as? String == "delivered")
        #expect(summary["bytes"] as? Int == text.utf8.count)
        #expect((summary["to"] as? [String: Any])?["name"] as? String == "ops")
        #expect(try await listener.waitForExit() == 0)
        let line = try Self.object(try #require(listener.stdoutLines.first))
        #expect(line["text"] as? String == text)
        #expect(line["bytes"] as? Int == text.utf8.count)
        #expect(line["to"] as? String == "me")
        #expect((line["from"] as? [String: Any])?["name"] as? String == "sender")
        #expect((line["receivedAt"] as? String)?.hasSuffix("Z") == true)
        try await hub.stop()
    }

    @Test func oneMebibyteOfRandomBytesArrivesByteIdentical() async throws {
        let hub = try await TestHub()
        let payload = Self.random(1 << 20)
        let raw = try RunningProgram(
            "tcpipctl", ["listen", "--name", "raw", "--raw", "--separator", "", "--count", "1"],
            environment: hub.environment)
        let json = try RunningProgram(
            "tcpipctl", ["listen", "--name", "json", "--count", "1"], environment: hub.environment)
        let sent = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "raw", "--to", "json", "--wait-for-peer", "10"], environment: hub.environment,
            stdin: payload
        )
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(try await raw.waitForExit() == 0)
        #expect(raw.stdoutBytes == payload)
        #expect(try await json.waitForExit() == 0)
        let line = try Self.object(json.stdout.trimmingCharacters(in: .newlines))
        #expect(line["text"] == nil)
        #expect(Data(base64Encoded: try #require(line["base64"] as? String)).map(Array.init) == payload)
        try await hub.stop()
    }

    @Test func linesArriveInOrder() async throws {
        let hub = try await TestHub()
        let count = 10_000
        let listener = try RunningProgram(
            "tcpipctl", ["listen", "--name", "lines", "--raw", "--count", "\(count)"], environment: hub.environment)
        let input = (1...count).map { "line \($0)\n" }.joined()
        let sent = try await RunningProgram.run(
            "tcpipctl", ["send", "--lines", "--to", "lines", "--wait-for-peer", "10", "--json"],
            environment: hub.environment,
            stdin: Array(input.utf8), timeout: 120
        )
        #expect(sent.status == 0, "\(sent.stderr)")
        let summary = try Self.object(sent.stdout.trimmingCharacters(in: .newlines))
        #expect(summary["messages"] as? Int == count)
        #expect(try await listener.waitForExit(timeout: 60) == 0)
        #expect(listener.stdout == input)
        try await hub.stop()
    }

    @Test func allReachesEveryListener() async throws {
        let hub = try await TestHub()
        let first = try RunningProgram(
            "tcpipctl", ["listen", "--name", "l1", "--count", "1"], environment: hub.environment)
        let second = try RunningProgram(
            "tcpipctl", ["listen", "--name", "l2", "--count", "1"], environment: hub.environment)
        let bystander = try RunningProgram(
            "tcpipctl", ["peers", "--watch", "--name", "bystander"], environment: hub.environment)
        try await hub.waitForPeers(["l1", "l2", "bystander"])
        let sent = try await RunningProgram.run(
            "tcpipctl", ["send", "--all", "-m", "to everyone", "--json"], environment: hub.environment)
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(sent.stdout.split(separator: "\n").count == 2)
        for listener in [first, second] {
            #expect(try await listener.waitForExit() == 0)
            let line = try Self.object(listener.stdout.trimmingCharacters(in: .newlines))
            #expect(line["text"] as? String == "to everyone")
            #expect(line["to"] as? String == "all")
        }
        _ = bystander
        try await hub.stop()
    }

    @Test func unknownPeerFailsBeforeAnythingIsSent() async throws {
        let hub = try await TestHub()
        let listener = try RunningProgram(
            "tcpipctl", ["listen", "--name", "known", "--raw", "--count", "1"], environment: hub.environment)
        try await hub.waitForPeers(["known"])
        let failed = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "known", "--to", "nobody", "-m", "first"], environment: hub.environment)
        #expect(failed.status == 68)
        #expect(failed.stderr.contains("nobody"))
        let second = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "known", "-m", "second"], environment: hub.environment)
        #expect(second.status == 0)
        #expect(try await listener.waitForExit() == 0)
        #expect(listener.stdout == "second\n")
        try await hub.stop()
    }

    @Test func listenerKilledMidMessageMakesTheSenderExit75() async throws {
        let hub = try await TestHub()
        let listener = try RunningProgram("tcpipctl", ["listen", "--name", "victim"], environment: hub.environment)
        try await hub.waitForPeers(["victim"])
        // Its own timeout far past the bound below: the sender must not merely time out.
        let sender = try RunningProgram(
            "tcpipctl", ["send", "--to", "victim", "--timeout", "600"], environment: hub.environment)
        sender.write(Self.random(100_000))
        try await Task.sleep(for: .milliseconds(300))
        listener.signal(SIGKILL)
        _ = try await listener.waitForExit()
        // stdin stays open: the sender must notice the recipient is gone by itself.
        #expect(try await sender.waitForExit(timeout: 60) == 75)
        #expect(sender.stderr.contains("victim"))
        sender.closeStdin()
        try await hub.stop()
    }

    @Test func listenIntoHeadExitsCleanly() async throws {
        let hub = try await TestHub()
        let pipeline = try RunningProgram(
            "/bin/bash",
            ["-c", "'\(BuiltPrograms.path("tcpipctl"))' listen --name head | head -n 1; echo \"rc=${PIPESTATUS[0]}\""],
            environment: hub.environment
        )
        try await hub.waitForPeers(["head"])
        let first = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "head", "-m", "one"], environment: hub.environment)
        #expect(first.status == 0)
        // head has exited, and listen with it (it watches its stdout): the next message finds nobody to take it.
        #expect(try await pipeline.waitForExit() == 0)
        let second = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "head", "-m", "two", "--timeout", "45"], environment: hub.environment)
        #expect(second.status == 68)
        #expect(pipeline.stdoutLines.count == 2)
        #expect(pipeline.stdoutLines.last == "rc=0")
        #expect(!pipeline.stderr.contains("rror"))
        try await hub.stop()
    }

    @Test func waitForPeerSucceedsWhenThePeerJoinsLate() async throws {
        let hub = try await TestHub()
        let sender = try RunningProgram(
            "tcpipctl", ["send", "--to", "late", "--wait-for-peer", "60", "-m", "waited"], environment: hub.environment)
        try await Task.sleep(for: .milliseconds(500))
        let listener = try RunningProgram(
            "tcpipctl", ["listen", "--name", "late", "--raw", "--count", "1"], environment: hub.environment)
        #expect(try await sender.waitForExit() == 0, "\(sender.stderr)")
        #expect(try await listener.waitForExit() == 0)
        #expect(listener.stdout == "waited\n")
        try await hub.stop()
    }

    @Test func waitForPeerFailsWith68WhenThePeerNeverComes() async throws {
        let hub = try await TestHub()
        let started = SuspendingClock.now
        let result = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "ghost", "--wait-for-peer", "0.5", "-m", "x"], environment: hub.environment)
        #expect(result.status == 68)
        #expect(seconds(since: started) >= 0.5)
        #expect(result.stderr.contains("ghost"))
        try await hub.stop()
    }

    @Test func messagesOverTheLimitAreRefused() async throws {
        let hub = try await TestHub()
        let listener = try RunningProgram(
            "tcpipctl", ["listen", "--name", "small", "--max-message-size", "100"], environment: hub.environment)
        try await hub.waitForPeers(["small"])
        let local = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "small", "--max-message-size", "10", "-m", "more than ten bytes"],
            environment: hub.environment)
        #expect(local.status == 65)
        #expect(local.stderr.contains("send-file"))
        let remote = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "small"], environment: hub.environment, stdin: Self.random(1000))
        // The recipient's size cap is its policy: 77, as for a file over --max-file-size.
        #expect(remote.status == 77)
        #expect(remote.stderr.contains("too-large"))
        #expect(listener.stdout.isEmpty)
        try await hub.stop()
    }

    @Test func peersThatDoNotTakeMessagesRefuseThem() async throws {
        let hub = try await TestHub()
        let watcher = try RunningProgram(
            "tcpipctl", ["peers", "--watch", "--name", "watcher"], environment: hub.environment)
        try await hub.waitForPeers(["watcher"])
        let picky = try RunningProgram(
            "tcpipctl", ["listen", "--name", "picky", "--from", "watcher"], environment: hub.environment)
        try await hub.waitForPeers(["watcher", "picky"])
        let toWatcher = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "watcher", "-m", "x"], environment: hub.environment)
        #expect(toWatcher.status == 77)
        let toPicky = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "picky", "-m", "x"], environment: hub.environment)
        #expect(toPicky.status == 77)
        #expect(picky.stdout.isEmpty)
        _ = watcher
        try await hub.stop()
    }

    @Test func applicationTypesPassThroughTheHub() async throws {
        let hub = try await TestHub()
        let listener = try RunningProgram(
            "tcpipctl", ["listen", "--name", "app", "--type", "5000", "--count", "1"], environment: hub.environment)
        try await hub.waitForPeers(["app"])
        let sent = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "app", "--type", "5000", "-m", "custom packet"], environment: hub.environment)
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(try await listener.waitForExit() == 0)
        let line = try Self.object(listener.stdout.trimmingCharacters(in: .newlines))
        #expect(line["type"] as? Int == 5000)
        #expect(line["text"] as? String == "custom packet")
        let badType = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "app", "--type", "12", "-m", "x"], environment: hub.environment)
        #expect(badType.status == 64)
        try await hub.stop()
    }

    @Test func noWaitReturnsOnceTheHubHasIt() async throws {
        let hub = try await TestHub()
        let listener = try RunningProgram(
            "tcpipctl", ["listen", "--name", "nw", "--raw", "--count", "1"], environment: hub.environment)
        try await hub.waitForPeers(["nw"])
        let sent = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "nw", "--no-wait", "-m", "fire and forget"], environment: hub.environment)
        #expect(sent.status == 0)
        #expect(try await listener.waitForExit() == 0)
        #expect(listener.stdout == "fire and forget\n")
        try await hub.stop()
    }

    @Test(arguments: [
        ["send", "-m", "x"],
        ["send", "--to", "a", "--all", "-m", "x"],
        ["send", "--to", "a", "-m", "x", "--lines"],
        ["listen", "--count", "0"],
    ])
    func badUsageExits64(arguments: [String]) async throws {
        let result = try await RunningProgram.run("tcpipctl", arguments, environment: ["TCPIP_SERVER": "127.0.0.1:1"])
        #expect(result.status == 64, "\(arguments): \(result.stderr)")
    }
}
