import Foundation
import TCPIPFuzz
import Testing

/// Every seed and every input a fuzzer once found (Tests/Fuzz), replayed through its target: a fixed finding must
/// stay fixed. scripts/fuzz runs the targets themselves.
@Suite struct FuzzRegressionTests {
    static let fuzz = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")

    @Test(arguments: FuzzTargets.names)
    func seedsAndRegressionsHoldTheInvariants(target: String) {
        var replayed = 0
        for kind in ["seeds", "regressions"] {
            for file in FuzzCorpus.files(at: Self.fuzz.appendingPathComponent("\(kind)/\(target)").path) {
                FuzzTargets.run(target, FuzzCorpus.read(file))
                replayed += 1
            }
        }
        #expect(replayed > 0, "no seeds for \(target): run scripts/fuzz-seeds.py")
    }
}
