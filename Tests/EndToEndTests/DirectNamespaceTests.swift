import Foundation
import TCPIPTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Whether network namespaces can be made here: as root, with iproute2 and nftables (.ci/run installs them).
let namespacesAvailable =
    geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip")
    && FileManager.default.isExecutableFile(atPath: "/usr/sbin/nft")

/// Three machines in network namespaces on one bridge — hub 10.201.0.1, alice 10.201.0.2, bob 10.201.0.3 — with the
/// hub and bob's receiver on their addresses (plaintext, --insecure-plaintext: TLS on the direct link is tested on
/// loopback). Needs root (CI runs as root) and iproute2 and nftables.
@Suite(.enabled(if: namespacesAvailable, "needs root, ip and nft")) struct DirectNamespaceTests {
    /// The namespaces of one test, removed when it ends.
    final class Network: @unchecked Sendable {
        static let available =
            geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip")
            && FileManager.default.isExecutableFile(atPath: "/usr/sbin/nft")
        nonisolated(unsafe) static var counter = 0
        static let lock = NSLock()

        let prefix: String
        let directory: URL
        var programs: [RunningProgram] = []
        var hubAddress: String { "10.201.0.1:9999" }

        init() throws {
            let serial = Self.lock.withLock {
                Self.counter += 1
                return Self.counter
            }
            prefix = "tcpip\(getpid() % 100_000)x\(serial)"
            directory = try Unprivileged.makeDirectory("netns")
            try ip(["netns", "add", "\(prefix)-sw"])
            try ip(["-n", "\(prefix)-sw", "link", "add", "br0", "type", "bridge"])
            try ip(["-n", "\(prefix)-sw", "link", "set", "br0", "up"])
            for (index, host) in ["hub", "alice", "bob"].enumerated() {
                let ns = "\(prefix)-\(host)"
                try ip(["netns", "add", ns])
                try ip([
                    "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", host, "netns", "\(prefix)-sw",
                ])
                try ip(["-n", "\(prefix)-sw", "link", "set", host, "master", "br0", "up"])
                try ip(["-n", ns, "addr", "add", "10.201.0.\(index + 1)/24", "dev", "eth0"])
                try ip(["-n", ns, "link", "set", "eth0", "up"])
                try ip(["-n", ns, "link", "set", "lo", "up"])
            }
        }

        deinit {
            for program in programs { program.signal(SIGKILL) }
            for host in ["hub", "alice", "bob", "sw"] {
                try? Self.run("/usr/sbin/ip", ["netns", "del", "\(prefix)-\(host)"])
            }
            try? FileManager.default.removeItem(at: directory)
        }

        func ip(_ arguments: [String]) throws { try Self.run("/usr/sbin/ip", arguments) }

        /// A firewall on bob that drops what alice sends to its direct port (an established link included).
        func dropAliceToBobsDirectPort() throws {
            try on(
                "bob",
                [
                    "nft",
                    "add table inet f; add chain inet f in { type filter hook input priority 0; }; "
                        + "add rule inet f in ip saddr 10.201.0.2 tcp dport 7000 drop",
                ])
        }

        /// Runs a command in `host`'s namespace (nft, tc), as root.
        func on(_ host: String, _ command: [String]) throws {
            try Self.run("/usr/sbin/ip", ["netns", "exec", "\(prefix)-\(host)"] + command)
        }

        static func run(_ path: String, _ arguments: [String]) throws {
            // Synchronous (set-up and deinit): posix_spawn and wait, as the test runner's programs are started.
            let process = try SpawnedProcess(
                path: path, arguments: arguments, environment: ProcessInfo.processInfo.environment, stdin: 0,
                stdout: 2, stderr: 2)
            let deadline = SuspendingClock.now + .seconds(30)
            while process.exitStatus == nil && SuspendingClock.now < deadline { usleep(2000) }
            guard process.exitStatus == 0 else {
                throw TestFailure("\(path) \(arguments.joined(separator: " ")) failed: \(process.exitStatus ?? -1)")
            }
        }

        /// Starts a built program in `host`'s namespace, as the unprivileged user.
        @discardableResult
        func start(_ host: String, _ program: String, _ arguments: [String], environment: [String: String] = [:])
            throws -> RunningProgram
        {
            let running = try RunningProgram(
                "/usr/sbin/ip",
                ["netns", "exec", "\(prefix)-\(host)"] + Unprivileged.prefix
                    + [program.hasPrefix("/") ? program : BuiltPrograms.path(program)] + arguments,
                environment: environment)
            programs.append(running)
            return running
        }

        /// Runs `tcpipctl` on alice to completion.
        func alice(_ arguments: [String], timeout: Double = 120, budget: Int? = nil) async throws -> (
            status: Int32, stdout: String, stderr: String
        ) {
            // A loaded machine may need more than the race's 1.5 s where a test wants the direct path.
            let running = try start(
                "alice", "/usr/bin/env",
                (budget.map { ["TCPIP_DIRECT_BUDGET_MS=\($0)"] } ?? []) + [BuiltPrograms.path("tcpipctl")] + arguments
                    + ["--server", hubAddress, "--insecure-plaintext"])
            let status = try await running.waitForExit(timeout: timeout)
            return (status, running.stdout, running.stderr)
        }

        var spool: String { directory.appendingPathComponent("spool").path }

        /// The hub on 10.201.0.1 and bob's receiver, its direct listener on 10.201.0.3:7000 unless `extra` says.
        func startHubAndBob(_ extra: [String] = []) async throws -> (hub: RunningProgram, bob: RunningProgram) {
            let hub = try start(
                "hub", "tcpipd", ["--listen", hubAddress, "--insecure-plaintext", "--insecure-no-token"])
            _ = try await hub.waitForLines(1)
            let bob = try start(
                "bob", "tcpiprecvd",
                ["--server", hubAddress, "--insecure-plaintext", "--name", "bob", "--spool", spool]
                    + (extra.isEmpty ? ["--direct-listen", "10.201.0.3:7000"] : extra))
            try await bob.waitForStderr(containing: "ready")
            return (hub, bob)
        }

        func file(_ name: String, size: Int) throws -> (path: String, bytes: [UInt8]) {
            var generator = SeededGenerator(seed: UInt64(size))
            let bytes = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let path = directory.appendingPathComponent(name).path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            try Unprivileged.handOver(path)
            return (path, bytes)
        }

        func spooled(_ name: String) -> [UInt8]? {
            (try? Data(contentsOf: URL(fileURLWithPath: spool + "/" + name))).map(Array.init)
        }
    }

    static func line(_ stdout: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data((stdout.split(separator: "\n").first ?? "").utf8))
            as? [String: Any] ?? [:]
    }

    @Test func aliceReachesBobDirectlyAndTheHubCarriesAlmostNone() async throws {
        let network = try Network()
        let (hub, _) = try await network.startHubAndBob(["--direct-listen", "0.0.0.0:7000"])
        // bob also has an address nobody can reach: a hint that points nowhere is raced past.
        try network.ip(["-n", "\(network.prefix)-bob", "addr", "add", "10.99.0.3/32", "dev", "lo"])
        let file = try network.file("direct.bin", size: 8 << 20)
        let before = DirectEndToEndTests.bytesRead(hub)
        let sent = try await network.alice(
            ["send-file", "--to", "bob", "--json", "--wait-for-peer", "10", file.path], budget: 20_000)
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(try Self.line(sent.stdout)["path"] as? String == "direct", "\(sent.stdout)")
        #expect(network.spooled("direct.bin") == file.bytes)
        let carried = DirectEndToEndTests.bytesRead(hub) - before
        #expect(carried < 256 << 10, "the hub read \(carried) bytes of an 8 MiB direct transfer")
    }

    @Test func aFirewallBetweenAliceAndBobSendsTheFileThroughTheHubWithinSeconds() async throws {
        let network = try Network()
        _ = try await network.startHubAndBob()
        // bob drops alice's packets to its direct port: her connection attempts go unanswered.
        try network.dropAliceToBobsDirectPort()
        let file = try network.file("relayed.bin", size: 64 << 10)
        let sent = try await network.alice([
            "send-file", "--to", "bob", "--json", "-v", "--wait-for-peer", "10", file.path,
        ])
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(try Self.line(sent.stdout)["path"] as? String == "relay", "\(sent.stdout)")
        #expect(network.spooled("relayed.bin") == file.bytes)
        // It gave up on the direct link when the race's time ran out (how long that takes is bench/direct.sh's).
        #expect(sent.stderr.contains("no hint of bob answered"), "\(sent.stderr)")
        // --direct only does not fall back: 75.
        let only = try await network.alice(["send-file", "--to", "bob", "--direct", "only", "--as", "o", file.path])
        #expect(only.status == 75, "\(only.stderr)")
        #expect(network.spooled("o") == nil)
    }

    @Test func aFirewallThatStartsDroppingMidFileLeavesItStoredOnceAndIntact() async throws {
        let network = try Network()
        let (_, bob) = try await network.startHubAndBob()
        // alice's link at 100 Mbit/s, so the file is still crossing when the firewall starts dropping.
        try network.on(
            "alice",
            [
                "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "100mbit", "burst", "64kb",
                "latency", "50ms",
            ])
        let file = try network.file("cut.bin", size: 48 << 20)
        let sender = try network.start(
            "alice", "tcpipctl",
            [
                "send-file", "--to", "bob", "--json", "--wait-for-peer", "10", file.path, "--server",
                network.hubAddress,
                "--insecure-plaintext",
            ])
        // Once bob holds a few MiB of it, everything from alice to bob's direct port is dropped.
        let partial = network.spool + "/.tcpip/partial"
        // A bound against "never", generous: with the whole suite at once on two cores a debug sender may take a while.
        let started = try await eventually(within: 180, every: .milliseconds(20)) {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: partial)) ?? []
            return names.contains { name in
                !name.hasSuffix(".json")
                    && ((try? FileManager.default.attributesOfItem(atPath: partial + "/" + name)[.size] as? Int)
                        ?? 0) > 4 << 20
            }
        }
        #expect(started, "the transfer never got going: \(sender.stderr) \(bob.stderr)")
        try network.dropAliceToBobsDirectPort()
        let status = try await sender.waitForExit(timeout: 120)
        #expect(status == 0, "\(sender.stderr)")
        let result = try Self.line(sender.stdout)
        #expect(result["status"] as? String == "stored", "\(sender.stdout)")
        #expect(result["path"] as? String == "relay")
        #expect((result["resumedFrom"] as? Int ?? 0) > 0, "the relay did not resume: \(sender.stdout)")
        #expect(network.spooled("cut.bin") == file.bytes)
        let visible = ((try? FileManager.default.contentsOfDirectory(atPath: network.spool)) ?? []).filter {
            !$0.hasPrefix(".")
        }
        #expect(visible == ["cut.bin"], "stored more than once: \(visible)")
    }

    /// Over TLS, a hint that leads to another key: bob's direct port is redirected (nft DNAT) to an impostor on bob's
    /// machine, a receiver the hub knows under another name and key. alice's TLS handshake refuses the key, nothing
    /// of the file reaches the impostor, and the file reaches bob through the hub.
    @Test func aHintThatLeadsToAnotherKeyIsRefusedAndTheHubCarriesTheFile() async throws {
        let network = try Network()
        var ids: [String: String] = [:]
        for node in ["hub", "bob", "alice", "impostor"] {
            let result = try await RunningProgram.run(
                "tcpipctl", ["id", "--state-dir", network.directory.appendingPathComponent(node).path])
            guard result.status == 0 else { throw TestFailure("id for \(node): \(result.stderr)") }
            ids[node] = result.stdout.trimmingCharacters(in: .newlines)
        }
        let peers = network.directory.appendingPathComponent("authorized_peers").path
        let lines = [
            "\(ids["bob"]!) bob receiver", "\(ids["impostor"]!) impostor receiver", "\(ids["alice"]!) alice",
        ]
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: peers))
        try Unprivileged.handOver(peers)
        func environment(_ node: String) -> [String: String] {
            ["TCPIP_STATE_DIR": network.directory.appendingPathComponent(node).path, "TCPIP_HUB_ID": ids["hub"]!]
        }
        let hub = try network.start(
            "hub", "tcpipd",
            [
                "--listen", network.hubAddress, "--authorized-peers", peers, "--state-dir",
                network.directory.appendingPathComponent("hub").path,
            ])
        _ = try await hub.waitForLines(1)
        let bob = try network.start(
            "bob", "tcpiprecvd",
            [
                "--server", network.hubAddress, "--name", "bob", "--spool", network.spool, "--direct-listen",
                "10.201.0.3:7000",
            ],
            environment: environment("bob"))
        let impostorSpool = network.spool + "-impostor"
        let impostor = try network.start(
            "bob", "tcpiprecvd",
            [
                "--server", network.hubAddress, "--name", "impostor", "--spool", impostorSpool, "--direct-listen",
                "10.201.0.3:7001",
            ], environment: environment("impostor"))
        try await bob.waitForStderr(containing: "ready")
        try await impostor.waitForStderr(containing: "ready")
        try network.on(
            "bob",
            [
                "nft",
                "add table ip nat; add chain ip nat pre { type nat hook prerouting priority -100; }; "
                    + "add rule ip nat pre tcp dport 7000 dnat to 10.201.0.3:7001",
            ])
        let file = try network.file("pinned.bin", size: 256 << 10)
        let sender = try network.start(
            "alice", "tcpipctl",
            ["send-file", "--to", "bob", "--json", file.path, "--server", network.hubAddress],
            environment: environment("alice"))
        #expect(try await sender.waitForExit(timeout: 120) == 0, "\(sender.stderr)")
        #expect(try Self.line(sender.stdout)["path"] as? String == "relay", "\(sender.stdout)")
        #expect(network.spooled("pinned.bin") == file.bytes)
        let landed = (try? FileManager.default.contentsOfDirectory(atPath: impostorSpool)) ?? []
        #expect(landed.filter { !$0.hasPrefix(".") }.isEmpty, "the impostor got \(landed)")
        // --direct only says why: the key it was shown is not bob's.
        let only = try network.start(
            "alice", "tcpipctl",
            [
                "send-file", "--to", "bob", "--direct", "only", "--as", "o.bin", file.path, "--server",
                network.hubAddress,
            ], environment: environment("alice"))
        #expect(try await only.waitForExit(timeout: 120) == 75, "\(only.stderr)")
        #expect(only.stderr.contains(ids["impostor"]!), "\(only.stderr)")
    }
}
