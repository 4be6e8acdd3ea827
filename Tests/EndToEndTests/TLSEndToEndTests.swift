import Foundation
import TCPIPTestSupport
import Testing

/// Two machines' worth of set-up on loopback, each node with its own state directory: a hub with
/// `--authorized-peers`, a receiver and a cron sender, over TLS 1.3 with pinned keys — and what an attacker tries.
@Suite struct TLSEndToEndTests {
    final class Scene: @unchecked Sendable {
        let directory: URL
        let hub: TestHub
        let hubID: String
        /// Node IDs by state directory name.
        var ids: [String: String] = [:]
        var peersFile: String { directory.appendingPathComponent("authorized_peers").path }
        var spool: String { directory.appendingPathComponent("spool").path }
        var receiver: RunningProgram?

        /// `lines` become the authorized-peers file, with `{name}` replaced by that node's ID.
        init(peers lines: [String] = ["{recv} archive receiver", "{cron} cron"], hubArguments: [String] = [])
            async throws
        {
            let directory = try Unprivileged.makeDirectory("tls")
            self.directory = directory
            var ids: [String: String] = [:]
            for node in ["hub", "recv", "cron", "stranger"] {
                let result = try await RunningProgram.run(
                    "tcpipctl", ["id", "--state-dir", directory.appendingPathComponent(node).path])
                guard result.status == 0 else { throw TestFailure("id for \(node): \(result.stderr)") }
                ids[node] = result.stdout.trimmingCharacters(in: .newlines)
            }
            self.ids = ids
            hubID = ids["hub"] ?? ""
            let text = lines.map { line in
                ids.reduce(line) { $0.replacingOccurrences(of: "{\($1.key)}", with: $1.value) }
            }.joined(separator: "\n")
            try Data((text + "\n").utf8).write(
                to: URL(fileURLWithPath: directory.appendingPathComponent("authorized_peers").path))
            try Unprivileged.handOver(directory.appendingPathComponent("authorized_peers").path)
            hub = try await TestHub(
                [
                    "--authorized-peers", directory.appendingPathComponent("authorized_peers").path, "--state-dir",
                    directory.appendingPathComponent("hub").path,
                ] + hubArguments)
        }

        deinit { try? FileManager.default.removeItem(at: directory) }

        /// The environment of a client whose key lives in state directory `node`, pinned to the hub.
        func environment(_ node: String, pinned: Bool = true) -> [String: String] {
            var environment = hub.environment
            environment["TCPIP_STATE_DIR"] = directory.appendingPathComponent(node).path
            if pinned { environment["TCPIP_HUB_ID"] = hubID }
            return environment
        }

        func run(_ node: String, _ arguments: [String], environment extra: [String: String] = [:]) async throws -> (
            status: Int32, stdout: String, stderr: String
        ) {
            try await RunningProgram.run(
                "tcpipctl", arguments, environment: environment(node).merging(extra) { $1 }, timeout: 30)
        }

        func startReceiver() async throws {
            receiver = try RunningProgram(
                "tcpiprecvd", ["--spool", spool, "--name", "archive"], environment: environment("recv"))
            let registered = try await eventually(every: .milliseconds(50)) {
                try await run("cron", ["peers", "--name", "cron"]).stdout.contains("\"archive\"")
            }
            if !registered { throw TestFailure("the receiver did not register: \(receiver?.stderr ?? "")") }
        }

        func file(_ name: String, _ text: String) throws -> String {
            let path = directory.appendingPathComponent(name).path
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            return path
        }

        func stop() async throws {
            receiver?.signal(SIGTERM)
            if let receiver { #expect(try await receiver.waitForExit() == 0, "\(receiver.stderr)") }
            try await hub.stop()
        }
    }

    static func object(_ text: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] ?? [:]
    }

    @Test func aFileCrossesOverTLSAndEveryoneIsKnownByKey() async throws {
        let scene = try await Scene()
        try await scene.startReceiver()
        let path = try scene.file("report.csv", "a,b\n1,2\n")
        let sent = try await scene.run("cron", ["send-file", path, "--to", "archive", "--name", "cron"])
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(FileManager.default.contents(atPath: scene.spool + "/report.csv") == Data("a,b\n1,2\n".utf8))
        // The metadata record names the sender's proved key beside its name.
        let record = try Self.object(
            String(
                decoding: FileManager.default.contents(atPath: scene.spool + "/.tcpip/meta/report.csv.json") ?? Data(),
                as: UTF8.self))
        let from = record["from"] as? [String: Any]
        #expect(from?["name"] as? String == "cron")
        #expect(from?["key"] as? String == scene.ids["cron"])
        // peers shows each peer's key; a default name (USER@HOST) registers the name the key owns.
        let peers = try await scene.run("cron", ["peers"])
        #expect(peers.status == 0, "\(peers.stderr)")
        let list = try JSONSerialization.jsonObject(with: Data(peers.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(list.first { $0["name"] as? String == "archive" }?["key"] as? String == scene.ids["recv"])
        #expect(scene.hub.program.stderr.contains("registered") && scene.hub.program.stderr.contains("cron"))
        try await scene.stop()
    }

    /// --allow-from KEYID holds only for the key's holder; the sender's name does not satisfy it.
    @Test func allowFromAKeyIDTakesOnlyThatKey() async throws {
        let scene = try await Scene(peers: [
            "{recv} archive receiver", "{recv} picky receiver", "{recv} strict receiver", "{cron} cron",
        ])
        let picky = try RunningProgram(
            "tcpiprecvd",
            ["--spool", scene.spool + "-picky", "--name", "picky", "--allow-from", scene.ids["cron"] ?? ""],
            environment: scene.environment("recv"))
        let strict = try RunningProgram(
            "tcpiprecvd",
            ["--spool", scene.spool + "-strict", "--name", "strict", "--allow-from", scene.ids["stranger"] ?? ""],
            environment: scene.environment("recv"))
        let path = try scene.file("k.txt", "key")
        let taken = try await scene.run("cron", ["send-file", path, "--to", "picky", "--wait-for-peer", "10"])
        #expect(taken.status == 0, "\(taken.stderr)")
        let refused = try await scene.run("cron", ["send-file", path, "--to", "strict", "--wait-for-peer", "10"])
        #expect(refused.status == 77, "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: scene.spool + "-strict/k.txt"))
        for receiver in [picky, strict] {
            receiver.signal(SIGTERM)
            #expect(try await receiver.waitForExit() == 0)
        }
        try await scene.stop()
    }

    @Test func wrongKeysAndWrongHubsAreRefusedWith77() async throws {
        let scene = try await Scene()
        try await scene.startReceiver()
        // The cron key asking for the receiver's name; a key nobody listed.
        let stolen = try await scene.run("cron", ["peers", "--name", "archive"])
        #expect(stolen.status == 77, "\(stolen.stderr)")
        #expect(stolen.stderr.contains("may register only as 'cron'"))
        let stranger = try await scene.run("stranger", ["peers", "--name", "cron"])
        #expect(stranger.status == 77, "\(stranger.stderr)")
        #expect(scene.hub.program.stderr.contains(scene.ids["stranger"] ?? "?"), "the operator sees the key to paste")
        // A client pinned to this hub that reaches another hub (its own key, its own state): refused before anything
        // is sent, naming both keys.
        let impostorState = scene.directory.appendingPathComponent("impostor").path
        let impostorID = try await RunningProgram.run("tcpipd", ["id", "--state-dir", impostorState]).stdout
            .trimmingCharacters(in: .newlines)
        let impostor = try await TestHub(["--tls", "--state-dir", impostorState])
        var environment = scene.environment("cron")
        environment["TCPIP_SERVER"] = impostor.address
        let fooled = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "archive", "-m", "secret"], environment: environment, timeout: 30)
        #expect(fooled.status == 77, "\(fooled.stderr)")
        #expect(fooled.stderr.contains(scene.hubID))
        #expect(fooled.stderr.contains(impostorID), "both keys are named")
        #expect(!impostor.program.stderr.contains("registered"), "the impostor saw a registration")
        try await impostor.stop()
        // The receiver was never disturbed.
        let peers = try await scene.run("cron", ["peers", "--name", "cron"])
        #expect(peers.stdout.contains("\"archive\""))
        try await scene.stop()
    }

    @Test func plaintextAndTLSMismatchesEndWithAClearErrorNotAHang() async throws {
        let scene = try await Scene(hubArguments: ["--registration-timeout", "1"])
        // A plaintext client against the TLS hub: its MyCredentials is no ClientHello, and the hub answers with a TLS
        // alert, which the client recognises.
        var plain = scene.hub.environment
        plain["TCPIP_STATE_DIR"] = scene.directory.appendingPathComponent("cron").path
        let started = SuspendingClock.now
        let mismatch = try await RunningProgram.run("tcpipctl", ["peers"], environment: plain, timeout: 30)
        #expect(mismatch.status == 69, "\(mismatch.stderr)")
        #expect(mismatch.stderr.contains("TLS"))
        #expect(seconds(since: started) < 10)
        // A TLS client against a plaintext hub.
        let plainHub = try await TestHub()
        var pinned = scene.environment("cron")
        pinned["TCPIP_SERVER"] = plainHub.address
        let reverse = try await RunningProgram.run("tcpipctl", ["peers"], environment: pinned, timeout: 30)
        #expect(reverse.status == 69, "\(reverse.stderr)")
        #expect(reverse.stderr.contains("plaintext hub"))
        try await plainHub.stop()
        // Garbage instead of a ClientHello, and a ClientHello that stops half-way: closed, at the latest at the
        // registration deadline, and the hub serves the next client.
        let garbage = try RawSocket(port: scene.hub.port)
        garbage.send(Array("GET / HTTP/1.1\r\n\r\n".utf8))
        #expect(await garbage.readToEnd().closed)
        let stall = try RawSocket(port: scene.hub.port)
        stall.send([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        #expect(await stall.readToEnd().closed)
        let after = try await scene.run("cron", ["peers", "--name", "cron"])
        #expect(after.status == 0, "\(after.stderr)")
        try await scene.stop()
    }

    @Test func editingAuthorizedPeersTakesEffectWithoutDroppingAnyone() async throws {
        let scene = try await Scene()
        try await scene.startReceiver()
        let path = try scene.file("a.txt", "one")
        #expect(try await scene.run("cron", ["send-file", path, "--to", "archive", "--name", "cron"]).status == 0)
        // cron's line removed: refused from its next connection on; the receiver stays registered.
        let recvLine = "\(scene.ids["recv"] ?? "") archive receiver\n"
        try Data(recvLine.utf8).write(to: URL(fileURLWithPath: scene.peersFile))
        let refused = try await scene.run("cron", ["send-file", path, "--to", "archive", "--name", "cron"])
        #expect(refused.status == 77, "\(refused.stderr)")
        // Back again, announced with SIGHUP this time.
        try Data((recvLine + "\(scene.ids["cron"] ?? "") cron\n").utf8).write(to: URL(fileURLWithPath: scene.peersFile))
        scene.hub.program.signal(SIGHUP)
        let again = try await scene.run(
            "cron", ["send-file", path, "--as", "b.txt", "--to", "archive", "--name", "cron"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(FileManager.default.fileExists(atPath: scene.spool + "/b.txt"))
        #expect(scene.receiver?.stderr.contains("reconnecting") == false, "the receiver was dropped")
        try await scene.stop()
    }

    /// A hub with a store and authorized peers: a receiver the list names may be queued for before it ever joined,
    /// and an edit to the list counts from the next file on (the store reads the list itself, when it changed); only a
    /// key whose line names the role operator sees everyone's queue.
    @Test func theStoreFollowsTheAuthorizedPeersAsTheyAreEdited() async throws {
        let store = try Unprivileged.makeDirectory("tls-store")
        defer { try? FileManager.default.removeItem(at: store) }
        let scene = try await Scene(
            peers: ["{recv} archive receiver", "{cron} cron", "{stranger} boss operator"],
            hubArguments: ["--store", store.path])
        try await eventually(every: .milliseconds(50)) {
            try await scene.run("cron", ["peers", "--name", "cron"]).stdout.contains("\"store\"")
        }
        let path = try scene.file("early.txt", "queued once the store had seen the receiver's key\n")
        // Queued files are sealed to the receiver's key: a name the list gives a receiver that never joined is known
        // to the store, but there is no key to seal to yet (77), where a name nobody knows is unknown (68).
        let early = try await scene.run("cron", ["send-file", path, "--to", "archive", "--queue", "--name", "cron"])
        #expect(early.status == 77 && early.stderr.contains("knows no key for 'archive'"), "\(early.stderr)")
        let unknown = try await scene.run("cron", ["send-file", path, "--to", "later", "--queue", "--name", "cron"])
        #expect(unknown.status == 68, "\(unknown.stderr)")

        // The list gains a receiver named later: the store knows the name from now on.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: scene.peersFile))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("\(scene.ids["stranger"] ?? "") later receiver\n".utf8))
        try handle.close()
        let known = try await scene.run(
            "cron", ["send-file", path, "--as", "later.txt", "--to", "later", "--queue", "--name", "cron"])
        #expect(known.status == 77 && known.stderr.contains("knows no key for 'later'"), "\(known.stderr)")

        // A broken edit (a line that does not parse) keeps the last good list, as at the hub.
        let good = try Data(contentsOf: URL(fileURLWithPath: scene.peersFile))
        try Data((String(decoding: good, as: UTF8.self) + "not-a-key broken\n").utf8).write(
            to: URL(fileURLWithPath: scene.peersFile))
        let kept = try await scene.run(
            "cron", ["send-file", path, "--as", "kept.txt", "--to", "later", "--queue", "--name", "cron"])
        #expect(kept.status == 77, "\(kept.stderr)")
        try good.write(to: URL(fileURLWithPath: scene.peersFile))

        // The receiver the list named joins once with its key and leaves: from then on files queue for it, sealed.
        try await scene.startReceiver()
        scene.receiver?.signal(SIGTERM)
        if let receiver = scene.receiver { #expect(try await receiver.waitForExit() == 0, "\(receiver.stderr)") }
        scene.receiver = nil
        let queued = try await scene.run("cron", ["send-file", path, "--to", "archive", "--queue", "--name", "cron"])
        #expect(queued.status == 0, "\(queued.stderr)")

        // An operator by its line sees the file; cron, whose line names no role, may not ask for everyone's.
        let all = try await scene.run("stranger", ["queue", "--all", "--name", "boss"])
        #expect(all.status == 0, "\(all.stderr)")
        #expect(all.stdout.split(separator: "\n").count == 1, "\(all.stdout)")
        let denied = try await scene.run("cron", ["queue", "--all", "--name", "cron"])
        #expect(denied.status == 77, "\(denied.stderr)")

        // The receiver comes back and gets its file, opened and checked.
        try await scene.startReceiver()
        try await eventually { FileManager.default.fileExists(atPath: scene.spool + "/early.txt") }
        #expect(
            FileManager.default.contents(atPath: scene.spool + "/early.txt")
                == Data("queued once the store had seen the receiver's key\n".utf8))
        try await scene.stop()
    }

    @Test func anEnrolmentTokenLetsAnUnknownKeyAddItselfOnce() async throws {
        let directory = try Unprivileged.makeDirectory("enrol")
        defer { try? FileManager.default.removeItem(at: directory) }
        let token = directory.appendingPathComponent("enrol.token").path
        try Data("let-me-in\n".utf8).write(to: URL(fileURLWithPath: token))
        try Unprivileged.handOver(token)
        let scene = try await Scene(peers: ["{recv} archive receiver"], hubArguments: ["--enroll-token-file", token])
        // Without the token: refused. With it: enrolled under the name it asks for, and its line is in the file.
        #expect(try await scene.run("stranger", ["peers", "--name", "newbie"]).status == 77)
        let enrolled = try await scene.run(
            "stranger", ["peers", "--name", "newbie"], environment: ["TCPIP_TOKEN": "let-me-in"])
        #expect(enrolled.status == 0, "\(enrolled.stderr)")
        let file = String(decoding: FileManager.default.contents(atPath: scene.peersFile) ?? Data(), as: UTF8.self)
        #expect(file.contains("\(scene.ids["stranger"] ?? "?") newbie"))
        // From then on the key is known: no token needed, and the name is its own.
        #expect(try await scene.run("stranger", ["peers", "--name", "newbie"]).status == 0)
        // The token does not let a key take a name another key owns.
        let grab = try await scene.run(
            "cron", ["peers", "--name", "archive"], environment: ["TCPIP_TOKEN": "let-me-in"])
        #expect(grab.status == 77, "\(grab.stderr)")
        try await scene.stop()
    }

    @Test func trustingANewHubIsExplicitAndRemembered() async throws {
        let scene = try await Scene()
        var environment = scene.environment("cron", pinned: false)
        // No pin and no known_hubs line: plaintext to a TLS hub fails; --trust-new-hub accepts and says so.
        let trusted = try await RunningProgram.run(
            "tcpipctl", ["peers", "--name", "cron", "--trust-new-hub"], environment: environment, timeout: 30)
        #expect(trusted.status == 0, "\(trusted.stderr)")
        #expect(trusted.stderr.contains("trusting the hub"))
        let known = scene.directory.appendingPathComponent("cron/known_hubs").path
        #expect(
            String(decoding: FileManager.default.contents(atPath: known) ?? Data(), as: UTF8.self)
                .contains(scene.hubID))
        // Next time known_hubs is enough, silently.
        let again = try await RunningProgram.run("tcpipctl", ["peers", "--name", "cron"], environment: environment)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stderr.isEmpty)
        // A key file others may read is refused, as ssh does.
        environment["TCPIP_HUB_ID"] = scene.hubID
        let key = scene.directory.appendingPathComponent("cron/key.pem").path
        chmod(key, 0o644)
        let loose = try await RunningProgram.run("tcpipctl", ["peers", "--name", "cron"], environment: environment)
        #expect(loose.status == 77)
        #expect(loose.stderr.contains("chmod 600"))
        try await scene.stop()
    }
}
