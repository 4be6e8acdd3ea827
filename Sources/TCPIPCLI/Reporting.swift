import ArgumentParser
import TCPIPCore

/// Runs a command body and turns failures into one line on stderr and the sysexits status scripts rely on.
public func reportingErrors(_ program: String, _ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as TCPIPError {
        StandardOutput.error("\(program): \(error.message)")
        throw ExitCode(error.exitStatus)
    } catch is StandardOutput.Closed {
        // The reader of stdout left (`| head -1`): that is how pipelines end, not a failure.
        throw ExitCode.success
    } catch let error as ExitCode {
        throw error
    } catch is CancellationError {
        throw ExitCode(TCPIPError.Kind.temporary.exitStatus)
    } catch {
        StandardOutput.error("\(program): internal error: \(error)")
        throw ExitCode(TCPIPError.Kind.internalError.exitStatus)
    }
}

/// The exit status for several outcomes: 0 when all succeeded; otherwise a failure the user must fix outranks one
/// that a retry may cure (75), and the first of equal rank wins.
public func combinedExitStatus(_ statuses: some Sequence<Int32>) -> Int32 {
    var combined: Int32 = 0
    for status in statuses where status != 0 {
        if combined == 0 || combined == TCPIPError.Kind.temporary.exitStatus { combined = status }
    }
    return combined
}
