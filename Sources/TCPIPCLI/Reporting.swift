import ArgumentParser
import TCPIPKit

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
