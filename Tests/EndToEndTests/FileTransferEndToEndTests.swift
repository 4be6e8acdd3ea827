import Foundation
import TCPIPTestSupport
import Testing

/// `tcpipctl send-file` into a real `tcpiprecvd` through a real hub.
@Suite struct FileTransferEndToEndTests {
    final class Fixture: @unchecked Sendable {
        let hub: TestHub
        let directory: URL
        var spool: String { directory.appendingPathComponent("spool").path }
        var receiver: RunningProgram?
        /// Over TLS (`sealed`): the hub's key ID, and the arguments that start it again with the same key.
        let hubID: String?
        let tlsArguments: [String]

        /// `sealed`: a TLS hub, and a key of their own for the sender and the receiver, so files go sealed.
        init(hubArguments: [String] = [], sealed: Bool = false) async throws {
            directory = try Unprivileged.makeDirectory("e2e")
            if sealed {
                let state = directory.appendingPathComponent("hub").path
                let id = try await RunningProgram.run("tcpipctl", ["id", "--state-dir", state])
                hubID = id.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                tlsArguments = ["--tls", "--state-dir", state]
            } else {
                hubID = nil
                tlsArguments = []
            }
            hub = try await TestHub(tlsArguments + hubArguments)
        }

        deinit { try? FileManager.default.removeItem(at: directory) }

        /// What a program of node `node` needs to reach `hub` (this fixture's unless told): over TLS, its own state
        /// directory and the hub's pinned key.
        func environment(_ node: String = "sender", hub: TestHub? = nil) -> [String: String] {
            var environment = (hub ?? self.hub).environment
            if let hubID {
                environment["TCPIP_HUB_ID"] = hubID
                environment["TCPIP_STATE_DIR"] = directory.appendingPathComponent(node).path
            }
            return environment
        }

        func startReceiver(_ extra: [String] = [], name: String = "archive") async throws {
            receiver = try RunningProgram(
                "tcpiprecvd", ["--spool", spool, "--name", name] + extra, environment: environment("receiver"))
            try await hub.waitForPeers([name], environment: environment("probe"))
        }

        func file(_ name: String, _ bytes: [UInt8]) throws -> String {
            let path = directory.appendingPathComponent(name).path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            return path
        }

        func sendFile(_ arguments: [String], stdin: [UInt8]? = nil) async throws -> (
            status: Int32, stdout: String, stderr: String
        ) {
            try await RunningProgram.run(
                "tcpipctl", ["send-file"] + arguments, environment: environment(), stdin: stdin, timeout: 60)
        }

        func spooled(_ name: String) -> [UInt8]? {
            (try? Data(contentsOf: URL(fileURLWithPath: spool + "/" + name))).map(Array.init)
        }

        var visible: [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        }
        var temporary: [String] { (try? FileManager.default.contentsOfDirectory(atPath: spool + "/.tcpip/tmp")) ?? [] }
        /// The files the receiver has open in its temporary and partial directories: transfers in progress, unnamed
        /// ones (O_TMPFILE, which leave no name in the directory) included: /proc shows those as
        /// `…/.tcpip/tmp/#INODE (deleted)`.
        var inProgress: [String] {
            (receiver?.openFiles ?? []).filter {
                $0.hasPrefix(spool + "/.tcpip/tmp/") || $0.hasPrefix(spool + "/.tcpip/partial/")
            }
        }

        func stop() async throws {
            receiver?.signal(SIGTERM)
            if let receiver { #expect(try await receiver.waitForExit() == 0, "\(receiver.stderr)") }
            try await hub.stop()
        }
    }

    static func random(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
        var generator = SeededGenerator(seed: seed)
        return generator.bytes(count)
    }

    static let csv = Array(
        (0..<60_000).map { "\($0),2026-11-25T10:00:00Z,host-\($0 % 17),INFO,request served in \($0 % 300) ms\n" }
            .joined().utf8)

    @Test(arguments: [false, true])
    func filesLandByteIdentical(compress: Bool) async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver()
        let files: [(String, [UInt8])] = [
            ("random.bin", Self.random(3 << 20)), ("logs.csv", Self.csv), ("empty", []),
            ("ünïcødé 文件 🚀.txt", Array("hello\n".utf8)),
        ]
        let paths = try files.map { try fixture.file($0.0, $0.1) }
        let result = try await fixture.sendFile(
            ["--to", "archive", "--json"] + (compress ? ["--compress"] : []) + paths)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = try result.stdout.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(lines.count == files.count)
        #expect(lines.allSatisfy { $0["status"] as? String == "stored" })
        for (name, bytes) in files { #expect(fixture.spooled(name) == bytes, "\(name)") }
        let csvLine = try #require(lines.first { $0["name"] as? String == "logs.csv" })
        if compress {
            #expect((csvLine["ratio"] as? Double ?? 1) < 0.5)
        } else {
            #expect(csvLine["wireBytes"] as? Int == Self.csv.count)
        }
        #expect(fixture.temporary.isEmpty && fixture.inProgress.isEmpty)
        let metadata = try #require(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: fixture.spool + "/.tcpip/meta/logs.csv.json")))
                as? [String: Any])
        #expect(metadata["sha256"] as? String == csvLine["sha256"] as? String)
        #expect(metadata["compression"] as? String == (compress ? "zlib" : "none"))
        try await fixture.stop()
    }

    @Test func aBurstOfSmallFilesFromAListIsStoredEachWithItsRecord() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver()
        // Enough files that several finish while a batch is syncing: they are committed together.
        let names = (0..<300).map { "small-\($0).dat" }
        let paths = try names.enumerated().map { try fixture.file($1, Self.random(4096 + $0, seed: UInt64($0))) }
        let list = try fixture.file("list", Array(paths.joined(separator: "\0").utf8) + [0])
        let result = try await fixture.sendFile(["--to", "archive", "--json", "--files-from", list, "-0"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.split(separator: "\n").count == names.count)
        #expect(fixture.visible == names.sorted())
        for (index, name) in names.enumerated() {
            #expect(fixture.spooled(name) == Self.random(4096 + index, seed: UInt64(index)), "\(name)")
        }
        let records = try FileManager.default.contentsOfDirectory(atPath: fixture.spool + "/.tcpip/meta")
        #expect(Set(records) == Set(names.map { $0 + ".json" }))
        #expect(fixture.temporary.isEmpty && fixture.inProgress.isEmpty)
        try await fixture.stop()
    }

    /// Files named after `--` (which skip the argument parser, whose time grows with the square of their number) and
    /// before it all arrive, and the options before `--` still apply.
    @Test func namesAfterDoubleDashAreFilesEvenWhenTheyLookLikeOptions() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver()
        let plain = try fixture.file("plain.txt", Array("plain\n".utf8))
        let dashed = try fixture.file("--to", Array("dashed\n".utf8))
        let many = try (0..<200).map { try fixture.file("many-\($0).txt", Array("\($0)\n".utf8)) }
        let result = try await fixture.sendFile([plain, "--to", "archive", "--json", "--"] + [dashed] + many)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.split(separator: "\n").count == 202)
        #expect(Set(fixture.visible) == Set(["plain.txt", "--to"] + (0..<200).map { "many-\($0).txt" }))
        #expect(fixture.spooled("--to") == Array("dashed\n".utf8))
        let nothingAfter = try await fixture.sendFile(["--to", "archive", "--"])
        #expect(nothingAfter.status == 64, "no file named: \(nothingAfter.stderr)")
        try await fixture.stop()
    }

    @Test func filesFromReadsLinesOrStdinAndAnEmptyListSendsNothing() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver()
        let a = try fixture.file("listed-a.txt", Array("a\n".utf8))
        let b = try fixture.file("listed b.txt", Array("b\n".utf8))
        let list = try fixture.file("list.txt", Array("\(a)\n\(b)\n".utf8))
        let fromFile = try await fixture.sendFile(["--to", "archive", "--files-from", list])
        #expect(fromFile.status == 0, "\(fromFile.stderr)")
        #expect(fixture.visible == ["listed b.txt", "listed-a.txt"])
        let fromStdin = try await fixture.sendFile(
            ["--to", "archive", "--files-from", "-"], stdin: Array("\(a)\n".utf8))
        #expect(fromStdin.status == 0, "\(fromStdin.stderr)")
        #expect(fromStdin.stderr.isEmpty)
        // Sent again with the same content: already stored, not stored twice.
        #expect(fixture.visible == ["listed b.txt", "listed-a.txt"])
        let empty = try await fixture.sendFile(["--to", "archive", "--files-from", "-"], stdin: [])
        #expect(empty.status == 0, "\(empty.stderr)")
        let missingList = try await fixture.sendFile([
            "--to", "archive", "--files-from", fixture.directory.path + "/nope",
        ])
        #expect(missingList.status == 66)
        #expect(missingList.stderr.contains("nope"))
        let missingEntry = try fixture.file("bad-list.txt", Array("\(a)\n\(fixture.directory.path)/gone.txt\n".utf8))
        let partial = try await fixture.sendFile(["--to", "archive", "--files-from", missingEntry])
        #expect(partial.status == 66, "a missing file in the list is reported")
        #expect(partial.stderr.contains("gone.txt"))
        let both = try await fixture.sendFile(["--to", "archive", "--files-from", "-", "-", "--as", "x"], stdin: [])
        #expect(both.status == 64)
        #expect(fixture.visible == ["listed b.txt", "listed-a.txt"])
        try await fixture.stop()
    }

    @Test func aReceiverThatCannotWriteAnswersStorageFailedAndKeepsNothing() async throws {
        let fixture = try await Fixture()
        // A file-size limit of 1 MiB makes the receiver's writes fail part-way (EFBIG), as a full disk would (ENOSPC):
        // both are a write error in the middle of a transfer.
        fixture.receiver = try RunningProgram(
            "/bin/sh",
            [
                "-c", #"ulimit -f 2048 && exec "$0" --spool "$1" --name archive"#, BuiltPrograms.path("tcpiprecvd"),
                fixture.spool,
            ],
            environment: fixture.hub.environment)
        try await fixture.hub.waitForPeers(["archive"])
        let big = try fixture.file("too-big.bin", Self.random(3 << 20, seed: 21))
        let small = try fixture.file("fits.txt", Array("still fine\n".utf8))
        let result = try await fixture.sendFile(["--to", "archive", "--json", big, small])
        #expect(result.status == 73, "\(result.stderr)")
        #expect(result.stderr.contains("too-big.bin") && result.stderr.contains("storage-failed"))
        // The daemon survived, stored the file that fits, and left no part of the other anywhere.
        #expect(fixture.visible == ["fits.txt"])
        #expect(fixture.temporary.isEmpty && fixture.inProgress.isEmpty)
        try await fixture.stop()
    }

    @Test func stdinStreamsUnderTheGivenName() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver()
        let payload = Self.random(2 << 20, seed: 5)
        let result = try await fixture.sendFile(["--to", "archive", "-", "--as", "from-stdin.bin"], stdin: payload)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(fixture.spooled("from-stdin.bin") == payload)
        try await fixture.stop()
    }

    @Test func twoSendersAtOnceAndACollisionGetsANewName() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver()
        let a = try fixture.file("a-report.txt", Self.random(1 << 20, seed: 7))
        let b = try fixture.file("b-report.txt", Self.random(1 << 20, seed: 8))
        async let first = fixture.sendFile(["--to", "archive", "--as", "report.txt", a])
        async let second = fixture.sendFile(["--to", "archive", "--as", "report.txt", b])
        let (one, two) = try await (first, second)
        #expect(one.status == 0, "\(one.stderr)")
        #expect(two.status == 0, "\(two.stderr)")
        #expect(fixture.visible == ["report.txt", "report.txt.1"])
        let stored = Set([fixture.spooled("report.txt") ?? [], fixture.spooled("report.txt.1") ?? []])
        #expect(stored == Set([Self.random(1 << 20, seed: 7), Self.random(1 << 20, seed: 8)]))
        try await fixture.stop()
    }

    @Test func receiverKilledMidTransferLeavesNoVisiblePartAndRestartCleansUp() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver()
        let sender = try RunningProgram(
            "tcpipctl", ["send-file", "--to", "archive", "-", "--as", "slow.bin"], environment: fixture.hub.environment)
        sender.write(Self.random(1 << 20, seed: 3))
        // Wait until the transfer's temporary file is open, then kill the receiver hard.
        try await eventually { !fixture.inProgress.isEmpty }
        #expect(!fixture.inProgress.isEmpty)
        fixture.receiver?.signal(SIGKILL)
        _ = try await fixture.receiver?.waitForExit()
        let status = try await sender.waitForExit()
        #expect(status != 0)
        #expect(status == 75, "\(sender.stderr)")
        #expect(fixture.visible.isEmpty)
        // Unnamed temporaries go with the process: nothing is left to clean up. (Where a file system has no O_TMPFILE,
        // named ones are left, and a restart removes them: SpoolTests.prepareRemovesLeftovers.)
        #expect(fixture.temporary.isEmpty && fixture.inProgress.isEmpty)
        try await fixture.startReceiver()
        #expect(fixture.temporary.isEmpty && fixture.inProgress.isEmpty)
        #expect(fixture.visible.isEmpty)
        sender.closeStdin()
        try await fixture.stop()
    }

    @Test func aFileChangedAfterItWasHashedIsReportedChangedAndNothingIsPublished() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver()
        // 256 MiB (sparse: quick to make, long to send), resumable.
        let path = fixture.directory.appendingPathComponent("growing.log").path
        let size = 256 << 20
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        #expect(fd >= 0 && ftruncate(fd, off_t(size)) == 0)
        close(fd)
        chmod(path, 0o644)
        // The receiver is stopped first: the sender hashes the file, announces it and waits for the receiver's resume
        // offer for as long as the test takes. Meanwhile the file's last byte changes (its modification time with
        // it); then the receiver goes on, the bytes flow, and the sender finds the change at the end.
        let receiverID = try #require(fixture.receiver?.process.processIdentifier)
        kill(receiverID, SIGSTOP)
        let sender = try RunningProgram(
            "tcpipctl", ["send-file", "--to", "archive", "--json", "--timeout", "120", path],
            environment: fixture.hub.environment)
        // The sender has the file open: its status at opening is what it compares at the end.
        let opened = try await eventually { sender.openFiles.contains(path) }
        #expect(opened)
        // It takes the file's status right after opening it (a change before that is simply part of what it sends):
        // a moment later, whether or not its hash has read that far, the status differs from the one it took.
        try await Task.sleep(for: .seconds(1))
        let writer = open(path, O_WRONLY)
        #expect(writer >= 0)
        #expect(pwrite(writer, [UInt8(0x55)], 1, off_t(size - 1)) == 1)
        close(writer)
        kill(receiverID, SIGCONT)
        // 256 MiB through the hub: a bound against never, not a timing (a full parallel run once took over 60 s).
        let status = try await sender.waitForExit(timeout: 240)
        #expect(status == 75, "\(sender.stderr)")
        #expect(sender.stdout.contains("\"status\":\"changed\""), "\(sender.stdout)")
        #expect(fixture.visible.isEmpty)
        try await fixture.stop()
    }

    @Test func sigtermLetsARunningTransferFinishThenExitsZero() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver(["--grace", "20"])
        let sender = try RunningProgram(
            "tcpipctl", ["send-file", "--to", "archive", "-", "--as", "finishing.bin"],
            environment: fixture.hub.environment)
        let first = Self.random(300_000, seed: 11)
        sender.write(first)
        #expect(try await eventually { !fixture.inProgress.isEmpty })
        fixture.receiver?.signal(SIGTERM)
        try await fixture.receiver?.waitForStderr(containing: "draining")
        // New transfers are refused while it drains…
        let late = try fixture.file("late.txt", Array("late".utf8))
        let refused = try await fixture.sendFile(["--to", "archive", late])
        #expect(refused.status == 75, "shutting down is 'retry later'")
        #expect(refused.stderr.contains("shutting down"))
        // …and the running one completes.
        let rest = Self.random(200_000, seed: 12)
        sender.write(rest)
        sender.closeStdin()
        #expect(try await sender.waitForExit() == 0, "\(sender.stderr)")
        #expect(try await fixture.receiver?.waitForExit() == 0)
        #expect(fixture.spooled("finishing.bin") == first + rest)
        #expect(fixture.temporary.isEmpty && fixture.inProgress.isEmpty)
        fixture.receiver = nil
        try await fixture.hub.stop()
    }

    @Test func execHookRunsWithTheFilesEnvironment() async throws {
        let fixture = try await Fixture()
        let log = fixture.directory.appendingPathComponent("hook.log").path
        let script = try fixture.file(
            "hook.sh",
            Array("#!/bin/sh\necho \"$TCPIP_FILE|$TCPIP_FROM|$TCPIP_SHA256|$TCPIP_SIZE|$1\" >> '\(log)'\n".utf8))
        chmod(script, 0o755)
        try await fixture.startReceiver(["--exec", "\(script) 'argument with spaces'"])
        let path = try fixture.file("hooked.txt", Array("hook me\n".utf8))
        let result = try await fixture.sendFile(["--to", "archive", "--name", "hooker", "--json", path])
        #expect(result.status == 0, "\(result.stderr)")
        // The hook's shell creates the log before it writes the line: wait for the whole line.
        try await eventually { (try? String(contentsOfFile: log, encoding: .utf8))?.hasSuffix("\n") ?? false }
        let line = try String(contentsOfFile: log, encoding: .utf8).trimmingCharacters(in: .newlines)
        let parts = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        #expect(parts.count == 5)
        #expect(parts[0] == fixture.spool + "/hooked.txt")
        #expect(parts[1] == "hooker")
        #expect(parts[2].count == 64)
        #expect(result.stdout.contains(parts[2]))
        #expect(parts[3] == "8")
        #expect(parts[4] == "argument with spaces")
        try await fixture.stop()
    }

    @Test func allowFromRefusesOthersAndMaxFileSizeRefusesBigFiles() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver(["--allow-from", "trusted", "--max-file-size", "1000"])
        let small = try fixture.file("small.txt", Array("ok".utf8))
        let big = try fixture.file("big.bin", Self.random(5000))
        let stranger = try await fixture.sendFile(["--to", "archive", "--name", "stranger", small])
        #expect(stranger.status == 77)
        #expect(stranger.stderr.contains("refused"))
        let strangerMessage = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "archive", "--name", "stranger", "-m", "hi"],
            environment: fixture.hub.environment)
        #expect(strangerMessage.status == 77, "\(strangerMessage.stderr)")
        let tooBig = try await fixture.sendFile(["--to", "archive", "--name", "trusted", big])
        #expect(tooBig.status == 77)
        #expect(fixture.temporary.isEmpty && fixture.inProgress.isEmpty)
        let fine = try await fixture.sendFile(["--to", "archive", "--name", "trusted", small])
        #expect(fine.status == 0, "\(fine.stderr)")
        #expect(fixture.visible == ["small.txt"])
        try await fixture.stop()
    }

    @Test func oneUnreadableFileFailsAloneUnlessAllOrNothing() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver()
        let present = try fixture.file("present.txt", Array("x".utf8))
        let missing = fixture.directory.appendingPathComponent("missing.txt").path
        let strict = try await fixture.sendFile(["--to", "archive", "--all-or-nothing", present, missing])
        #expect(strict.status == 66)
        #expect(strict.stderr.contains("missing.txt"))
        #expect(fixture.visible.isEmpty)
        // A nightly batch with one bad file still delivers the rest, reports the bad one, and exits with its status.
        let result = try await fixture.sendFile(["--to", "archive", "--json", missing, present])
        #expect(result.status == 66, "\(result.stderr)")
        #expect(result.stderr.contains("missing.txt"))
        #expect(fixture.visible == ["present.txt"])
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        #expect(lines.first?.contains("\"status\":\"unreadable\"") == true)
        #expect(lines.first?.contains("No such file") == true)
        #expect(lines.last?.contains("\"status\":\"stored\"") == true)
        let unknown = try await fixture.sendFile(["--to", "nobody", present])
        #expect(unknown.status == 68)
        try await fixture.stop()
    }

    @Test func removeSourceFilesDeletesOnlyAfterTheReceipt() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver()
        let path = try fixture.file("move-me.txt", Array("moving".utf8))
        let result = try await fixture.sendFile(["--to", "archive", "--remove-source-files", path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(fixture.spooled("move-me.txt") == Array("moving".utf8))
        try await fixture.stop()
    }

    @Test func messagesToTheReceiverLandInTheSpool() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver()
        let result = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "archive", "-m", "a note"], environment: fixture.hub.environment)
        #expect(result.status == 0, "\(result.stderr)")
        let messages = fixture.visible.filter { $0.hasPrefix("message-") }
        #expect(messages.count == 1)
        #expect(fixture.spooled(try #require(messages.first)) == Array("a note".utf8))
        try await fixture.stop()
    }

    @Test func aFileSentAgainIsAcknowledgedNotStoredTwice() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver()
        let one = try fixture.file("data1.bin", Self.random(700_000, seed: 21))
        let two = try fixture.file("data2.bin", Self.random(1000, seed: 22))
        let first = try await fixture.sendFile(["--to", "archive", "--json", one, two])
        #expect(first.status == 0, "\(first.stderr)")
        // The job runs again (it failed half-way last night): nothing is stored twice, and it exits 0.
        let again = try await fixture.sendFile(["--to", "archive", "--json", one, two])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout.components(separatedBy: "\"status\":\"already-stored\"").count == 3, "\(again.stdout)")
        #expect(again.stdout.contains("\"storedAs\":\"data1.bin\""))
        #expect(fixture.visible == ["data1.bin", "data2.bin"])
        // The index survives a restart: it is rebuilt from the metadata records.
        fixture.receiver?.signal(SIGTERM)
        #expect(try await fixture.receiver?.waitForExit() == 0)
        try await fixture.startReceiver()
        let afterRestart = try await fixture.sendFile(["--to", "archive", "--json", one])
        #expect(afterRestart.status == 0, "\(afterRestart.stderr)")
        #expect(afterRestart.stdout.contains("already-stored"))
        // Other content under the same name is a new file; a file a consumer took away is stored again.
        let changed = try fixture.file("data2.bin", Self.random(1000, seed: 23))
        #expect(try await fixture.sendFile(["--to", "archive", changed]).status == 0)
        try FileManager.default.removeItem(atPath: fixture.spool + "/data1.bin")
        #expect(try await fixture.sendFile(["--to", "archive", one]).status == 0)
        #expect(fixture.visible == ["data1.bin", "data2.bin", "data2.bin.1"])
        #expect(fixture.spooled("data1.bin") == Self.random(700_000, seed: 21))
        // stdin cannot be hashed up front: it is always stored.
        let piped = try await fixture.sendFile(
            ["--to", "archive", "-", "--as", "data2.bin"], stdin: Self.random(1000, seed: 22))
        #expect(piped.status == 0)
        #expect(fixture.visible.contains("data2.bin.2"))
        try await fixture.stop()
    }

    /// Killed between publishing a file and writing its record, a receiver would not know the file when it is sent
    /// again and store NAME.1 (the fault campaign found it): at start-up a published file without a record is hashed
    /// and given one.
    @Test func aFilePublishedWithoutItsRecordIsStillKnownAfterARestart() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver()
        fixture.receiver?.signal(SIGTERM)
        #expect(try await fixture.receiver?.waitForExit() == 0)
        let content = Self.random(5000, seed: 31)
        let path = try fixture.file("orphan.bin", content)
        try Data(content).write(to: URL(fileURLWithPath: fixture.spool + "/orphan.bin"))
        try Unprivileged.handOver(fixture.spool + "/orphan.bin")
        try await fixture.startReceiver()
        let again = try await fixture.sendFile(["--to", "archive", "--json", path])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout.contains("\"status\":\"already-stored\""), "\(again.stdout)")
        #expect(fixture.visible == ["orphan.bin"])
        let record = try String(contentsOfFile: fixture.spool + "/.tcpip/meta/orphan.bin.json", encoding: .utf8)
        #expect(record.contains("\"recovered\":true"), "\(record)")
        try await fixture.stop()
    }

    @Test func alwaysStoreKeepsEveryCopy() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver(["--always-store"])
        let one = try fixture.file("data1.bin", Self.random(1000, seed: 24))
        #expect(try await fixture.sendFile(["--to", "archive", one]).status == 0)
        #expect(try await fixture.sendFile(["--to", "archive", one]).status == 0)
        #expect(fixture.visible == ["data1.bin", "data1.bin.1"])
        try await fixture.stop()
    }

    @Test func dryRunChecksTheRecipientAndSendsNothing() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver()
        let one = try fixture.file("data1.bin", Self.random(1000, seed: 25))
        let missing = fixture.directory.appendingPathComponent("missing.bin").path
        let dry = try await fixture.sendFile(["--to", "archive", "--dry-run", one])
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("\"status\":\"would-send\""))
        #expect(dry.stdout.contains("\"bytes\":1000"))
        let withMissing = try await fixture.sendFile(["--to", "archive", "--dry-run", one, missing])
        #expect(withMissing.status == 66)
        #expect(withMissing.stdout.contains("\"status\":\"unreadable\""))
        #expect(try await fixture.sendFile(["--to", "nobody-here", "--dry-run", one]).status == 68)
        #expect(fixture.visible.isEmpty)
        #expect(fixture.temporary.isEmpty && fixture.inProgress.isEmpty)
        try await fixture.stop()
    }

    @Test func aTreeLandsUnderTheSpoolAndNeverOutsideIt() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver()
        let fm = FileManager.default
        let tree = fixture.directory.appendingPathComponent("logs")
        try fm.createDirectory(at: tree.appendingPathComponent("sub/deeper"), withIntermediateDirectories: true)
        _ = try fixture.file("logs/a.txt", Array("a".utf8))
        _ = try fixture.file("logs/sub/b.txt", Array("b".utf8))
        _ = try fixture.file("logs/sub/deeper/c.txt", Array("c".utf8))
        try fm.createSymbolicLink(atPath: tree.path + "/link", withDestinationPath: "/etc/passwd")
        let notRecursive = try await fixture.sendFile(["--to", "archive", tree.path])
        #expect(notRecursive.status == 66)
        #expect(notRecursive.stderr.contains("use -r"))
        let sent = try await fixture.sendFile(["--to", "archive", "-r", "--json", tree.path])
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(sent.stderr.contains("skipping the symbolic link"))
        #expect(fixture.spooled("logs/a.txt") == Array("a".utf8))
        #expect(fixture.spooled("logs/sub/b.txt") == Array("b".utf8))
        #expect(fixture.spooled("logs/sub/deeper/c.txt") == Array("c".utf8))
        #expect(!fm.fileExists(atPath: fixture.spool + "/logs/link"))
        #expect(fm.fileExists(atPath: fixture.spool + "/.tcpip/meta/logs.d/sub.d/deeper.d/c.txt.json"))
        // The tree sent again: every file is already stored.
        let again = try await fixture.sendFile(["--to", "archive", "-r", "--json", tree.path])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout.components(separatedBy: "already-stored").count == 4, "\(again.stdout)")
        // A trailing slash sends the directory's contents.
        let contents = try await fixture.sendFile(["--to", "archive", "-r", tree.path + "/"])
        #expect(contents.status == 0, "\(contents.stderr)")
        #expect(fixture.spooled("sub/deeper/c.txt") == Array("c".utf8))
        // A symbolic link a consumer left in the spool is never followed out of it.
        let outside = try Unprivileged.makeDirectory("outside")
        defer { try? fm.removeItem(at: outside) }
        try fm.createSymbolicLink(atPath: fixture.spool + "/evil", withDestinationPath: outside.path)
        try fm.createDirectory(at: fixture.directory.appendingPathComponent("evil"), withIntermediateDirectories: true)
        _ = try fixture.file("evil/x.txt", Array("x".utf8))
        let refused = try await fixture.sendFile(["--to", "archive", "-r", fixture.directory.path + "/evil"])
        #expect(refused.status == 73, "\(refused.stderr)")
        #expect(try fm.contentsOfDirectory(atPath: outside.path).isEmpty)
        #expect(fixture.temporary.isEmpty && fixture.inProgress.isEmpty)
        try await fixture.stop()
    }

    @Test func theLongestNameStillGetsItsClashNameAndRecord() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver()
        let name = String(repeating: "n", count: 245)
        let first = try fixture.file(name, Array("one".utf8))
        #expect(try await fixture.sendFile(["--to", "archive", first]).status == 0)
        let second = try fixture.file(name, Array("two".utf8))
        let result = try await fixture.sendFile(["--to", "archive", "--json", second])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(fixture.spooled(name + ".1") == Array("two".utf8))
        #expect(FileManager.default.fileExists(atPath: fixture.spool + "/.tcpip/meta/\(name).1.json"))
        try await fixture.stop()
    }
}
