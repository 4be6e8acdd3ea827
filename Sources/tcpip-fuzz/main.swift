// The libFuzzer driver for the targets in TCPIPFuzz.
//
// Built by scripts/fuzz with `-sanitize=fuzzer,address -DFUZZING`: it hands its arguments to LLVMFuzzerRunDriver,
// which calls LLVMFuzzerTestOneInput below for the target named by TCPIP_FUZZ_TARGET; the arguments are libFuzzer's
// (`TCPIP_FUZZ_TARGET=hub tcpip-fuzz -runs=100000 CORPUS…`).
// Built normally, it replays files or directories: `tcpip-fuzz TARGET PATH…`.
import TCPIPFuzz

#if canImport(Glibc)
    import Glibc
#endif

#if FUZZING
    private let target: String = {
        guard let name = getenv("TCPIP_FUZZ_TARGET").map({ String(cString: $0) }), FuzzTargets.names.contains(name)
        else { fatalError("set TCPIP_FUZZ_TARGET to one of \(FuzzTargets.names.joined(separator: ", "))") }
        return name
    }()

    // Defined for libFuzzer's own main, should the link pick it; the driver below is what runs otherwise.
    @_cdecl("LLVMFuzzerTestOneInput")
    func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
        FuzzTargets.run(target, data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
        return 0
    }

    @_silgen_name("LLVMFuzzerRunDriver")
    func runFuzzerDriver(
        _ argc: UnsafeMutablePointer<Int32>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
    ) -> Int32

    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(runFuzzerDriver(&argc, &argv) { data, size in fuzzOne(data, size) })
#else
    let arguments = CommandLine.arguments
    guard arguments.count >= 2, FuzzTargets.names.contains(arguments[1]) else {
        let usage = "usage: tcpip-fuzz \(FuzzTargets.names.joined(separator: "|")) PATH…\n"
        _ = usage.withCString { write(2, $0, strlen($0)) }
        exit(64)
    }
    var replayed = 0
    for path in arguments.dropFirst(2) {
        for file in FuzzCorpus.files(at: path) {
            FuzzTargets.run(arguments[1], FuzzCorpus.read(file))
            replayed += 1
        }
    }
    print("replayed \(replayed) inputs for \(arguments[1])")
#endif
