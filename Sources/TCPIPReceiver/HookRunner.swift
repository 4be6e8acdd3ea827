import FoundationEssentials
import Logging
import NIOPosix
import TCPIPCore

#if canImport(Glibc)
    import Glibc
#endif

/// Runs the `--exec` command after each published file: argv as given (no shell), the file's path and metadata in
/// the environment, at most `maxJobs` at once. A failing hook is logged; the file stays where it is.
public actor HookRunner {
    public let argv: [String]
    public let maxJobs: Int
    private let logger: Logger
    private var running = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    public init(argv: [String], maxJobs: Int, logger: Logger) {
        precondition(!argv.isEmpty && maxJobs > 0)
        self.argv = argv
        self.maxJobs = maxJobs
        self.logger = logger
    }

    /// Starts the hook for a published file, without waiting for it.
    public nonisolated func launch(_ file: FileReceiver.Published) {
        Task { await self.run(file) }
    }

    private func run(_ file: FileReceiver.Published) async {
        if running >= maxJobs {
            await withCheckedContinuation { waiting.append($0) }
        } else {
            running += 1
        }
        defer {
            if waiting.isEmpty { running -= 1 } else { waiting.removeFirst().resume() }
        }
        var environment = ProcessInfo.processInfo.environment.filter { $0.key != "TCPIP_TOKEN" }
        environment["TCPIP_FILE"] = file.path
        environment["TCPIP_NAME"] = file.storedAs
        environment["TCPIP_FROM"] = file.from?.name ?? "peer\(file.fromID)"
        environment["TCPIP_FROM_ID"] = String(file.fromID)
        environment["TCPIP_SHA256"] = file.sha256
        environment["TCPIP_SIZE"] = String(file.size)
        let (argv, variables) = (self.argv, environment)
        let status: Int32
        do {
            // Spawning and waiting block: on the thread pool, never on an event loop or the cooperative pool.
            status = try await NIOThreadPool.singleton.runIfActive { Self.spawnAndWait(argv, environment: variables) }
        } catch {
            status = -1
        }
        if status < 0 {
            logger.warning(
                "the --exec hook could not start; the file is kept",
                metadata: ["file": "\(escapedForLog(file.storedAs))", "command": "\(escapedForLog(argv[0]))"])
        } else if status != 0 {
            logger.warning(
                "the --exec hook failed; the file is kept",
                metadata: ["file": "\(escapedForLog(file.storedAs))", "status": "\(status)"])
        } else {
            logger.debug("--exec hook done", metadata: ["file": "\(escapedForLog(file.storedAs))"])
        }
    }

    /// Runs `argv` (through PATH when argv[0] has no slash) with stdin from /dev/null; returns its exit status, 128 +
    /// the signal if it was killed, or -1 if it could not start.
    public static func spawnAndWait(_ argv: [String], environment: [String: String]) -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        let arguments = argv.map { strdup($0) } + [nil]
        let variables = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in arguments + variables { free(pointer) } }
        var pid = pid_t()
        let started = posix_spawnp(&pid, argv[0], &actions, nil, arguments, variables)
        guard started == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { return -1 }
        }
        // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import.
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Why `argv` cannot be run (its program is missing or not executable), or nil when it can. Looks the program up
    /// in PATH as posix_spawnp does when it has no slash.
    public static func problem(
        with argv: [String], path: String? = ProcessInfo.processInfo.environment["PATH"]
    ) -> String? {
        guard let program = argv.first, !program.isEmpty else { return "the command is empty" }
        func executable(_ candidate: String) -> Bool {
            var info = stat()
            return stat(candidate, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG && access(candidate, X_OK) == 0
        }
        if program.contains("/") {
            if executable(program) { return nil }
            if access(program, F_OK) != 0 { return "\(program) does not exist" }
            return "\(program) is not an executable file"
        }
        let directories = (path ?? "/usr/local/bin:/usr/bin:/bin").split(
            separator: ":", omittingEmptySubsequences: false)
        for directory in directories where executable((directory.isEmpty ? "." : String(directory)) + "/" + program) {
            return nil
        }
        return "\(program) is not an executable in PATH"
    }

    /// Splits a command line into argv: whitespace separates words; single and double quotes group; no expansion.
    public static func split(_ command: String) -> [String] {
        var words: [String] = []
        var current = ""
        var quote: Character?
        var inWord = false
        for character in command {
            if let open = quote {
                if character == open { quote = nil } else { current.append(character) }
            } else if character == "'" || character == "\"" {
                quote = character
                inWord = true
            } else if character == " " || character == "\t" || character == "\n" {
                if inWord { words.append(current) }
                current = ""
                inWord = false
            } else {
                current.append(character)
                inWord = true
            }
        }
        if inWord { words.append(current) }
        return words
    }
}
