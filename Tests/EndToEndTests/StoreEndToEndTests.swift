import Foundation
import TCPIPTestSupport
import Testing

/// Store and forward: `tcpipd --store` holds files queued with `send-file --queue` for a receiver that is away and
/// delivers them when it connects; `tcpipctl queue` and `tcpipctl receipts` say where they are.
struct StoreEndToEndTests {
    final class Fixture: @unchecked Sendable {
        var hub: TestHub
        let directory: URL
        var store: String { directory.appendingPathComponent("store").path }
        var spool: String { directory.appendingPathComponent("spool").path }
        var receiver: RunningProgram?
        let hubArguments: [String]

        init(_ hubArguments: [String] = []) async throws {
            directory = try Unprivileged.makeDirectory("store")
            self.hubArguments = hubArguments
            hub = try await TestHub(["--store", directory.appendingPathComponent("store").path] + hubArguments)
            try await hub.waitForPeers(["store"])
        }

        deinit { try? FileManager.default.removeItem(at: directory) }

        func startReceiver(_ extra: [String] = []) async throws {
            receiver = try RunningProgram(
                "tcpiprecvd", ["--spool", spool, "--name", "archive"] + extra, environment: hub.environment)
            try await hub.waitForPeers(["archive"])
        }

        func stopReceiver() async throws {
            receiver?.signal(SIGTERM)
            if let receiver { #expect(try await receiver.waitForExit() == 0, "\(receiver.stderr)") }
            receiver = nil
            // Gone from the hub before anything is queued for it.
            for _ in 0..<200 {
                let peers = try await run(["peers"])
                if !peers.stdout.contains("\"archive\"") { return }
                try await Task.sleep(for: .milliseconds(50))
            }
        }

        /// A hub that has seen the receiver once, with the receiver gone again.
        static func knowingTheReceiver(_ hubArguments: [String] = []) async throws -> Fixture {
            let fixture = try await Fixture(hubArguments)
            try await fixture.startReceiver()
            try await fixture.stopReceiver()
            return fixture
        }

        func file(_ name: String, _ bytes: [UInt8]) throws -> String {
            let path = directory.appendingPathComponent(name).path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            return path
        }

        func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> (
            status: Int32, stdout: String, stderr: String
        ) {
            try await RunningProgram.run(
                "tcpipctl", arguments, environment: hub.environment.merging(environment) { $1 }, timeout: 60)
        }

        func spooled(_ name: String) -> [UInt8]? {
            (try? Data(contentsOf: URL(fileURLWithPath: spool + "/" + name))).map(Array.init)
        }

        /// Every file left in the store, past its lock and its receivers and receipts.
        var storeFiles: [String] {
            let root = URL(fileURLWithPath: store)
            let keep: Set = [".tcpip/lock", ".tcpip/store/receivers.jsonl", ".tcpip/store/receipts.jsonl"]
            let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey])
            var files: [String] = []
            while let url = walker?.nextObject() as? URL {
                guard (try? url.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true else { continue }
                let relative = String(url.path.dropFirst(root.path.count + 1))
                if !keep.contains(relative) { files.append(relative) }
            }
            return files.sorted()
        }

        func stop() async throws {
            receiver?.signal(SIGTERM)
            if let receiver { _ = try await receiver.waitForExit() }
            #expect(try await hub.stop() == 0, "\(hub.program.stderr)")
        }
    }

    static func lines(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    @Test func filesForAnAbsentReceiverAreQueuedAndDeliveredInOrderWhenItConnects() async throws {
        let fixture = try await Fixture.knowingTheReceiver()
        let small = try fixture.file("note.txt", Array("first\n".utf8))
        let content = FileTransferEndToEndTests.random(6 << 20, seed: 21)
        let big = try fixture.file("big.bin", content)

        let absent = try await fixture.run(["send-file", small, "--to", "archive", "--name", "cron"])
        #expect(absent.status == 68, "without --queue an absent receiver is 68, as before: \(absent.stderr)")

        let queued =
            try await fixture.run(["send-file", small, big, "--to", "archive", "--name", "cron", "--json"])
            .status == 68
        #expect(queued, "nor does the environment say queue")
        let sent = try await fixture.run(
            ["send-file", small, big, "--to", "archive", "--name", "cron", "--json"], environment: ["TCPIP_QUEUE": "1"])
        #expect(sent.status == 0, "\(sent.stderr)")
        let results = Self.lines(sent.stdout)
        #expect(results.map { $0["status"] as? String } == ["queued", "queued"])
        #expect(results.map { ($0["to"] as? [String: Any])?["name"] as? String } == ["archive", "archive"])

        let waiting = try await fixture.run(["queue", "--name", "cron"])
        #expect(waiting.status == 0, "\(waiting.stderr)")
        let entries = Self.lines(waiting.stdout)
        #expect(entries.map { $0["file"] as? String } == ["note.txt", "big.bin"], "oldest first")
        #expect(entries.allSatisfy { $0["recipient"] as? String == "archive" && $0["status"] as? String == "queued" })
        #expect(try await fixture.run(["queue", "--name", "someone-else"]).stdout.isEmpty, "a sender sees its own")
        #expect(Self.lines(try await fixture.run(["queue", "--all"]).stdout).count == 2, "an operator sees all")

        // The receiver lets only cron send: the store's delivery counts as cron's.
        try await fixture.startReceiver(["--allow-from", "cron"])
        try await eventually { fixture.spooled("big.bin") != nil && fixture.storeFiles.isEmpty }
        #expect(fixture.spooled("note.txt") == Array("first\n".utf8))
        #expect(fixture.spooled("big.bin") == content)
        #expect(fixture.storeFiles.isEmpty, "delivered files leave the store: \(fixture.storeFiles)")
        let record = try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: fixture.spool + "/.tcpip/meta/big.bin.json")))
        #expect(((record as? [String: Any])?["from"] as? [String: Any])?["name"] as? String == "cron")

        let receipts = Self.lines(try await fixture.run(["receipts", "--name", "cron"]).stdout)
        #expect(receipts.map { $0["status"] as? String } == ["delivered", "delivered"])
        #expect(receipts.map { $0["storedAs"] as? String } == ["note.txt", "big.bin"])
        #expect(try await fixture.run(["receipts", "--name", "someone-else"]).stdout.isEmpty)
        #expect(try await fixture.run(["queue", "--name", "cron"]).stdout.isEmpty, "nothing waits any more")
        try await fixture.stop()
    }

    @Test func aMessageForAnAbsentReceiverIsQueuedAndStoredAsAMessage() async throws {
        let fixture = try await Fixture.knowingTheReceiver()
        let sent = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "archive", "--queue", "--json", "--name", "cron"],
            environment: fixture.hub.environment, stdin: Array("disk full on web01\n".utf8), timeout: 60)
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(Self.lines(sent.stdout).first?["status"] as? String == "queued", "\(sent.stdout)")
        let waiting = Self.lines(try await fixture.run(["queue", "--name", "cron"]).stdout)
        #expect(waiting.map { $0["kind"] as? String } == ["message"])
        let noQueue = try await fixture.run(["send", "--to", "archive", "-m", "x", "--name", "cron"])
        #expect(noQueue.status == 68, "without --queue an absent receiver is 68: \(noQueue.stderr)")
        let nobody = try await fixture.run(["send", "--to", "nobody", "--queue", "-m", "x"])
        #expect(nobody.status == 68, "\(nobody.stderr)")
        #expect(try await fixture.run(["send", "--to", "archive", "--queue", "--lines", "-m", "x"]).status == 64)
        // A pinned key on a link without keys: the store's record proves none, so nothing is queued (77).
        let pinned = try await fixture.run([
            "send", "--to", "archive", "--queue", "-m", "x", "--name", "cron", "--to-key",
            "A4DQ-OBYH-A4DQ-OBYH-A4DQ-OBYH-A4DQ-OBYH-A4DQ-OBYH-A4DQ-OBYH-A4DQ",
        ])
        #expect(pinned.status == 77, "\(pinned.stderr)")
        #expect(Self.lines(try await fixture.run(["queue", "--name", "cron"]).stdout).count == 1)
        // TCPIP_QUEUE=1 queues as --queue does, and leaves a send it does not apply to as it was (not a usage error).
        let queueing = ["TCPIP_QUEUE": "1"]
        let fromEnvironment = try await fixture.run(
            ["send", "--to", "archive", "--json", "-m", "from the environment", "--name", "cron"],
            environment: queueing)
        #expect(fromEnvironment.status == 0, "\(fromEnvironment.stderr)")
        #expect(Self.lines(fromEnvironment.stdout).first?["status"] as? String == "queued")
        let lines = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "archive", "--lines"],
            environment: fixture.hub.environment.merging(queueing) { $1 }, stdin: Array("x\n".utf8), timeout: 60)
        #expect(lines.status == 68, "\(lines.stderr)")

        try await fixture.startReceiver(["--allow-from", "cron"])
        var messages: [String] = []
        try await eventually(every: .milliseconds(50)) {
            messages = ((try? FileManager.default.contentsOfDirectory(atPath: fixture.spool)) ?? []).filter {
                $0.hasPrefix("message-")
            }
            return !messages.isEmpty && fixture.storeFiles.isEmpty
        }
        #expect(messages.count == 2 && messages.allSatisfy { $0.hasSuffix("-cron.txt") }, "\(messages)")
        #expect(
            Set(messages.map { String(decoding: fixture.spooled($0) ?? [], as: UTF8.self) })
                == ["disk full on web01\n", "from the environment"])
        #expect(fixture.storeFiles.isEmpty, "\(fixture.storeFiles)")
        let receipts = Self.lines(try await fixture.run(["receipts", "--name", "cron"]).stdout)
        #expect(receipts.map { $0["status"] as? String } == ["delivered", "delivered"])
        // Connected now: --queue changes nothing, the message goes straight to it.
        let direct = try await fixture.run([
            "send", "--to", "archive", "--queue", "--json", "-m", "hi", "--name", "cron",
        ])
        #expect(direct.status == 0 && direct.stdout.contains("\"status\":\"delivered\""), "\(direct.stdout)")
        try await fixture.stop()
    }

    @Test func onlyAReceiverTheStoreKnowsCanBeQueuedFor() async throws {
        let fixture = try await Fixture()
        let small = try fixture.file("note.txt", Array("x".utf8))
        let unknown = try await fixture.run(["send-file", small, "--to", "archive", "--queue", "--json"])
        #expect(unknown.status == 68, "\(unknown.stderr)")
        #expect(Self.lines(unknown.stdout).first?["status"] as? String == "unknown-recipient")
        #expect(fixture.storeFiles.isEmpty, "\(fixture.storeFiles)")
        let two = try await fixture.run(["send-file", small, "--to", "a", "--to", "b", "--queue"])
        #expect(two.status == 64, "--queue takes one recipient: \(two.stderr)")
        try await fixture.stop()

        let plain = try await TestHub()
        let noStore = try await RunningProgram.run(
            "tcpipctl", ["send-file", small, "--to", "archive", "--queue"], environment: plain.environment)
        #expect(noStore.status == 68, "\(noStore.stderr)")
        #expect(noStore.stderr.contains("no store"), "\(noStore.stderr)")
        let receipts = try await RunningProgram.run("tcpipctl", ["receipts"], environment: plain.environment)
        #expect(receipts.status == 69, "\(receipts.stderr)")
        try await plain.stop()
    }

    @Test func aHubRestartLosesNothingFromTheStore() async throws {
        let fixture = try await Fixture.knowingTheReceiver()
        let content = FileTransferEndToEndTests.random(1 << 20, seed: 22)
        let path = try fixture.file("data.bin", content)
        let sent = try await fixture.run(["send-file", path, "--to", "archive", "--queue", "--name", "cron"])
        #expect(sent.status == 0, "\(sent.stderr)")
        // Killed outright: what the store confirmed was synced.
        fixture.hub.program.signal(SIGKILL)
        _ = try await fixture.hub.program.waitForExit()
        fixture.hub = try await TestHub(["--listen", fixture.hub.address, "--store", fixture.store])
        try await fixture.hub.waitForPeers(["store"])
        try await fixture.startReceiver()
        try await eventually { fixture.spooled("data.bin") != nil && fixture.storeFiles.isEmpty }
        #expect(fixture.spooled("data.bin") == content)
        #expect(fixture.storeFiles.isEmpty, "\(fixture.storeFiles)")
        try await fixture.stop()
    }

    @Test func aFullStoreRefusesWith73BeforeAnyDataCrosses() async throws {
        let fixture = try await Fixture.knowingTheReceiver(["--store-max-bytes", "1000000"])
        let path = try fixture.file("big.bin", FileTransferEndToEndTests.random(2_000_000, seed: 23))
        let sent = try await fixture.run(["send-file", path, "--to", "archive", "--queue", "--json"])
        #expect(sent.status == 73, "\(sent.stderr)")
        let result = Self.lines(sent.stdout).first
        #expect(result?["status"] as? String == "storage-failed")
        #expect(result?["wireBytes"] as? Int == 0, "no chunk crossed")
        #expect(fixture.storeFiles.isEmpty, "\(fixture.storeFiles)")
        let small = try fixture.file("small.bin", FileTransferEndToEndTests.random(500_000, seed: 24))
        #expect(try await fixture.run(["send-file", small, "--to", "archive", "--queue"]).status == 0)
        // A file of unknown size cannot be checked against the limit: refused too.
        let piped = try await RunningProgram.run(
            "tcpipctl", ["send-file", "-", "--as", "piped.txt", "--to", "archive", "--queue"],
            environment: fixture.hub.environment, stdin: Array("x".utf8), timeout: 60)
        #expect(piped.status == 73, "\(piped.stderr)")
        try await fixture.stop()
    }

    /// Over TLS (a hub without an authorized-peers list, where any key may take a free name), a queued file goes only
    /// to the key its receiver's name was first seen with, and a sender's queue and receipts are its key's.
    @Test func overTLSAQueuedFileGoesOnlyToTheKeyTheReceiverWasFirstSeenWith() async throws {
        let directory = try Unprivileged.makeDirectory("store-tls")
        defer { try? FileManager.default.removeItem(at: directory) }
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        var ids: [String: String] = [:]
        for node in ["hub", "recv", "cron", "impostor"] {
            let result = try await RunningProgram.run("tcpipctl", ["id", "--state-dir", path(node)])
            #expect(result.status == 0, "\(result.stderr)")
            ids[node] = result.stdout.trimmingCharacters(in: .newlines)
        }
        let hub = try await TestHub(["--tls", "--state-dir", path("hub"), "--store", path("store")])
        func environment(_ node: String) -> [String: String] {
            hub.environment.merging(["TCPIP_STATE_DIR": path(node), "TCPIP_HUB_ID": ids["hub"] ?? ""]) { $1 }
        }
        func ctl(_ node: String, _ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String)
        {
            try await RunningProgram.run("tcpipctl", arguments, environment: environment(node), timeout: 30)
        }
        func registered(_ name: String, _ present: Bool = true) async throws {
            for _ in 0..<300 {
                let peers = try await ctl("cron", ["peers", "--name", "probe-\(UUID().uuidString.prefix(8))"])
                if peers.stdout.contains("\"name\":\"\(name)\"") == present { return }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw TestFailure("\(name) did not \(present ? "register" : "leave")")
        }
        func receiver(_ node: String, spool: String) async throws -> RunningProgram {
            let program = try RunningProgram(
                "tcpiprecvd", ["--spool", path(spool), "--name", "archive"], environment: environment(node))
            try await registered("archive")
            return program
        }
        func stop(_ program: RunningProgram) async throws {
            program.signal(SIGTERM)
            _ = try await program.waitForExit()
            try await registered("archive", false)
        }
        try await registered("store")
        try await stop(try await receiver("recv", spool: "spool"))

        let file = path("report.txt")
        try Data("for archive only\n".utf8).write(to: URL(fileURLWithPath: file))
        try Unprivileged.handOver(file)
        let sent = try await ctl("cron", ["send-file", file, "--to", "archive", "--queue", "--name", "cron", "--json"])
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(sent.stdout.contains("\"status\":\"queued\""))
        let note = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "archive", "--queue", "--name", "cron"], environment: environment("cron"),
            stdin: Array("a queued note for archive only\n".utf8), timeout: 30)
        #expect(note.status == 0, "\(note.stderr)")
        // Sealed before they left the sender: no byte of either is in the store's files, only its name.
        let held = FileManager.default.enumerator(atPath: path("store"))?.allObjects.compactMap { $0 as? String } ?? []
        let stored = held.compactMap { FileManager.default.contents(atPath: path("store") + "/" + $0) }
        #expect(stored.count >= 2, "\(held)")
        #expect(!stored.contains { $0.range(of: Data("archive only".utf8)) != nil }, "plaintext in the store: \(held)")

        // Another key takes the free name: it gets nothing, and the file stays queued.
        let impostor = try await receiver("impostor", spool: "stolen")
        try await Task.sleep(for: .milliseconds(500))
        #expect(!FileManager.default.fileExists(atPath: path("stolen") + "/report.txt"), "delivered to another key")
        try await stop(impostor)
        #expect(try await ctl("impostor", ["queue", "--name", "cron"]).stdout.isEmpty, "cron's queue is its key's")
        #expect(try await ctl("cron", ["queue", "--name", "cron"]).stdout.contains("report.txt"))

        let real = try await receiver("recv", spool: "spool")
        try await eventually { FileManager.default.fileExists(atPath: path("spool") + "/report.txt") }
        #expect(FileManager.default.contents(atPath: path("spool") + "/report.txt") == Data("for archive only\n".utf8))
        let record = try String(contentsOfFile: path("spool") + "/.tcpip/meta/report.txt.json", encoding: .utf8)
        #expect(record.contains(ids["cron"] ?? "?"), "the record names the key that queued it: \(record)")
        #expect(record.contains("\"signedBy\":\"\(ids["cron"] ?? "?")\""), "opened and checked: \(record)")
        try await eventually {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path("spool"))) ?? []
            return names.contains { $0.hasPrefix("message-") }
        }
        let message = ((try? FileManager.default.contentsOfDirectory(atPath: path("spool"))) ?? []).first {
            $0.hasPrefix("message-")
        }
        #expect(
            message.flatMap { FileManager.default.contents(atPath: path("spool") + "/" + $0) }
                == Data("a queued note for archive only\n".utf8))
        real.signal(SIGTERM)
        _ = try await real.waitForExit()
        #expect(try await hub.stop() == 0)
    }

    /// A receiver that leaves in the middle of a delivery costs the hub nothing: the courier holds one queued file
    /// open at a time, and the files it never reached stay queued and are delivered when the receiver comes back.
    @Test func aDeliveryThatBreaksOffLeavesNoFilesOpenInTheHub() async throws {
        let fixture = try await Fixture.knowingTheReceiver()
        let hubPID = fixture.hub.program.process.processIdentifier
        @Sendable func openDescriptors() -> Int {
            (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(hubPID)/fd").count) ?? -1
        }
        var paths: [String] = []
        for index in 0..<300 {
            paths.append(
                try fixture.file("f\(index).bin", FileTransferEndToEndTests.random(128 << 10, seed: UInt64(index))))
        }
        let queued = try await fixture.run(["send-file"] + paths + ["--to", "archive", "--queue", "--name", "cron"])
        #expect(queued.status == 0, "\(queued.stderr)")
        let before = openDescriptors()

        // The receiver is stopped as soon as its first file lands, and killed; while the courier is busy the hub is
        // watched. It runs in slices and is looked at only while stopped: a plain poll can miss the moment.
        let receiver = try RunningProgram(
            "tcpiprecvd", ["--spool", fixture.spool, "--name", "archive"], environment: fixture.hub.environment)
        let spool = fixture.spool
        let peak = Peak()
        let landed = await receiver.stop(when: {
            peak.see(openDescriptors())
            let names = (try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? []
            return names.contains { $0.hasSuffix(".bin") }
        })
        #expect(landed, "no file landed: \(receiver.stderr)")
        let most = peak.most
        receiver.signal(SIGKILL)
        _ = try await receiver.waitForExit()
        #expect(!fixture.storeFiles.isEmpty, "the delivery did not break off: everything arrived before the kill")
        try await eventually(every: .milliseconds(50)) {
            !(try await fixture.run(["peers"])).stdout.contains("\"archive\"")
        }
        try await Task.sleep(for: .milliseconds(300))
        #expect(most - before < 64, "the hub held \(most - before) more descriptors while delivering")
        #expect(openDescriptors() - before < 16, "descriptors left open: \(before) before, \(openDescriptors()) after")

        // What was not delivered is still queued, and goes when the receiver is back.
        try await fixture.startReceiver()
        try await eventually { fixture.storeFiles.isEmpty }
        #expect(fixture.storeFiles.isEmpty, "\(fixture.storeFiles.count) files still queued")
        for index in [0, 150, 299] {
            #expect(
                fixture.spooled("f\(index).bin") == FileTransferEndToEndTests.random(128 << 10, seed: UInt64(index)))
        }
        try await fixture.stop()
    }

    /// The store answers `queued` only for a file it can deliver: one whose record (who queued it) cannot be written
    /// is refused and leaves nothing behind, and the same file is taken once the store can write again.
    @Test(.enabled(if: geteuid() != 0 || Unprivileged.active, "root writes through any permission"))
    func aQueuedFileWhoseRecordCannotBeWrittenIsRefusedNotLost() async throws {
        let fixture = try await Fixture.knowingTheReceiver()
        let path = try fixture.file("audit.log", Array("nothing lost\n".utf8))
        let meta = fixture.store + "/.tcpip/meta"
        let mode = (try FileManager.default.attributesOfItem(atPath: meta)[.posixPermissions] as? Int) ?? 0o750
        #expect(chmod(meta, 0o555) == 0)
        defer { chmod(meta, mode_t(mode)) }
        let refused = try await fixture.run(["send-file", path, "--to", "archive", "--queue", "--name", "cron"])
        #expect(refused.status == 73, "\(refused.stdout) \(refused.stderr)")
        #expect(fixture.storeFiles.isEmpty, "\(fixture.storeFiles)")
        #expect(chmod(meta, mode_t(mode)) == 0)
        let queued = try await fixture.run([
            "send-file", path, "--to", "archive", "--queue", "--name", "cron", "--json",
        ])
        #expect(queued.status == 0 && queued.stdout.contains("\"status\":\"queued\""), "\(queued.stdout)")
        try await fixture.startReceiver()
        try await eventually { fixture.spooled("audit.log") != nil }
        #expect(fixture.spooled("audit.log") == Array("nothing lost\n".utf8))
        try await fixture.stop()
    }

    /// The fault campaign (scripts/fault-campaign), short: the sender, the hub or the receiver SIGKILLed at random
    /// points of batches sent with --queue, restarted, the batch run again until it exits 0; then every file is in the
    /// spool once and intact, and nothing is left in the temporary areas or queued in the store.
    @Test func aShortFaultCampaignLosesNothing() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let campaign = try await RunningProgram.run(
            "/usr/bin/python3",
            [
                root.appendingPathComponent("scripts/fault-campaign").path, "--kills", "8", "--files", "40",
                "--max-size", "5000000", "--seed", "7", "--bin", BuiltPrograms.directory.path,
            ], timeout: 300)
        #expect(campaign.status == 0, "\(campaign.stdout)\n\(campaign.stderr)")
        #expect(campaign.stdout.contains("fault campaign: 8 kills survived"), "\(campaign.stdout)")
    }

    @Test func aFileNobodyCollectsExpiresWithAReceipt() async throws {
        let fixture = try await Fixture.knowingTheReceiver(["--store-max-age", "1"])
        let path = try fixture.file("old.txt", Array("old\n".utf8))
        #expect(try await fixture.run(["send-file", path, "--to", "archive", "--queue", "--name", "cron"]).status == 0)
        var receipts: [[String: Any]] = []
        try await eventually(every: .milliseconds(200)) {
            receipts = Self.lines(try await fixture.run(["receipts", "--name", "cron"]).stdout)
            return !receipts.isEmpty
        }
        #expect(receipts.first?["status"] as? String == "expired")
        #expect(receipts.first?["file"] as? String == "old.txt")
        #expect(fixture.storeFiles.isEmpty, "\(fixture.storeFiles)")
        try await fixture.startReceiver()
        try await Task.sleep(for: .milliseconds(300))
        #expect(fixture.spooled("old.txt") == nil, "an expired file is never delivered")
        try await fixture.stop()
    }
}

/// The largest of the values seen, from a watching thread.
final class Peak: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    var most: Int { lock.withLock { value } }
    func see(_ number: Int) { lock.withLock { value = max(value, number) } }
}
