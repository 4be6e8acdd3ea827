import Foundation
import TCPIPTestSupport
import Testing

/// The Unix-tool surface: make install, the demo, versions.
@Suite struct PackagingTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test func makeInstallPutsEverythingInPlace() async throws {
        let stage = FileManager.default.temporaryDirectory.appendingPathComponent("stage-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: stage) }
        let built = BuiltPrograms.directory.lastPathComponent  // debug, as the tests run
        // Not /usr/local, which the committed units name already: the installed units must name this one.
        let installPrefix = "/opt/tcpip"
        let install = try await RunningProgram.run(
            "/usr/bin/make",
            [
                "-s", "-C", Self.repository.path, "install", "CONFIG=\(built)", "NOBUILD=1", "PREFIX=\(installPrefix)",
                "DESTDIR=\(stage.path)",
            ]
        )
        #expect(install.status == 0, "\(install.stderr)")
        let prefix = stage.path + installPrefix
        let expected = [
            "bin/tcpipd", "bin/tcpipctl", "bin/tcpiprecvd", "share/man/man1/tcpipctl.1", "share/man/man8/tcpipd.8",
            "share/man/man8/tcpiprecvd.8", "share/bash-completion/completions/tcpipctl",
            "share/zsh/site-functions/_tcpipctl",
            "share/fish/vendor_completions.d/tcpipctl.fish", "share/bash-completion/completions/tcpiprecvd",
            "share/zsh/site-functions/_tcpipd", "share/fish/vendor_completions.d/tcpiprecvd.fish",
            "lib/systemd/system/tcpipd.service", "lib/systemd/system/tcpiprecvd.service", "lib/sysusers.d/tcpip.conf",
            "lib/tmpfiles.d/tcpip.conf",
        ]
        for path in expected { #expect(FileManager.default.fileExists(atPath: prefix + "/" + path), "\(path)") }
        // The units start the installed programs (DESTDIR is only where the package is staged).
        for program in ["tcpipd", "tcpiprecvd"] {
            let unitPath = "\(prefix)/lib/systemd/system/\(program).service"
            let unit = (try? String(contentsOfFile: unitPath, encoding: .utf8)) ?? ""
            #expect(unit.contains("\nExecStart=\(installPrefix)/bin/\(program) "), "\(program).service: \(unit)")
            #expect(!unit.contains("/usr/local/bin/"), "\(program).service")
            #expect(!unit.contains(stage.path), "\(program).service")
        }
        // Stripped: no symbol table, no debug information.
        for program in ["tcpipd", "tcpipctl", "tcpiprecvd"] {
            let sections = try await RunningProgram.run("/usr/bin/readelf", ["-S", "-W", "\(prefix)/bin/\(program)"])
            #expect(sections.status == 0, "\(sections.stderr)")
            #expect(sections.stdout.contains(".text"), "\(program): \(sections.stdout)")
            #expect(!sections.stdout.contains(".symtab"), "\(program) is not stripped")
            #expect(!sections.stdout.contains(".debug_info"), "\(program) keeps debug information")
        }
        let version = try await RunningProgram.run(prefix + "/bin/tcpipctl", ["--version"])
        #expect(version.status == 0)
        #expect(!version.stdout.isEmpty)
        let uninstall = try await RunningProgram.run(
            "/usr/bin/make",
            ["-s", "-C", Self.repository.path, "uninstall", "PREFIX=\(installPrefix)", "DESTDIR=\(stage.path)"]
        )
        #expect(uninstall.status == 0)
        for path in expected { #expect(!FileManager.default.fileExists(atPath: prefix + "/" + path), "\(path)") }
    }

    @Test func demoRunsToCompletion() async throws {
        let demo = try await RunningProgram.run(
            Self.repository.appendingPathComponent("scripts/demo").path, [],
            environment: ["BIN": BuiltPrograms.directory.path], timeout: 120
        )
        #expect(demo.status == 0, "\(demo.stdout)\n\(demo.stderr)")
        #expect(demo.stdout.contains("everything arrived intact"))
        #expect(demo.stdout.contains("\"role\":\"receiver\""))
    }
}
