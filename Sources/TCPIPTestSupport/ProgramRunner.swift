import CTCPIPSystem
import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
    import Glibc
#endif

/// Where the built programs are: beside the test bundle in the build folder.
public enum BuiltPrograms {
    public static var directory: URL {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var candidate = executable.deletingLastPathComponent()
        for _ in 0..<4 {
            if FileManager.default.isExecutableFile(atPath: candidate.appendingPathComponent("tcpipd").path) {
                return candidate
            }
            candidate = candidate.deletingLastPathComponent()
        }
        return executable.deletingLastPathComponent()
    }

    public static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
}

/// The unprivileged user the built programs run as when the tests run as root (CI does): the units deploy them as a
/// service user, and root hides permission bugs (SO_DEBUG needing CAP_NET_ADMIN was one). `TCPIP_TEST_AS_ROOT=1` turns
/// it off for debugging.
public enum Unprivileged {
    public static let uid: uid_t = 65534
    public static let gid: gid_t = 65534

    /// Whether built programs are started as `nobody`.
    public static let active: Bool =
        geteuid() == 0 && ProcessInfo.processInfo.environment["TCPIP_TEST_AS_ROOT"] == nil

    /// What to put before a command to run it as the unprivileged user (nothing when not ``active``), e.g. inside a
    /// shell pipeline.
    public static var prefix: [String] { active ? setpriv : [] }

    /// `setpriv` execs in place: the PID a test holds is the program's own.
    static let setpriv = [
        "/usr/bin/setpriv", "--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", "--inh-caps=-all", "--",
    ]

    /// A new empty directory under the system's temporary directory that the programs can write to: owned by the
    /// unprivileged user when ``active``.
    public static func makeDirectory(_ prefix: String) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try handOver(directory.path)
        return directory
    }

    /// Gives a path the test made to the unprivileged user (when ``active``), so a program can write or remove it.
    public static func handOver(_ path: String) throws {
        guard active else { return }
        guard chown(path, uid, gid) == 0 else {
            throw TestFailure("chown \(path): \(String(cString: strerror(errno)))")
        }
    }
}

/// Collects everything a file descriptor yields on a thread of its own.
final class PipeCollector: @unchecked Sendable {
    private let lock = NIOLock()
    private var data = [UInt8]()
    private var ended = false
    private let thread: Thread

    init(handle: FileHandle) {
        let box = Box()
        thread = Thread {
            let fd = handle.fileDescriptor
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                box.collector?.append(chunk[0..<count])
            }
            box.collector?.finish()
        }
        box.collector = self
        thread.start()
    }

    private final class Box: @unchecked Sendable { weak var collector: PipeCollector? }

    private func append(_ bytes: ArraySlice<UInt8>) { lock.withLock { data += bytes } }
    private func finish() { lock.withLock { ended = true } }

    var bytes: [UInt8] { lock.withLock { data } }
    var isFinished: Bool { lock.withLock { ended } }
    var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// A child started with posix_spawn(3), not Foundation's Process: this toolchain's `Process.run()` reads past a buffer
/// while it lists /proc/self/fd (swift-corelibs-foundation#5472, fixed upstream) and now and then killed the whole test
/// run with SIGSEGV in memmove; AddressSanitizer names it. Every descriptor above stderr is closed in the child, and
/// the signals the test process ignores (SIGPIPE) are back to their defaults there.
public final class SpawnedProcess: @unchecked Sendable {
    public let processIdentifier: Int32
    private let lock = NIOLock()
    private var status: Int32?

    public init(
        path: String, arguments: [String], environment: [String: String], stdin: Int32, stdout: Int32, stderr: Int32
    )
        throws
    {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        guard tcpip_spawn_closefrom(&actions, 3) == 0 else {
            throw TestFailure("the C library cannot close descriptors in a spawned child (glibc 2.34 or later)")
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGINT, SIGQUIT, SIGHUP, SIGTERM, SIGUSR1, SIGUSR2] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var pid = pid_t()
        let result = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard result == 0 else { throw TestFailure("cannot start \(path): \(String(cString: strerror(result)))") }
        processIdentifier = pid
    }

    /// The exit status (128 + the signal when a signal ended it), nil while it runs. Reaps the child once it exited.
    public var exitStatus: Int32? {
        lock.withLock {
            if let status { return status }
            var info = siginfo_t()
            guard waitid(P_PID, id_t(processIdentifier), &info, WEXITED | WNOHANG) == 0,
                info._sifields._sigchld.si_pid == processIdentifier
            else { return nil }
            let code = info._sifields._sigchld.si_status
            status = info.si_code == Int32(CLD_EXITED) ? code : 128 + code
            return status
        }
    }

    /// Kills it and reaps it, if it still runs.
    func kill() {
        guard exitStatus == nil else { return }
        Glibc.kill(processIdentifier, SIGKILL)
        lock.withLock {
            guard status == nil else { return }
            var code: Int32 = 0
            if waitpid(processIdentifier, &code, 0) == processIdentifier { status = 128 + SIGKILL }
        }
    }
}

/// A program started by a test, with its stdin, stdout and stderr on pipes. Killed when released.
///
/// The waits here are bounds against a hang, not expectations of speed, so they are generous: the test command runs
/// every test at once on two cores, where a debug build of a program can take many seconds to start or stop.
public final class RunningProgram: @unchecked Sendable {
    public let process: SpawnedProcess
    public let name: String
    private let stdoutCollector: PipeCollector
    private let stderrCollector: PipeCollector
    private let stdinPipe = Pipe()

    /// Starts `program` (a built program's name, or an absolute path) with `arguments`. The environment is the test's,
    /// without any TCPIP_ variables, plus `environment`.
    ///
    /// A built program (named without a path) runs as the unprivileged user when the tests run as root (see
    /// ``Unprivileged``), as its units deploy it. `fileSizeLimit` sets RLIMIT_FSIZE (`ulimit -f`, in bytes) for it,
    /// `openFileLimit` RLIMIT_NOFILE (`ulimit -n`).
    public init(
        _ program: String, _ arguments: [String], environment: [String: String] = [:], fileSizeLimit: Int? = nil,
        openFileLimit: Int? = nil
    ) throws {
        // Writing to a program that already exited must fail that test, not kill the whole test run with SIGPIPE.
        _ = Glibc.signal(SIGPIPE, SIG_IGN)
        name = program
        let path = program.hasPrefix("/") ? program : BuiltPrograms.path(program)
        var command = [path] + arguments
        let limits =
            (fileSizeLimit.map { ["--fsize=\($0)"] } ?? []) + (openFileLimit.map { ["--nofile=\($0)"] } ?? [])
        if !limits.isEmpty { command = ["/usr/bin/prlimit"] + limits + ["--"] + command }
        if !program.hasPrefix("/") && Unprivileged.active { command = Unprivileged.setpriv + command }
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TCPIP_") }
        env.merge(environment) { $1 }
        let out = Pipe()
        let err = Pipe()
        process = try SpawnedProcess(
            path: command[0], arguments: Array(command.dropFirst()), environment: env,
            stdin: stdinPipe.fileHandleForReading.fileDescriptor, stdout: out.fileHandleForWriting.fileDescriptor,
            stderr: err.fileHandleForWriting.fileDescriptor)
        // The child's ends are the child's: the end of its output must be seen once it exits.
        try? out.fileHandleForWriting.close()
        try? err.fileHandleForWriting.close()
        try? stdinPipe.fileHandleForReading.close()
        stdoutCollector = PipeCollector(handle: out.fileHandleForReading)
        stderrCollector = PipeCollector(handle: err.fileHandleForReading)
    }

    deinit {
        process.kill()
    }

    /// Whether the program still runs (the kernel's answer).
    public var isRunning: Bool { exitStatus == nil }

    /// The exit status (128 + the signal when a signal ended the program), nil while it runs.
    public var exitStatus: Int32? { process.exitStatus }

    /// Lets the program run in short slices (SIGCONT, about 2 ms, SIGSTOP) and looks at `condition` only while it is
    /// stopped, until the condition holds; then returns true with the program stopped (`signal(SIGCONT)` lets it go
    /// on). A poll beside a running program can miss its moment on a loaded machine (CI once saw a whole 128 MiB
    /// transfer finish between two looks); a stopped program cannot run past it. Returns false, with the program
    /// running, when it exited first or `timeout` seconds passed. Runs on a thread of its own, off the test pool.
    public func stop(when condition: @escaping @Sendable () -> Bool, timeout: Double = 60) async -> Bool {
        await onItsOwnThread {
            let pid = self.process.processIdentifier
            let deadline = SuspendingClock.now + .seconds(timeout)
            while SuspendingClock.now < deadline {
                kill(pid, SIGSTOP)
                if self.waitUntilStopped() && condition() { return true }
                kill(pid, SIGCONT)
                if self.exitStatus != nil { return false }
                usleep(2000)
            }
            return false
        }
    }

    /// Waits (a second at most) until every thread of the program has stopped; false if it exited or did not stop.
    private func waitUntilStopped() -> Bool {
        let pid = process.processIdentifier
        for _ in 0..<1000 {
            if exitStatus != nil { return false }
            var info = siginfo_t()
            if waitid(P_PID, id_t(pid), &info, WSTOPPED | WNOHANG | WNOWAIT) == 0,
                info._sifields._sigchld.si_pid == pid
            {
                return true
            }
            usleep(1000)
        }
        return false
    }

    public var stdout: String { stdoutCollector.text }
    public var stdoutBytes: [UInt8] { stdoutCollector.bytes }
    public var stderr: String { stderrCollector.text }
    public var stdoutLines: [String] { stdout.split(separator: "\n").map(String.init) }

    /// Writes to the program's stdin; a program that has exited makes this a no-op (its test fails on its own).
    public func write(_ bytes: [UInt8]) { try? stdinPipe.fileHandleForWriting.write(contentsOf: Data(bytes)) }
    public func write(_ text: String) { write(Array(text.utf8)) }
    public func closeStdin() { try? stdinPipe.fileHandleForWriting.close() }

    public func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// What the program's open descriptors point at (/proc/PID/fd): paths, `socket:[…]`, and for a file opened unnamed
    /// (O_TMPFILE) or removed, `DIR/#INODE (deleted)`. Empty once it exited.
    public var openFiles: [String] {
        let descriptors = "/proc/\(process.processIdentifier)/fd"
        return ((try? FileManager.default.contentsOfDirectory(atPath: descriptors)) ?? []).compactMap {
            try? FileManager.default.destinationOfSymbolicLink(atPath: descriptors + "/" + $0)
        }
    }

    /// Waits until stdout holds at least `count` lines; returns them. Throws after `timeout` seconds.
    @discardableResult
    public func waitForLines(_ count: Int, timeout: Double = 60) async throws -> [String] {
        try await eventually(within: timeout) {
            (stdoutLines.count >= count && stdout.hasSuffix("\n")) || (!isRunning && stdoutCollector.isFinished)
        }
        let lines = stdoutLines
        if lines.count >= count && stdout.hasSuffix("\n") { return lines }
        throw TestFailure(
            "\(name): wanted \(count) lines on stdout, have \(stdoutLines.count): \(stdout) stderr: \(stderr)")
    }

    /// Waits until stderr (its log) contains `text`. Throws after `timeout` seconds or when the program exits first.
    public func waitForStderr(containing text: String, timeout: Double = 60) async throws {
        try await eventually(within: timeout) { stderr.contains(text) || !isRunning }
        guard stderr.contains(text) else { throw TestFailure("\(name): no \"\(text)\" on stderr: \(stderr)") }
    }

    /// Waits for the program to exit; returns its status (128 + signal when a signal ended it). Kills it and throws
    /// after `timeout` seconds.
    @discardableResult
    public func waitForExit(timeout: Double = 60) async throws -> Int32 {
        guard try await eventually(within: timeout, { exitStatus != nil }), let status = exitStatus else {
            process.kill()
            throw TestFailure("\(name) did not exit within \(timeout)s; stderr: \(stderr)")
        }
        // Let the collectors see the end of the pipes (one inherited by another test's program ends later).
        try await eventually(within: 1, every: .milliseconds(5)) {
            stdoutCollector.isFinished && stderrCollector.isFinished
        }
        return status
    }

    /// Runs a program to completion with optional stdin; returns status, stdout and stderr.
    public static func run(
        _ program: String, _ arguments: [String], environment: [String: String] = [:], stdin: [UInt8]? = nil,
        timeout: Double = 60, fileSizeLimit: Int? = nil
    ) async throws -> (status: Int32, stdout: String, stderr: String) {
        let running = try RunningProgram(program, arguments, environment: environment, fileSizeLimit: fileSizeLimit)
        if let stdin { running.write(stdin) }
        running.closeStdin()
        let status = try await running.waitForExit(timeout: timeout)
        return (status, running.stdout, running.stderr)
    }
}

/// Polls `condition` every `interval` until it holds or `timeout` seconds pass; returns whether it held. A bound
/// against a hang, not a speed: the test command runs every test at once. The one polling loop of the tests.
@discardableResult
public func eventually(
    within timeout: Double = 60, every interval: Duration = .milliseconds(10), _ condition: () async throws -> Bool
) async throws -> Bool {
    // CLOCK_MONOTONIC (SuspendingClock): CI saw a 60 s wait on the wall clock end after 3 s, and a 30 s wait on
    // CLOCK_BOOTTIME (ContinuousClock) end within a 20 s test: the VM was paused, and only this clock stood still.
    let deadline = SuspendingClock.now + .seconds(timeout)
    while try await !condition() {
        guard SuspendingClock.now < deadline else { return false }
        try await Task.sleep(for: interval)
    }
    return true
}

/// Seconds since `start` on the monotonic clock (a test's elapsed time must not follow the wall clock's steps).
public func seconds(since start: SuspendingClock.Instant) -> Double {
    let elapsed = SuspendingClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

/// Runs `body` on a thread of its own and returns its result: for blocking work (a socket read, a tight watch on a
/// program) that must neither hold one of the test pool's threads nor wait for one.
public func onItsOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: body()) }.start()
    }
}

/// A failure inside a test helper.
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A `tcpipd` started on loopback port 0 for one test, with three connection loops unless the test says otherwise
/// (whatever the machine's cores: connections then sit on different loops, each a hop from the core's, as on a big
/// machine).
public final class TestHub: @unchecked Sendable {
    public let program: RunningProgram
    public let address: String
    public var environment: [String: String] { ["TCPIP_SERVER": address] }

    public init(_ arguments: [String] = [], environment: [String: String] = [:], openFileLimit: Int? = nil)
        async throws
    {
        let threads = arguments.contains("--threads") ? [] : ["--threads", "3"]
        program = try RunningProgram(
            "tcpipd", ["--listen", "127.0.0.1:0"] + threads + arguments, environment: environment,
            openFileLimit: openFileLimit)
        let lines = try await program.waitForLines(1)
        guard let first = lines.first, first.hasPrefix("listening on ") else {
            throw TestFailure("tcpipd did not say where it listens: \(lines) \(program.stderr)")
        }
        address = String(first.dropFirst("listening on ".count))
    }

    public var port: Int { Int(address.split(separator: ":").last!)! }

    /// SIGTERM, then the exit status.
    @discardableResult
    public func stop() async throws -> Int32 {
        program.signal(SIGTERM)
        return try await program.waitForExit()
    }
}

extension TestHub {
    /// Waits until peers with these names are registered (polling `tcpipctl peers`, with `environment` when the hub
    /// needs more than its address: a pinned key, a state directory).
    public func waitForPeers(_ names: [String], timeout: Double = 60, environment: [String: String]? = nil)
        async throws
    {
        let environment = environment ?? self.environment
        let registered = try await eventually(within: timeout, every: .milliseconds(50)) {
            let result = try await RunningProgram.run(
                "tcpipctl", ["peers", "--name", "probe-\(UUID().uuidString.prefix(8))"], environment: environment)
            return result.status == 0 && names.allSatisfy { result.stdout.contains("\"name\":\"\($0)\"") }
        }
        guard registered else { throw TestFailure("peers \(names) did not register within \(timeout)s") }
    }
}
