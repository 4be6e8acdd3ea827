import Foundation
import TCPIPTestSupport
import Testing

/// The harness the end-to-end tests stand on: it must see a program's exit when the program exits.
@Suite struct ProgramRunnerTests {
    /// Foundation learns of an exit through a socket the child inherits; a grandchild left running keeps that socket
    /// open, and so does a program another test starts at the same moment (swift-corelibs-foundation#4795). Foundation
    /// then reports the program as running until the other one ends, and a test waiting on it fails for nothing.
    @Test func anExitIsSeenAtOnceEvenWhenAnotherProgramHoldsFoundationsSocket() async throws {
        // Foundation would see the exit after 120 s, when the grandchild ends: after the wait has given up.
        let program = try RunningProgram("/bin/sh", ["-c", "sleep 120 >/dev/null 2>&1 & echo $!; exit 3"])
        let child = try #require(Int32(try await program.waitForLines(1)[0]))
        defer { kill(child, SIGKILL) }
        let status = try await program.waitForExit(timeout: 60)
        #expect(status == 3)
        #expect(!program.isRunning)
    }

    @Test func aSignalIsReportedAs128PlusItsNumberEvenWhenAnotherProgramHoldsFoundationsSocket() async throws {
        let program = try RunningProgram("/bin/sh", ["-c", "sleep 120 >/dev/null 2>&1 & echo $!; kill -KILL $$"])
        let child = try #require(Int32(try await program.waitForLines(1)[0]))
        defer { kill(child, SIGKILL) }
        let status = try await program.waitForExit(timeout: 60)
        #expect(status == 128 + SIGKILL)
    }

    /// `stop(when:)` looks only while the program is stopped, and returns with it stopped: what the condition saw is
    /// still so when the test acts on it, however loaded the machine.
    @Test func aProgramStoppedWhenItsConditionHoldsStaysStoppedUntilContinued() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("runner-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let counter = directory.appendingPathComponent("counter").path
        @Sendable func count() -> Int {
            Int((try? String(contentsOfFile: counter, encoding: .utf8))?.split(separator: "\n").last ?? "") ?? 0
        }
        let program = try RunningProgram(
            "/bin/sh", ["-c", "i=0; while :; do i=$((i+1)); echo $i >> '\(counter)'; done"])
        #expect(await program.stop(when: { count() >= 200 }))
        let seen = count()
        #expect(seen >= 200)
        try await Task.sleep(for: .milliseconds(200))
        #expect(count() == seen, "it ran on while stopped")
        program.signal(SIGCONT)
        #expect(try await eventually { count() > seen }, "SIGCONT lets it go on")
        program.signal(SIGKILL)
        #expect(try await program.waitForExit() == 128 + SIGKILL)
    }

    @Test func stoppingAProgramThatExitsFirstReturnsFalse() async throws {
        let program = try RunningProgram("/bin/sh", ["-c", "exit 4"])
        #expect(await program.stop(when: { false }) == false)
        #expect(try await program.waitForExit() == 4)
    }
}
