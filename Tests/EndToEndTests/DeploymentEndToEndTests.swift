import Foundation
import TCPIPTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The programs as they are deployed: as an unprivileged user, under systemd's SIGTERM, from cron jobs that read exit
/// statuses, beside other daemons.
@Suite struct DeploymentEndToEndTests {
    typealias Fixture = FileTransferEndToEndTests.Fixture

    static func mode(_ path: String) -> (mode: mode_t, owner: uid_t)? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return (info.st_mode & 0o7777, info.st_uid)
    }

    @Test func aFullRoundWorksAsTheServiceUser() async throws {
        // Every built program in this suite runs as `nobody` when the tests run as root (CI): as root, an option
        // that needs CAP_NET_ADMIN (SO_DEBUG, set by mistake for TCP_NODELAY) went unnoticed.
        let fixture = try await Fixture()
        try await fixture.startReceiver()
        let path = try fixture.file("report.txt", Array("report\n".utf8))
        let sent = try await fixture.sendFile(["--to", "archive", path])
        #expect(sent.status == 0, "\(sent.stderr)")
        let message = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "archive", "-m", "a note"], environment: fixture.hub.environment)
        #expect(message.status == 0, "\(message.stderr)")
        let peers = try await RunningProgram.run("tcpipctl", ["peers"], environment: fixture.hub.environment)
        #expect(peers.status == 0, "\(peers.stderr)")
        #expect(peers.stdout.contains("\"name\":\"archive\""))
        #expect(fixture.spooled("report.txt") == Array("report\n".utf8))
        // Published files are for the daemon's group (0640); transfers in progress are the daemon's alone.
        let published = try #require(Self.mode(fixture.spool + "/report.txt"))
        #expect(published.mode == 0o640)
        #expect(Self.mode(fixture.spool + "/.tcpip/tmp")?.mode == 0o700)
        if Unprivileged.active { #expect(published.owner == Unprivileged.uid) }
        #expect(fixture.visible.count == 2)
        try await fixture.stop()
    }

    // MARK: one cause, one status

    @Test func aReceiverWithoutSpaceGives73ForAFileStdinAndAMessage() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver(["--min-free-space", "9223372036854775807"])
        let path = try fixture.file("big.bin", FileTransferEndToEndTests.random(100_000))
        let file = try await fixture.sendFile(["--to", "archive", path])
        #expect(file.status == 73, "\(file.stderr)")
        #expect(file.stderr.contains("free space"))
        let stdin = try await fixture.sendFile(["--to", "archive", "-", "--as", "piped.bin"], stdin: Array("x".utf8))
        #expect(stdin.status == 73, "\(stdin.stderr)")
        let message = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "archive", "-m", "a note"], environment: fixture.hub.environment)
        #expect(message.status == 73, "\(message.stderr)")
        #expect(fixture.visible.isEmpty)
        #expect(fixture.temporary.isEmpty && fixture.inProgress.isEmpty)
        try await fixture.stop()
    }

    @Test func aWriteThatFailsGives73AndTheReceiverCarriesOn() async throws {
        let fixture = try await Fixture()
        // RLIMIT_FSIZE (`ulimit -f`): every write past 8 KiB fails with EFBIG, as a full disk fails with ENOSPC.
        fixture.receiver = try RunningProgram(
            "tcpiprecvd", ["--spool", fixture.spool, "--name", "archive"], environment: fixture.hub.environment,
            fileSizeLimit: 8192)
        try await fixture.hub.waitForPeers(["archive"])
        let path = try fixture.file("big.bin", FileTransferEndToEndTests.random(100_000))
        let file = try await fixture.sendFile(["--to", "archive", path])
        #expect(file.status == 73, "\(file.stderr)")
        let stdin = try await fixture.sendFile(
            ["--to", "archive", "-", "--as", "piped.bin"], stdin: FileTransferEndToEndTests.random(100_000))
        #expect(stdin.status == 73, "\(stdin.stderr)")
        let message = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "archive"], environment: fixture.hub.environment,
            stdin: Array(repeating: UInt8(ascii: "m"), count: 20_000))
        #expect(message.status == 73, "\(message.stderr)")
        let small = try fixture.file("small.txt", Array("fits".utf8))
        let fine = try await fixture.sendFile(["--to", "archive", small])
        #expect(fine.status == 0, "\(fine.stderr)")
        #expect(fixture.visible == ["small.txt"])
        #expect(fixture.temporary.isEmpty && fixture.inProgress.isEmpty)
        #expect(fixture.receiver?.stderr.contains("could not store a message") == true)
        try await fixture.stop()
    }

    @Test func aPeerThatIsNotAReceiverRefusesFilesAtOnceWith77() async throws {
        let fixture = try await Fixture()
        let listener = try RunningProgram(
            "tcpipctl", ["listen", "--name", "ops"], environment: fixture.hub.environment)
        let watcher = try RunningProgram(
            "tcpipctl", ["peers", "--watch", "--name", "watcher"], environment: fixture.hub.environment)
        try await fixture.hub.waitForPeers(["ops", "watcher"])
        let path = try fixture.file("report.txt", Array("report\n".utf8))
        for peer in ["ops", "watcher"] {
            let started = SuspendingClock.now
            let file = try await fixture.sendFile(["--to", peer, "--timeout", "120", path])
            #expect(file.status == 77, "\(file.stderr)")
            #expect(file.stderr.contains("not a receiver"))
            // At once, not after --timeout: half of it is a bound against "never", not a speed.
            #expect(seconds(since: started) < 60, "refused at once, not after --timeout")
        }
        let message = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "watcher", "-m", "hi"], environment: fixture.hub.environment)
        #expect(message.status == 77, "\(message.stderr)")
        listener.signal(SIGTERM)
        watcher.signal(SIGTERM)
        _ = try await listener.waitForExit()
        _ = try await watcher.waitForExit()
        try await fixture.hub.stop()
    }

    // MARK: the daemon under systemd

    /// A TCP listener on loopback that accepts nothing and says nothing: a hub that hangs during registration.
    final class SilentListener {
        let fd: Int32
        let port: Int

        init() throws {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            self.fd = fd
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                    bind(fd, pointer, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, pointer, &length) == 0
                }
            }
            guard bound else {
                close(fd)
                throw TestFailure("cannot listen: \(String(cString: strerror(errno)))")
            }
            port = Int(UInt16(bigEndian: address.sin_port))
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }

        private var accepted: [Int32] = []

        /// Waits until a client has connected (and keeps the connection, silent).
        func waitForConnection(timeout: Double = 60) async throws {
            let connected = try await eventually(within: timeout) {
                let client = accept(fd, nil, nil)
                if client >= 0 { accepted.append(client) }
                return client >= 0
            }
            guard connected else { throw TestFailure("nobody connected within \(timeout)s") }
        }

        deinit {
            close(fd)
            for client in accepted { close(client) }
        }
    }

    @Test func sigtermEndsTheReceiverAtOnceWhileConnectingRegisteringOrIdle() async throws {
        let fixture = try await Fixture()
        let silent = try SilentListener()
        let states: [(String, String)] = [
            ("backing off", "127.0.0.1:1"), ("registering", "127.0.0.1:\(silent.port)"),
            ("idle", fixture.hub.address),
        ]
        for (index, (state, server)) in states.enumerated() {
            let receiver = try RunningProgram(
                "tcpiprecvd",
                [
                    "--spool", fixture.spool + "-\(index)", "--name", "r\(index)", "--server", server,
                    // Far past the bound below: waiting for either would fail the test, at any load.
                    "--timeout", "600", "--grace", "600",
                ])
            switch state {
            case "idle": try await fixture.hub.waitForPeers(["r\(index)"])
            case "registering": try await silent.waitForConnection()
            default: try await receiver.waitForStderr(containing: "reconnecting")
            }
            #expect(receiver.isRunning, "\(state): \(receiver.stderr)")
            receiver.signal(SIGTERM)
            // The unit gives 20 s; the daemon takes well under one when no transfer is running (a loaded machine
            // may take seconds: the bound is a hang's, not a speed).
            let status = try await receiver.waitForExit(timeout: 60)
            #expect(status == 0, "\(state): \(receiver.stderr)")
            #expect(receiver.stderr.contains("stopped"), "\(state): \(receiver.stderr)")
        }
        withExtendedLifetime(silent) {}
        try await fixture.hub.stop()
    }

    @Test func aSecondDaemonOnTheSameSpoolExitsAndTouchesNothing() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver()
        let sender = try RunningProgram(
            "tcpipctl", ["send-file", "--to", "archive", "-", "--as", "slow.bin"], environment: fixture.hub.environment)
        let first = FileTransferEndToEndTests.random(200_000, seed: 3)
        sender.write(first)
        try await eventually { !fixture.inProgress.isEmpty }
        let inProgress = fixture.inProgress
        let leftBehind = fixture.temporary
        #expect(inProgress.count == 1)
        let second = try await RunningProgram.run(
            "tcpiprecvd", ["--spool", fixture.spool, "--name", "archive2"], environment: fixture.hub.environment,
            timeout: 60)
        #expect(second.status == 73)
        #expect(second.stderr.contains("in use by another tcpiprecvd (pid "), "\(second.stderr)")
        #expect(fixture.inProgress == inProgress)
        #expect(fixture.temporary == leftBehind)
        let rest = FileTransferEndToEndTests.random(100_000, seed: 4)
        sender.write(rest)
        sender.closeStdin()
        #expect(try await sender.waitForExit() == 0, "\(sender.stderr)")
        #expect(fixture.spooled("slow.bin") == first + rest)
        try await fixture.stop()
    }

    @Test func aDuplicateReceiverNameRetriesForNameWaitThenExits75() async throws {
        let fixture = try await Fixture()
        try await fixture.startReceiver()
        let second = try await RunningProgram.run(
            "tcpiprecvd", ["--spool", fixture.spool + "-2", "--name", "archive", "--name-wait", "1"],
            environment: fixture.hub.environment, timeout: 60)
        #expect(second.status == 75, "\(second.stderr)")
        #expect(second.stderr.contains("the name is taken by another peer; retrying"))
        #expect(second.stderr.contains("still taken"))
        try await fixture.stop()
    }

    @Test func execIsCheckedAtStartUp() async throws {
        let directory = try Unprivileged.makeDirectory("exec")
        defer { try? FileManager.default.removeItem(at: directory) }
        let notExecutable = directory.appendingPathComponent("hook.sh").path
        try Data("#!/bin/sh\n".utf8).write(to: URL(fileURLWithPath: notExecutable))
        chmod(notExecutable, 0o644)
        for command in ["/nonexistent/hook", "no-such-program-for-tcpip --flag", notExecutable] {
            let result = try await RunningProgram.run(
                "tcpiprecvd", ["--spool", directory.path + "/spool", "--exec", command, "--server", "127.0.0.1:1"],
                timeout: 60)
            #expect(result.status == 66, "\(command): \(result.stderr)")
            #expect(result.stderr.contains("--exec"))
        }
    }

    @Test func aHubOnAPortInUseSaysSoPlainly() async throws {
        let hub = try await TestHub()
        let second = try await RunningProgram.run("tcpipd", ["--listen", hub.address], timeout: 60)
        #expect(second.status == 73)
        #expect(second.stderr.contains("address already in use"), "\(second.stderr)")
        #expect(!second.stderr.contains("bind("))
        try await hub.stop()
    }

    // MARK: pipelines

    @Test(arguments: [["listen"], ["peers", "--watch"]])
    func aWatchingCommandExitsWhenItsReaderLeaves(arguments: [String]) async throws {
        let hub = try await TestHub()
        // `true` exits at once, closing the pipe's reading end; no message or event ever arrives.
        let command = (Unprivileged.prefix + [BuiltPrograms.path("tcpipctl")] + arguments).map { "'\($0)'" }
            .joined(separator: " ")
        let pipeline = try RunningProgram(
            "/bin/sh", ["-c", "\(command) | true; echo done"], environment: hub.environment)
        #expect(try await pipeline.waitForExit(timeout: 60) == 0, "\(pipeline.stderr)")
        #expect(pipeline.stdout == "done\n")
        try await hub.stop()
    }
}
