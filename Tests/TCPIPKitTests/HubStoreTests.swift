import Foundation
import TCPIPStore
import Testing

/// The store's receipts file: pruning drops the old head and keeps the rest byte for byte, however large.
@Suite struct HubStoreTests {
    @Test func pruningDropsOnlyTheOldReceiptsAndKeepsTheRestAsItWas() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hubstore-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let store = HubStore(directory: directory.path)
        try store.prepare()
        // Old receipts spanning several of the reader's 64 KiB blocks, then new ones.
        let filler = String(repeating: "x", count: 200)
        for index in 0..<1500 {
            try store.appendReceipt(
                .object([("file", .string("old-\(index)-\(filler)")), ("at", .string("2026-01-01T00:00:00Z"))]))
        }
        for index in 0..<700 {
            try store.appendReceipt(
                .object([("file", .string("new-\(index)-\(filler)")), ("at", .string("2026-11-30T00:00:00Z"))]))
        }
        let newLines = store.receipts().suffix(700)
        #expect(store.pruneReceipts(before: "2026-06-01T00:00:00Z") == 1500)
        #expect(store.receipts() == Array(newLines))
        #expect(store.pruneReceipts(before: "2026-06-01T00:00:00Z") == 0, "nothing more to drop")
        #expect(store.pruneReceipts(before: "2027-01-01T00:00:00Z") == 700)
        #expect(store.receipts().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: store.stateDirectory + "/receipts.jsonl.new"))
    }
}
