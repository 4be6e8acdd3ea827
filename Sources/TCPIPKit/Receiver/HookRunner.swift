import Foundation
import Logging

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
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0].contains("/") ? argv[0] : "/usr/bin/env")
        process.arguments = argv[0].contains("/") ? Array(argv.dropFirst()) : argv
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        let status: Int32 = await withCheckedContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(returning: -1)
            }
        }
        if status != 0 {
            logger.warning(
                "the --exec hook failed; the file is kept",
                metadata: ["file": "\(escapedForLog(file.storedAs))", "status": "\(status)"])
        } else {
            logger.debug("--exec hook done", metadata: ["file": "\(escapedForLog(file.storedAs))"])
        }
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
