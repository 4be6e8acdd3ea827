import Foundation
import TCPIPTestSupport
import Testing

/// Resume: a transfer that broke off (the sender or the receiver killed with SIGKILL) continues where it stopped when
/// the same command runs again, and only the rest crosses the wire. One at a time: each moves hundreds of MiB, and
/// in parallel they starve the timing-bound tests of the other suites on two cores.
@Suite(.serialized) struct ResumeEndToEndTests {
    typealias Fixture = FileTransferEndToEndTests.Fixture
    static let size = 128 << 20

    /// The bytes the receiver holds of the transfer in progress (its partial file), if any.
    static func held(_ fixture: Fixture) -> Int { held(spool: fixture.spool) }

    static func held(spool: String) -> Int {
        let directory = spool + "/.tcpip/partial"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap {
            (try? FileManager.default.attributesOfItem(atPath: directory + "/" + $0))?[.size] as? Int
        }.max() ?? 0
    }

    enum Victim { case sender, receiver, hub }

    /// Starts `send-file` and SIGKILLs `victim` once the receiver holds a quarter of the file. Returns the sender's
    /// exit status and its stderr. The sender runs in slices and is stopped while the receiver's share is looked at:
    /// on a loaded machine a plain poll once saw the whole transfer finish between two looks.
    @discardableResult
    static func interrupt(_ fixture: Fixture, _ path: String, killing victim: Victim = .sender) async throws
        -> (status: Int32, stderr: String)
    {
        let sender = try RunningProgram(
            "tcpipctl", ["send-file", path, "--to", "archive", "--json", "--timeout", "60"],
            environment: fixture.environment())
        let spool = fixture.spool
        guard await sender.stop(when: { Self.held(spool: spool) >= Self.size / 4 }) else {
            sender.signal(SIGKILL)
            let status = try await sender.waitForExit()
            throw TestFailure(
                "the transfer never got a quarter in (held \(Self.held(fixture)), sender status \(status)): "
                    + "\(sender.stdout) \(sender.stderr)")
        }
        switch victim {
        case .sender:
            sender.signal(SIGKILL)
        case .receiver:
            fixture.receiver?.signal(SIGKILL)
            _ = try await fixture.receiver?.waitForExit()
        case .hub:
            fixture.hub.program.signal(SIGKILL)
            _ = try await fixture.hub.program.waitForExit()
        }
        sender.signal(SIGCONT)
        let status = try await sender.waitForExit()
        return (status, sender.stderr)
    }

    static func summary(_ text: String) throws -> [String: Any] {
        let line = text.split(separator: "\n").last.map(String.init) ?? ""
        return try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
    }

    /// Over TLS, so sealed: each run seals with a file key of its own, and the receiver's verified prefix (plain
    /// bytes) is where the second one starts.
    @Test func aSenderKilledHalfWaySendsOnlyTheRestTheSecondTime() async throws {
        let fixture = try await Fixture(sealed: true)
        try await fixture.startReceiver()
        let content = FileTransferEndToEndTests.random(Self.size, seed: 11)
        let path = try fixture.file("big.bin", content)
        try await Self.interrupt(fixture, path)
        let again = try await fixture.sendFile([path, "--to", "archive", "--json"])
        #expect(again.status == 0, "\(again.stderr)")
        let summary = try Self.summary(again.stdout)
        let resumed = summary["resumedFrom"] as? Int ?? 0
        let wire = summary["wireBytes"] as? Int ?? Int.max
        #expect(resumed >= Self.size / 8, "resumed from \(resumed)")
        #expect(wire <= Self.size - resumed + (1 << 20), "\(wire) bytes crossed the second time, \(resumed) were held")
        #expect(fixture.spooled("big.bin") == content)
        let record = try String(contentsOfFile: fixture.spool + "/.tcpip/meta/big.bin.json", encoding: .utf8)
        #expect(record.contains("\"sealed\":true"), "\(record)")
        // The receipt crosses the hub: for a sealed file it does not name what the receiver stored it as.
        let result = try #require(
            try JSONSerialization.jsonObject(
                with: Data(again.stdout.split(separator: "\n").first.map(String.init)?.utf8 ?? "".utf8))
                as? [String: Any])
        #expect(result["status"] as? String == "stored" && result["storedAs"] is NSNull, "\(result)")
        #expect(Self.held(fixture) == 0, "the partial file was published, not left behind")
        #expect(
            (try? FileManager.default.contentsOfDirectory(atPath: fixture.spool + "/.tcpip/partial"))?.isEmpty == true,
            "nor its record")
        try await fixture.stop()
    }

    @Test func aReceiverKilledAndRestartedResumesToo() async throws {
        let fixture = try await Fixture(sealed: true)
        try await fixture.startReceiver()
        let content = FileTransferEndToEndTests.random(Self.size, seed: 12)
        let path = try fixture.file("big.bin", content)
        let first = try await Self.interrupt(fixture, path, killing: .receiver)
        #expect(first.status == 75, "\(first.stderr)")
        // The hub drops the killed receiver when its connection ends; the new one may register its name after that.
        for _ in 0..<300 {
            let peers = try await RunningProgram.run("tcpipctl", ["peers"], environment: fixture.environment())
            if !peers.stdout.contains("\"archive\"") { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        try await fixture.startReceiver()
        let again = try await fixture.sendFile([path, "--to", "archive", "--json"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try Self.summary(again.stdout)["resumedFrom"] as? Int ?? 0 > 0)
        #expect(fixture.spooled("big.bin") == content)
        try await fixture.stop()
    }

    /// The hub SIGKILLed mid-transfer and started again on the same address: the receiver reconnects, keeps what it
    /// had, and the rerun resumes.
    @Test func aHubKilledAndRestartedResumesToo() async throws {
        let fixture = try await Fixture(sealed: true)
        try await fixture.startReceiver()
        let content = FileTransferEndToEndTests.random(Self.size, seed: 15)
        let path = try fixture.file("big.bin", content)
        let sender = try await Self.interrupt(fixture, path, killing: .hub)
        #expect(sender.status == 75, "\(sender.stderr)")
        let hub = try await TestHub(fixture.tlsArguments + ["--listen", fixture.hub.address])
        try await hub.waitForPeers(["archive"], timeout: 60, environment: fixture.environment("probe", hub: hub))
        let again = try await RunningProgram.run(
            "tcpipctl", ["send-file", path, "--to", "archive", "--json"],
            environment: fixture.environment(hub: hub), timeout: 60)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try Self.summary(again.stdout)["resumedFrom"] as? Int ?? 0 > 0)
        #expect(fixture.spooled("big.bin") == content)
        fixture.receiver?.signal(SIGTERM)
        _ = try await fixture.receiver?.waitForExit()
        try await hub.stop()
    }

    /// The same content under the same name twice in one batch: the second start of a resumable file must never open
    /// the partial file of the first while that one is being published (a review found it could, and truncate it).
    @Test func theSameFileTwiceInOneBatchIsStoredIntact() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver()
        let content = FileTransferEndToEndTests.random(8 << 20, seed: 14)
        for directory in ["a", "b"] {
            try FileManager.default.createDirectory(
                atPath: fixture.directory.appendingPathComponent(directory).path, withIntermediateDirectories: true)
            _ = try fixture.file("\(directory)/big.bin", content)
        }
        let paths = ["a", "b"].map { fixture.directory.appendingPathComponent("\($0)/big.bin").path }
        for _ in 0..<3 {
            let sent = try await fixture.sendFile(paths + ["--to", "archive"])
            #expect(sent.status == 0, "\(sent.stderr)")
        }
        for name in fixture.visible {
            #expect(fixture.spooled(name) == content, "\(name)")
        }
        #expect(fixture.visible.contains("big.bin"))
        try await fixture.stop()
    }

    /// What the receiver holds no longer matches the sender's file (damaged on the receiver's disk): the sender sees
    /// that the prefix's SHA-256 differs, answers FileSeek 0, and the whole file crosses again — never a mixed file.
    @Test func aHeldPrefixThatDiffersIsSentAgainWhole() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver()
        let content = FileTransferEndToEndTests.random(Self.size, seed: 16)
        let path = try fixture.file("big.bin", content)
        try await Self.interrupt(fixture, path)
        let directory = fixture.spool + "/.tcpip/partial"
        let partial = try #require(
            try FileManager.default.contentsOfDirectory(atPath: directory).first { !$0.hasSuffix(".json") })
        // The state record beside it says what it is.
        let record = try JSONSerialization.jsonObject(
            with: try #require(FileManager.default.contents(atPath: directory + "/" + partial + ".json")))
        #expect((record as? [String: Any])?["sentAs"] as? String == "big.bin")
        #expect((record as? [String: Any])?["size"] as? Int == Self.size)
        let handle = try #require(FileHandle(forWritingAtPath: directory + "/" + partial))
        try handle.write(contentsOf: Data(repeating: 0xA5, count: 4096))
        try handle.close()
        let again = try await fixture.sendFile([path, "--to", "archive", "--json"])
        #expect(again.status == 0, "\(again.stderr)")
        let summary = try Self.summary(again.stdout)
        #expect(summary["resumedFrom"] as? Int == 0)
        #expect(summary["wireBytes"] as? Int == Self.size)
        #expect(fixture.spooled("big.bin") == content)
        try await fixture.stop()
    }

    /// A file changed between the two runs is another file (its SHA-256 differs): it starts from zero, and the stored
    /// file is the new one, never a mix.
    @Test func aFileChangedBetweenRunsStartsFromZero() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver()
        var content = FileTransferEndToEndTests.random(Self.size, seed: 13)
        let path = try fixture.file("big.bin", content)
        try await Self.interrupt(fixture, path)
        content[0] ^= 0xFF
        content[content.count - 1] ^= 0xFF
        _ = try fixture.file("big.bin", content)
        let again = try await fixture.sendFile([path, "--to", "archive", "--json"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try Self.summary(again.stdout)["resumedFrom"] as? Int == 0)
        #expect(fixture.spooled("big.bin") == content)
        try await fixture.stop()
    }
}
