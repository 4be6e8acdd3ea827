import TCPIPClient
import TCPIPCore
import TCPIPReceiver
import Testing

@Suite struct SupportTests {
    @Test(arguments: [
        ("plain name", "plain name"),
        ("evil\u{1B}[2Jname", "evil\\u{1b}[2Jname"),
        ("two\nlines", "two\\nlines"),
        ("back\\slash", "back\\\\slash"),
        ("nul\0byte", "nul\\u{0}byte"),
        ("ünïcødé 🚀", "ünïcødé 🚀"),
    ])
    func wireTextIsEscapedForLogs(raw: String, escaped: String) {
        #expect(escapedForLog(raw) == escaped)
    }

    @Test(arguments: [
        (UInt64(0), "1970-01-01T00:00:00.000Z"), (1_764_064_140_123_456, "2025-11-25T09:49:00.123Z"),
        (253_402_300_799_999_999, "9999-12-31T23:59:59.999Z"),
    ])
    func timesAreRFC3339InUTCWithMilliseconds(time: UInt64, text: String) {
        #expect(WireClock.rfc3339(time) == text)
    }

    @Test func hexIsTwoLowerCaseDigitsPerByte() {
        #expect([UInt8]().hex == "")
        #expect([0x00, 0x0F, 0xA0, 0xFF, 0x5C].hex == "000fa0ff5c")
        #expect(Array(0...255).map(UInt8.init).hex.count == 512)
    }

    @Test func jsonEscapesControlCharactersAndKeepsKeyOrder() {
        let value = JSON.object([("b", .string("x\u{1}\"\n")), ("a", .int(1)), ("c", .array([.null, .bool(true)]))])
        #expect(value.rendered() == #"{"b":"x\u0001\"\n","a":1,"c":[null,true]}"#)
        #expect(value.utf8(newline: true) == Array(#"{"b":"x\u0001\"\n","a":1,"c":[null,true]}"#.utf8) + [10])
        #expect(
            value.rendered(pretty: true)
                == "{\n  \"b\": \"x\\u0001\\\"\\n\",\n  \"a\": 1,\n  \"c\": [\n    null,\n    true\n  ]\n}")
    }

    @Test(arguments: [
        ("plain name.txt", #""plain name.txt""#), ("ünïcødé", #""ünïcødé""#), ("文件 🚀", #""文件 🚀""#),
        ("a\u{2028}b\u{2029}", #""a\u2028b\u2029""#), ("back\\slash", #""back\\slash""#),
        ("del\u{7F}", #""del\u007f""#),
    ])
    func jsonStringsNeedingNoEscapeAreCopiedAndTheRestEscaped(raw: String, rendered: String) {
        #expect(JSON.string(raw).rendered() == rendered)
    }

    @Test(arguments: [
        ("127.0.0.1:9999", "127.0.0.1", 9999), ("[::1]:0", "::1", 0), ("localhost", "localhost", 9999),
    ])
    func addressesParse(text: String, host: String, port: Int) throws {
        let address = try HostPort(parsing: text)
        #expect(address.host == host)
        #expect(address.port == port)
        #expect(address.isLoopback)
    }

    @Test(arguments: ["", ":80", "host:99999", "::1:80", "[::1", "host:port"])
    func badAddressesAreUsageErrors(text: String) {
        #expect(throws: TCPIPError.self) { try HostPort(parsing: text) }
    }

    @Test func tokensCompareExactly() {
        let token = Token("s3cret")
        #expect(token.matches("s3cret"))
        #expect(!token.matches("s3cre"))
        #expect(!token.matches("s3cret!"))
        #expect(!token.matches(nil))
    }
}

@Suite struct HookSpawnTests {
    @Test func exitStatusesSignalsAndMissingProgramsAreReported() {
        #expect(HookRunner.spawnAndWait(["sh", "-c", "exit 0"], environment: [:]) == 0)
        #expect(HookRunner.spawnAndWait(["sh", "-c", "exit 3"], environment: [:]) == 3)
        #expect(HookRunner.spawnAndWait(["sh", "-c", "kill -9 $$"], environment: [:]) == 128 + 9)
        #expect(HookRunner.spawnAndWait(["/nonexistent/hook"], environment: [:]) == -1)
        // The environment is exactly what was given, and stdin is /dev/null.
        #expect(
            HookRunner.spawnAndWait(
                ["sh", "-c", #"[ "$ONLY" = "yes" ] && [ -z "$HOME" ] && [ -z "$(cat)" ]"#],
                environment: ["ONLY": "yes", "PATH": "/usr/bin:/bin"]) == 0)
    }

    @Test func fileListsKeepTheirRelativePathsAndNothingClimbsOut() {
        func names(_ paths: [String]) -> [String] {
            FileSendRequest.Source.expand(
                paths, recursive: false, followingSymlinks: false, keepingRelativePaths: true, warn: { _ in }
            ).map(\.name)
        }
        #expect(names(["outbox/a.txt", "./outbox/./b.txt", "c.txt"]) == ["outbox/a.txt", "outbox/b.txt", "c.txt"])
        #expect(names(["/var/log/app.log", "../up/x.txt", "outbox/../y.txt"]) == ["app.log", "x.txt", "y.txt"])
        let flat = FileSendRequest.Source.expand(
            ["outbox/a.txt"], recursive: false, followingSymlinks: false, keepingRelativePaths: false, warn: { _ in })
        #expect(flat.map(\.name) == ["a.txt"])
    }

    @Test func spoolPathsAreRelativeAndSafe() {
        #expect(SpoolName.problem(withPath: "logs/sub/b.txt") == nil)
        for bad in ["../x", "a/../b", "/abs", "a//b", "a/", ".tcpip/x", "a/.hidden", ""] {
            #expect(SpoolName.problem(withPath: bad) != nil, "\(bad)")
        }
    }
}
