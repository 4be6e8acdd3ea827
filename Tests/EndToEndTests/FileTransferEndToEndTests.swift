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

        init() async throws {
            hub = try await TestHub()
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("e2e-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        }

        deinit { try? FileManager.default.removeItem(at: directory) }

        func startReceiver(_ extra: [String] = [], name: String = "archive") async throws {
            receiver = try RunningProgram(
                "tcpiprecvd", ["--spool", spool, "--name", name] + extra, environment: hub.environment)
            try await hub.waitForPeers([name])
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
                "tcpipctl", ["send-file"] + arguments, environment: hub.environment, stdin: stdin, timeout: 60)
        }

        func spooled(_ name: String) -> [UInt8]? {
            (try? Data(contentsOf: URL(fileURLWithPath: spool + "/" + name))).map(Array.init)
        }

        var visible: [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        }
        var temporary: [String] { (try? FileManager.default.contentsOfDirectory(atPath: spool + "/.tcpip/tmp")) ?? [] }

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
        #expect(fixture.temporary.isEmpty)
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
        #expect(fixture.temporary.isEmpty)
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
        #expect(fixture.visible == ["listed b.txt", "listed-a.txt", "listed-a.txt.1"])
        let empty = try await fixture.sendFile(["--to", "archive", "--files-from", "-"], stdin: [])
        #expect(empty.status == 0, "\(empty.stderr)")
        let missingList = try await fixture.sendFile([
            "--to", "archive", "--files-from", fixture.directory.path + "/nope",
        ])
        #expect(missingList.status == 66)
        #expect(missingList.stderr.contains("nope"))
        let missingEntry = try fixture.file("bad-list.txt", Array("\(a)\n\(fixture.directory.path)/gone.txt\n".utf8))
        let partial = try await fixture.sendFile(["--to", "archive", "--files-from", missingEntry])
        #expect(partial.status == 66, "a missing file in the list sends nothing")
        let both = try await fixture.sendFile(["--to", "archive", "--files-from", "-", "-", "--as", "x"], stdin: [])
        #expect(both.status == 64)
        #expect(fixture.visible == ["listed b.txt", "listed-a.txt", "listed-a.txt.1"])
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
        #expect(fixture.temporary.isEmpty)
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
        // Wait until the partial file exists, then kill the receiver hard.
        for _ in 0..<500 where fixture.temporary.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        #expect(!fixture.temporary.isEmpty)
        fixture.receiver?.signal(SIGKILL)
        _ = try await fixture.receiver?.waitForExit()
        let status = try await sender.waitForExit(timeout: 30)
        #expect(status != 0)
        #expect(status == 75, "\(sender.stderr)")
        #expect(fixture.visible.isEmpty)
        try await fixture.startReceiver()
        #expect(fixture.temporary.isEmpty)
        #expect(fixture.visible.isEmpty)
        sender.closeStdin()
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
        for _ in 0..<500 where fixture.temporary.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        fixture.receiver?.signal(SIGTERM)
        try await Task.sleep(for: .milliseconds(300))
        // New transfers are refused while it drains…
        let late = try fixture.file("late.txt", Array("late".utf8))
        let refused = try await fixture.sendFile(["--to", "archive", late])
        #expect(refused.status == 65)
        #expect(refused.stderr.contains("shutting down"))
        // …and the running one completes.
        let rest = Self.random(200_000, seed: 12)
        sender.write(rest)
        sender.closeStdin()
        #expect(try await sender.waitForExit() == 0, "\(sender.stderr)")
        #expect(try await fixture.receiver?.waitForExit() == 0)
        #expect(fixture.spooled("finishing.bin") == first + rest)
        #expect(fixture.temporary.isEmpty)
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
        for _ in 0..<300 where !((try? String(contentsOfFile: log, encoding: .utf8))?.hasSuffix("\n") ?? false) {
            try await Task.sleep(for: .milliseconds(10))
        }
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
        #expect(stranger.status == 65)
        #expect(stranger.stderr.contains("refused"))
        let tooBig = try await fixture.sendFile(["--to", "archive", "--name", "trusted", big])
        #expect(tooBig.status == 65)
        #expect(fixture.temporary.isEmpty)
        let fine = try await fixture.sendFile(["--to", "archive", "--name", "trusted", small])
        #expect(fine.status == 0, "\(fine.stderr)")
        #expect(fixture.visible == ["small.txt"])
        try await fixture.stop()
    }

    @Test func missingInputFileExits66AndSendsNothing() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver()
        let present = try fixture.file("present.txt", Array("x".utf8))
        let result = try await fixture.sendFile([
            "--to", "archive", present, fixture.directory.appendingPathComponent("missing.txt").path,
        ])
        #expect(result.status == 66)
        #expect(result.stderr.contains("missing.txt"))
        #expect(fixture.visible.isEmpty)
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
}
