import Foundation
import TCPIPTestSupport
import Testing

/// The team's C# stand-in for the seed article's original TCPIPClient (Tests/Classic/ClassicClient.cs, written from
/// SEED-WIRE.md with the original's StructLayout/MarshalAs classes), run with Mono against `tcpipd --classic-listen`:
/// commands on its stdin, events on its stdout.
final class ClassicClient: @unchecked Sendable {
    /// Builds the stand-in once per test run, off the test pool: `scripts/test` builds it first
    /// (.build/classic/classic-client.exe, used when it is newer than the source); otherwise it is built here, on a
    /// thread of its own (a build blocking pool threads stalled every test in the process on two cores).
    actor Build {
        static let shared = Build()
        private var task: Task<Result<String, TestFailure>, Never>?

        func executable() async throws -> String {
            let task = self.task ?? Task { await onItsOwnThread { Build.make() } }
            self.task = task
            return try await task.value.get()
        }

        private static func make() -> Result<String, TestFailure> {
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent()
            let source = root.appendingPathComponent("Tests/Classic/ClassicClient.cs").path
            let prebuilt = root.appendingPathComponent(".build/classic/classic-client.exe").path
            let files = FileManager.default
            if let built = try? files.attributesOfItem(atPath: prebuilt)[.modificationDate] as? Date,
                let written = try? files.attributesOfItem(atPath: source)[.modificationDate] as? Date, built >= written
            {
                return .success(prebuilt)
            }
            let directory = files.temporaryDirectory.appendingPathComponent("classic-\(getpid())")
            let build = Process()
            build.executableURL = root.appendingPathComponent("scripts/build-classic-client")
            build.arguments = [directory.path]
            build.standardOutput = FileHandle.nullDevice
            do {
                try build.run()
                build.waitUntilExit()
            } catch {
                return .failure(TestFailure("cannot run scripts/build-classic-client: \(error)"))
            }
            guard build.terminationStatus == 0 else {
                return .failure(TestFailure("scripts/build-classic-client failed (install mono-mcs mono-runtime)"))
            }
            // Readable by everyone: the stand-in may run as the unprivileged user.
            chmod(directory.path, 0o755)
            return .success(directory.appendingPathComponent("classic-client.exe").path)
        }
    }

    let program: RunningProgram
    let directory: URL
    let name: String

    init(port: Int, name: String, arguments: [String] = []) async throws {
        self.name = name
        directory = try Unprivileged.makeDirectory("classic")
        let executable = try await Build.shared.executable()
        program = try RunningProgram(
            "/usr/bin/mono",
            [executable, "--host", "127.0.0.1", "--port", String(port), "--name", name, "--dir", directory.path]
                + arguments)
    }

    func send(_ command: String) { program.write(command + "\n") }

    /// The first event line that starts with `prefix` (waiting for it).
    @discardableResult
    func waitFor(_ prefix: String, timeout: Double = 60) async throws -> String {
        let found = try await eventually(within: timeout, every: .milliseconds(20)) {
            self.program.stdoutLines.contains { $0.hasPrefix(prefix) } || !self.program.isRunning
        }
        guard found, let line = program.stdoutLines.first(where: { $0.hasPrefix(prefix) }) else {
            throw TestFailure(
                "\(name) printed no '\(prefix)' within \(timeout)s: \(program.stdoutLines.suffix(8)) \(program.stderr)")
        }
        return line
    }

    func lines(_ prefix: String) -> [String] { program.stdoutLines.filter { $0.hasPrefix(prefix) } }

    /// The id the hub gave it (from RequestCredentials), once it registered.
    func registeredID() async throws -> Int {
        let line = try await waitFor("id ")
        try await waitFor("registered")
        return Int(line.split(separator: " ")[1])!
    }

    /// The peer id it knows for `name` (its ClientData).
    func peerID(_ name: String) async throws -> Int {
        let line = try await waitFor("peer-add ")  // at least one
        _ = line
        let found = try await eventually(within: 60, every: .milliseconds(20)) {
            self.lines("peer-add ").contains { $0.split(separator: " ")[2] == name }
        }
        guard found, let entry = lines("peer-add ").first(where: { $0.split(separator: " ")[2] == name }) else {
            throw TestFailure("\(self.name) never saw \(name): \(program.stdoutLines)")
        }
        return Int(entry.split(separator: " ")[1])!
    }
}

/// A hub with a classic listener on loopback port 0.
struct ClassicHub {
    let hub: TestHub
    let classicPort: Int

    init(_ arguments: [String] = []) async throws {
        hub = try await TestHub(["--classic-listen", "127.0.0.1:0"] + arguments)
        let lines = try await hub.program.waitForLines(2)
        guard lines.count >= 2, lines[1].hasPrefix("classic clients on ") else {
            throw TestFailure("tcpipd did not say where classic clients go: \(lines)")
        }
        classicPort = Int(lines[1].split(separator: ":").last!)!
    }

    var environment: [String: String] { hub.environment }
}

@Suite struct ClassicEndToEndTests {
    static func objects(_ text: String) throws -> [[String: Any]] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]])
    }

    static func random(_ count: Int, seed: UInt64) -> [UInt8] {
        var generator = SeededGenerator(seed: seed)
        return generator.bytes(count)
    }

    @Test func aClassicClientJoinsTheRosterBothWays() async throws {
        let classicHub = try await ClassicHub()
        let environment = classicHub.environment
        let watcher = try RunningProgram(
            "tcpipctl", ["peers", "--watch", "--name", "watcher"], environment: environment)
        let ops = try RunningProgram("tcpipctl", ["listen", "--name", "ops"], environment: environment)
        try await classicHub.hub.waitForPeers(["ops", "watcher"])
        let olive = try await ClassicClient(
            port: classicHub.classicPort, name: "olive", arguments: ["--station", "desk"])
        let oliveID = try await olive.registeredID()
        // Our peers reach the classic client as ClientData with an IP literal, before Registered.
        let events = olive.program.stdoutLines
        let opsLine = try #require(events.first { $0.hasPrefix("peer-add ") && $0.contains(" ops ") })
        #expect(opsLine.contains(" 127.0.0.1 "))
        let registeredAt = try #require(events.firstIndex(of: "registered"))
        #expect(events.firstIndex(of: opsLine)! < registeredAt, "the roster comes before Registered")
        #expect(oliveID > 0 && oliveID <= 65535)

        // The classic client is a member: listed with wire classic and no key.
        try await classicHub.hub.waitForPeers(["olive"])
        let peers = try await RunningProgram.run("tcpipctl", ["peers", "--name", "lister"], environment: environment)
        let olivePeer = try #require(try Self.objects(peers.stdout).first { $0["name"] as? String == "olive" })
        #expect(olivePeer["wire"] as? String == "classic")
        #expect(olivePeer["role"] as? String == "classic")
        #expect(olivePeer["key"] is NSNull)
        #expect(olivePeer["host"] as? String == "desk")
        #expect(olivePeer["id"] as? Int == oliveID)

        // A peer that joins later, and one that leaves, reach it; the watcher sees it join and leave.
        let late = try RunningProgram("tcpipctl", ["listen", "--name", "late"], environment: environment)
        let lateID = try await olive.peerID("late")
        late.signal(SIGTERM)
        _ = try await late.waitForExit()
        try await olive.waitFor("peer-remove \(lateID)")
        olive.send("close")
        #expect(try await olive.program.waitForExit() == 0)
        let watched = try await eventually(within: 60, every: .milliseconds(20)) {
            watcher.stdoutLines.contains { $0.contains("\"left\"") && $0.contains("\"olive\"") }
        }
        #expect(watched, "\(watcher.stdoutLines)")
        #expect(watcher.stdoutLines.contains { $0.contains("\"joined\"") && $0.contains("\"wire\":\"classic\"") })
        ops.signal(SIGTERM)
        watcher.signal(SIGTERM)
        try await classicHub.hub.stop()
    }

    @Test func messagesGoBothWaysSplitAsTheOriginalSplitsThem() async throws {
        let classicHub = try await ClassicHub()
        let environment = classicHub.environment
        let ops = try RunningProgram("tcpipctl", ["listen", "--name", "ops", "--count", "2"], environment: environment)
        try await classicHub.hub.waitForPeers(["ops"])
        let olive = try await ClassicClient(port: classicHub.classicPort, name: "olive")
        _ = try await olive.registeredID()
        let opsID = try await olive.peerID("ops")

        // classic → tcpipctl listen: 674 characters cross as Start + Guts + Guts + End and arrive whole, once.
        olive.send("msg \(opsID) héllo wörld €5")
        olive.send("msgrep \(opsID) 674 x")
        #expect(try await ops.waitForExit() == 0, "\(ops.stderr)")
        let texts = try ops.stdoutLines.map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])["text"] as? String
        }
        #expect(texts == ["héllo wörld €5", String(repeating: "x", count: 674)])
        // Each message acknowledged the classic way: a MessageReceived from ops.
        let acked = try await eventually(within: 60, every: .milliseconds(20)) {
            olive.lines("ack \(opsID)").count == 2
        }
        #expect(acked, "\(olive.program.stdoutLines)")

        // tcpipctl send → classic: delivered once the classic client acknowledges; what it cannot carry is reported.
        let sent = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "olive", "--json", "--name", "sender"], environment: environment,
            stdin: Array("naïve → café\n".utf8))
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(sent.stdout.contains("\"status\":\"delivered\""))
        #expect(sent.stderr.contains("1 character the classic wire cannot carry"))
        let message = try await olive.waitFor("message ")
        #expect(message.hasSuffix(" 0 0 naïve ? café\\n"), "\(message)")
        olive.send("close")
        _ = try await olive.program.waitForExit()
        try await classicHub.hub.stop()
    }

    /// Over TLS one message to a keyed listener and a classic client: sealed for the listener, and the classic client
    /// (which proves no key) gets its own copy unsealed rather than nothing.
    @Test func overTLSAMessageIsSealedForKeyedRecipientsAndPlainForClassicOnes() async throws {
        let directory = try Unprivileged.makeDirectory("classic-tls")
        var ids: [String: String] = [:]
        for node in ["hub", "ops", "cron"] {
            let result = try await RunningProgram.run(
                "tcpipctl", ["id", "--state-dir", directory.appendingPathComponent(node).path])
            #expect(result.status == 0, "\(result.stderr)")
            ids[node] = result.stdout.trimmingCharacters(in: .newlines)
        }
        let classicHub = try await ClassicHub(["--tls", "--state-dir", directory.appendingPathComponent("hub").path])
        func environment(_ node: String) -> [String: String] {
            classicHub.environment.merging([
                "TCPIP_STATE_DIR": directory.appendingPathComponent(node).path, "TCPIP_HUB_ID": ids["hub"] ?? "",
            ]) { $1 }
        }
        let ops = try RunningProgram(
            "tcpipctl", ["listen", "--name", "ops", "--count", "1"], environment: environment("ops"))
        try await classicHub.hub.waitForPeers(["ops"], environment: environment("cron"))
        let olive = try await ClassicClient(port: classicHub.classicPort, name: "olive")
        _ = try await olive.registeredID()
        try await classicHub.hub.waitForPeers(["ops", "olive"], environment: environment("cron"))

        // A file cannot be sealed to some receivers and not others: to a keyed peer and a classic client at once it is
        // a usage error, and nothing is sent.
        let file = directory.appendingPathComponent("notes.txt")
        try Data("notes\n".utf8).write(to: file)
        try Unprivileged.handOver(file.path)
        let mixed = try await RunningProgram.run(
            "tcpipctl", ["send-file", file.path, "--to", "ops", "--to", "olive", "--name", "cron"],
            environment: environment("cron"))
        #expect(mixed.status == 64, "\(mixed.stderr)")
        #expect(mixed.stderr.contains("proves no key to seal to"), "\(mixed.stderr)")
        let dryRun = try await RunningProgram.run(
            "tcpipctl", ["send-file", "--dry-run", file.path, "--to", "ops", "--to", "olive", "--name", "cron"],
            environment: environment("cron"))
        #expect(dryRun.status == 64, "--dry-run refuses what a run would: \(dryRun.stderr)")
        #expect(olive.lines("file-received").isEmpty)

        let sent = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "ops", "--to", "olive", "--json", "--name", "cron"],
            environment: environment("cron"), stdin: Array("rotate the logs\n".utf8))
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(sent.stdout.components(separatedBy: "\"status\":\"delivered\"").count == 3, "\(sent.stdout)")
        #expect(try await ops.waitForExit() == 0, "\(ops.stderr)")
        let received = try #require(
            try JSONSerialization.jsonObject(with: Data((ops.stdoutLines.first ?? "").utf8)) as? [String: Any])
        #expect(received["text"] as? String == "rotate the logs\n")
        #expect(received["sealed"] as? Bool == true, "\(received)")
        let message = try await olive.waitFor("message ")
        #expect(message.hasSuffix(" rotate the logs\\n"), "\(message)")
        olive.send("close")
        _ = try await olive.program.waitForExit()
        try await classicHub.hub.stop()
    }

    @Test func filesGoBothWaysByteIdentical() async throws {
        let classicHub = try await ClassicHub()
        let environment = classicHub.environment
        let work = try Unprivileged.makeDirectory("classic-files")
        let spool = work.appendingPathComponent("spool")
        let receiver = try RunningProgram(
            "tcpiprecvd", ["--spool", spool.path, "--name", "archive", "--accept-classic"], environment: environment)
        try await classicHub.hub.waitForPeers(["archive"])
        let olive = try await ClassicClient(port: classicHub.classicPort, name: "olive")
        _ = try await olive.registeredID()
        let archiveID = try await olive.peerID("archive")

        // classic → tcpiprecvd: stored byte-identical, verified by size, acknowledged the classic way.
        let content = Self.random(250_000, seed: 1)
        let source = olive.directory.appendingPathComponent("outgoing.bin")
        try Data(content).write(to: source)
        chmod(olive.directory.path, 0o777)
        olive.send("file \(archiveID) \(source.path)")
        try await olive.waitFor("file-acked \(archiveID) outgoing.bin")
        let stored = try Data(contentsOf: spool.appendingPathComponent("outgoing.bin"))
        #expect(Array(stored) == content)
        let record = try #require(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: spool.appendingPathComponent(".tcpip/meta/outgoing.bin.json")))
                as? [String: Any])
        #expect(record["verified"] as? String == "size")
        #expect((record["from"] as? [String: Any])?["wire"] as? String == "classic")

        // tcpipctl send-file → classic: exit 0 once the classic client's DoneRecievingFile came back.
        let outgoing = work.appendingPathComponent("report.dat")
        let report = Self.random(102_400, seed: 2)
        try Data(report).write(to: outgoing)
        let empty = work.appendingPathComponent("empty.txt")
        try Data().write(to: empty)
        try Unprivileged.handOver(work.path)
        let sent = try await RunningProgram.run(
            "tcpipctl", ["send-file", "--to", "olive", "--json", "--compress", outgoing.path, empty.path],
            environment: environment)
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(sent.stdout.components(separatedBy: "\"status\":\"stored\"").count == 3, "\(sent.stdout)")
        try await olive.waitFor("file-received")
        let arrived = try Data(contentsOf: olive.directory.appendingPathComponent("report.dat"))
        #expect(Array(arrived) == report)
        #expect(FileManager.default.fileExists(atPath: olive.directory.appendingPathComponent("empty.txt").path))

        // What a classic client cannot take is refused before anything reaches it: stdin (no size), a tree.
        let piped = try await RunningProgram.run(
            "tcpipctl", ["send-file", "--to", "olive", "--as", "notes.txt", "-"], environment: environment,
            stdin: Array("x".utf8))
        #expect(piped.status == 77, "\(piped.stderr)")
        #expect(piped.stderr.contains("known size"))
        olive.send("close")
        _ = try await olive.program.waitForExit()
        receiver.signal(SIGTERM)
        _ = try await receiver.waitForExit()
        try await classicHub.hub.stop()
    }

    @Test func aReceiverRefusesClassicFilesUnlessTold() async throws {
        let classicHub = try await ClassicHub()
        let environment = classicHub.environment
        let spool = try Unprivileged.makeDirectory("classic-refused").appendingPathComponent("spool")
        let receiver = try RunningProgram(
            "tcpiprecvd", ["--spool", spool.path, "--name", "archive"], environment: environment)
        try await classicHub.hub.waitForPeers(["archive"])
        let olive = try await ClassicClient(port: classicHub.classicPort, name: "olive")
        _ = try await olive.registeredID()
        let archiveID = try await olive.peerID("archive")
        let source = olive.directory.appendingPathComponent("unwanted.bin")
        try Data(Self.random(5000, seed: 3)).write(to: source)
        olive.send("file \(archiveID) \(source.path)")
        try await olive.waitFor("file-sent")
        try await receiver.waitForStderr(containing: "refused file")
        #expect(!FileManager.default.fileExists(atPath: spool.appendingPathComponent("unwanted.bin").path))
        #expect(olive.lines("file-acked").isEmpty)
        olive.send("close")
        _ = try await olive.program.waitForExit()
        receiver.signal(SIGTERM)
        _ = try await receiver.waitForExit()
        try await classicHub.hub.stop()
    }

    @Test func pingsAreAnsweredAndHostExitingReachesClassicClients() async throws {
        let classicHub = try await ClassicHub(["--ping-interval", "0.5"])
        let environment = classicHub.environment
        let olive = try await ClassicClient(port: classicHub.classicPort, name: "olive")
        _ = try await olive.registeredID()
        // Pinged with .NET ticks of now, it answers every ping: still a member after many heartbeats.
        let pinged = try await eventually(within: 60, every: .milliseconds(50)) { olive.lines("ping ").count >= 6 }
        #expect(pinged)
        let ticks = Int64(try #require(olive.lines("ping ").first?.split(separator: " ")[1]))!
        let unix = Double(ticks - 621_355_968_000_000_000) / 1e7
        #expect(abs(unix - Date().timeIntervalSince1970) < 600)
        try await classicHub.hub.waitForPeers(["olive"])
        // A peer's ping through the hub is answered by the classic client itself.
        let ping = try await RunningProgram.run(
            "tcpipctl", ["ping", "--to", "olive", "--count", "1", "--name", "pinger"], environment: environment)
        #expect(ping.status == 0, "\(ping.stderr)")
        #expect(ping.stdout.contains("\"rttMs\""))
        // SIGTERM: HostExiting reaches it; it answers with Close and goes.
        classicHub.hub.program.signal(SIGTERM)
        try await olive.waitFor("host-exiting")
        #expect(try await olive.program.waitForExit() == 0)
        #expect(try await classicHub.hub.program.waitForExit() == 0)
    }

    @Test func theClassicListenerIsLoopbackUnlessToldOtherwise() async throws {
        let refused = try await RunningProgram.run(
            "tcpipd", ["--listen", "127.0.0.1:0", "--classic-listen", "0.0.0.0:0"])
        #expect(refused.status == 64)
        #expect(refused.stderr.contains("no encryption and no authentication"))
    }
}

extension ClassicEndToEndTests {
    /// Raw classic packets from an attacker's socket: each offender is closed or ignored, and a real classic client
    /// beside it goes on.
    @Test func hostileClassicPacketsCloseOnlyTheOffender() async throws {
        let classicHub = try await ClassicHub(["--registration-timeout", "2"])
        let environment = classicHub.environment
        let ops = try RunningProgram("tcpipctl", ["listen", "--name", "ops"], environment: environment)
        try await classicHub.hub.waitForPeers(["ops"])
        let olive = try await ClassicClient(port: classicHub.classicPort, name: "olive")
        _ = try await olive.registeredID()
        let opsID = try await olive.peerID("ops")

        func packet(_ type: UInt16, _ fill: (inout [UInt8]) -> Void = { _ in }) -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: 1024)
            bytes[0] = UInt8(type & 0xFF)
            bytes[1] = UInt8(type >> 8)
            fill(&bytes)
            return bytes
        }
        func put16(_ value: Int, _ offset: Int, _ bytes: inout [UInt8]) {
            bytes[offset] = UInt8(value & 0xFF)
            bytes[offset + 1] = UInt8(value >> 8 & 0xFF)
        }
        func put32(_ value: Int, _ offset: Int, _ bytes: inout [UInt8]) {
            for index in 0..<4 { bytes[offset + index] = UInt8(value >> (8 * index) & 0xFF) }
        }
        func attacker(_ name: String) async throws -> RawSocket {
            let socket = try RawSocket(port: classicHub.classicPort)
            let greeting = try #require(await socket.readExactly(1024), "no RequestCredentials")
            #expect(greeting[0] == 3)
            socket.send(packet(4) { bytes in bytes.replaceSubrange(874..<874 + name.utf8.count, with: name.utf8) })
            return socket
        }

        // A chunk size past 1010: closed.
        let chunky = try await attacker("chunky")
        chunky.send(
            packet(13) { bytes in
                put16(opsID, 2, &bytes)
                put16(5, 6, &bytes)
                put32(5000, 8, &bytes)
                bytes.replaceSubrange(12..<17, with: Array("x.bin".utf8))
            })
        chunky.send(
            packet(14) { bytes in
                put16(opsID, 2, &bytes)
                put16(5, 6, &bytes)
                put16(2000, 8, &bytes)
            })
        #expect(await chunky.readToEnd().closed, "closed for a chunk past 1010")

        // Forged server packets (a ClientDisconnecting of ops, a HostExiting), a message to an id that does not
        // exist, and an unknown type: dropped, the attacker stays, nobody else hears of them.
        let forger = try await attacker("forger")
        forger.send(packet(8) { bytes in put32(opsID, 12, &bytes) })
        forger.send(packet(6))
        forger.send(packet(11) { bytes in put32(60000, 8, &bytes) })
        forger.send(packet(999))
        // Then half a packet and EOF: dropped with the connection.
        forger.send(Array(packet(11).prefix(500)))
        forger.shutdownWrite()
        #expect(await forger.readToEnd().closed)

        // One that never answers RequestCredentials: closed at the registration deadline.
        let silent = try RawSocket(port: classicHub.classicPort)
        #expect(await silent.readToEnd().closed, "closed at --registration-timeout")

        // Through all of it the real classic client kept its place, and saw no forged departure.
        olive.send("msg \(opsID) still here")
        try await olive.waitFor("ack \(opsID)")
        #expect(olive.lines("peer-remove \(opsID)").isEmpty)
        #expect(olive.lines("host-exiting").isEmpty)
        try await classicHub.hub.waitForPeers(["olive", "ops"])
        olive.send("close")
        _ = try await olive.program.waitForExit()
        ops.signal(SIGTERM)
        try await classicHub.hub.stop()
    }
}
