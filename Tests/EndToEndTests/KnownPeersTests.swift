import Foundation
import TCPIPTestSupport
import Testing

/// known_peers: a sender remembers the key each recipient proved the first time, and refuses (77) to send to a name
/// whose key changed — the hub vouches for keys, and a hub that turns hostile could vouch for its own.
@Suite struct KnownPeersTests {
    @Test func aKeyThatChangesForANameIsRefusedUntilPinned() async throws {
        let directory = try Unprivileged.makeDirectory("known-peers")
        var ids: [String: String] = [:]
        for node in ["hub", "first", "second", "sender", "forger"] {
            let result = try await RunningProgram.run(
                "tcpipctl", ["id", "--state-dir", directory.appendingPathComponent(node).path])
            #expect(result.status == 0, "\(result.stderr)")
            ids[node] = result.stdout.trimmingCharacters(in: .newlines)
        }
        // TLS, any key may register any name: the hub is what vouches for who "archive" is.
        let classicHub = try await ClassicHub(["--tls", "--state-dir", directory.appendingPathComponent("hub").path])
        let hub = classicHub.hub
        func environment(_ node: String) -> [String: String] {
            hub.environment.merging([
                "TCPIP_STATE_DIR": directory.appendingPathComponent(node).path, "TCPIP_HUB_ID": ids["hub"]!,
            ]) { $1 }
        }
        let spool = directory.appendingPathComponent("spool").path
        let file = directory.appendingPathComponent("report.txt")
        try Data("quarterly\n".utf8).write(to: file)
        try Unprivileged.handOver(file.path)
        func receiver(_ node: String) async throws -> RunningProgram {
            let program = try RunningProgram(
                "tcpiprecvd", ["--spool", spool, "--name", "archive"], environment: environment(node))
            try await hub.waitForPeers(["archive"], environment: environment("sender"))
            return program
        }
        func send(_ extra: [String] = [], as node: String = "sender") async throws -> (
            status: Int32, stdout: String, stderr: String
        ) {
            try await RunningProgram.run(
                "tcpipctl", ["send-file", "--to", "archive", "--json", "--name", "cron"] + extra + [file.path],
                environment: environment(node))
        }

        // First use: sent, and the key remembered with a warning.
        var archive = try await receiver("first")
        let first = try await send()
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stderr.contains("remembering the key \(ids["first"]!) of archive"))
        let known = try String(
            contentsOf: directory.appendingPathComponent("sender/known_peers"), encoding: .utf8)
        #expect(known == "\(hub.address) \(ids["first"]!) archive\n")
        #expect(try await send().status == 0, "the same key again: no question")
        // The receiver pinned the sender the same way: another key under the name cron is refused by it (77).
        let forged = try await send(as: "forger")
        #expect(forged.status == 77, "\(forged.stderr)")
        #expect(forged.stderr.contains("the key of cron changed") && forged.stderr.contains(ids["sender"]!))
        #expect(
            try String(contentsOf: directory.appendingPathComponent("first/known_peers"), encoding: .utf8)
                == "\(hub.address) \(ids["sender"]!) cron\n")

        // Another key under the same name: refused before anything is sent, both IDs named.
        archive.signal(SIGTERM)
        _ = try await archive.waitForExit()
        archive = try await receiver("second")
        let before = try FileManager.default.contentsOfDirectory(atPath: spool).count
        let changed = try await send()
        #expect(changed.status == 77, "\(changed.stderr)")
        #expect(changed.stderr.contains(ids["first"]!) && changed.stderr.contains(ids["second"]!))
        #expect(try FileManager.default.contentsOfDirectory(atPath: spool).count == before, "nothing was sent")
        let message = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "archive", "--message", "hi"], environment: environment("sender"))
        #expect(message.status == 77, "send checks known_peers too: \(message.stderr)")

        // --to-key pins explicitly: the new key goes through, the old one is refused, and known_peers is untouched.
        let pinned = try await send(["--to-key", ids["second"]!])
        #expect(pinned.status == 0, "\(pinned.stderr)")
        let wrong = try await send(["--to-key", ids["first"]!])
        #expect(wrong.status == 77)
        #expect(wrong.stderr.contains("not the one --to-key gives"))
        let bad = try await send(["--to-key", "not-a-key"])
        #expect(bad.status == 64)
        #expect(
            try String(contentsOf: directory.appendingPathComponent("sender/known_peers"), encoding: .utf8)
                == known)
        archive.signal(SIGTERM)
        _ = try await archive.waitForExit()

        // A keyless impostor under the pinned name (a classic client, which proves no key): refused too.
        _ = try await eventually(within: 60, every: .milliseconds(50)) {
            try await !RunningProgram.run("tcpipctl", ["peers"], environment: environment("sender")).stdout.contains(
                "\"archive\"")
        }
        let impostor = try await ClassicClient(port: classicHub.classicPort, name: "archive")
        _ = try await impostor.registeredID()
        try await hub.waitForPeers(["archive"], environment: environment("sender"))
        let keyless = try await send()
        #expect(keyless.status == 77, "\(keyless.stderr)")
        #expect(keyless.stderr.contains("proves no key now"))
        #expect(impostor.lines("file-received").isEmpty)
        impostor.send("close")
        _ = try await impostor.program.waitForExit()
        try await hub.stop()
    }
}
