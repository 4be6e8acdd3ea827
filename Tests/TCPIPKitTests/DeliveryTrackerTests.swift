import TCPIPClient
import TCPIPWire
import Testing

@Suite struct DeliveryTrackerTests {
    static let a = PeerRecord(id: 1, name: "a")
    static let b = PeerRecord(id: 2, name: "b")

    @Test func everyRecipientMustAcknowledge() {
        let tracker = DeliveryTracker(recipients: [Self.a, Self.b], receipts: true, now: 0)
        tracker.expect(messageID: 1, bytes: 10, now: 0)
        tracker.producerFinished()
        tracker.receipt(MessageReceipt(messageID: 1, bytes: 10), from: 1, now: 5)
        #expect(!tracker.isComplete)
        tracker.receipt(MessageReceipt(messageID: 1, bytes: 10), from: 2, now: 6)
        #expect(tracker.isComplete)
        #expect(tracker.results(now: 7).map(\.status) == [.delivered, .delivered])
        #expect(tracker.results(now: 7).map(\.bytes) == [10, 10])
    }

    @Test func leavingAfterTheLastReceiptIsFineButLeavingBeforeMoreIsNot() {
        let tracker = DeliveryTracker(recipients: [Self.a, Self.b], receipts: true, now: 0)
        tracker.expect(messageID: 1, bytes: 1, now: 0)
        tracker.receipt(MessageReceipt(messageID: 1, bytes: 1), from: 1, now: 1)
        tracker.receipt(MessageReceipt(messageID: 1, bytes: 1), from: 2, now: 1)
        tracker.left(1, now: 2)
        tracker.expect(messageID: 2, bytes: 1, now: 3)
        tracker.receipt(MessageReceipt(messageID: 2, bytes: 1), from: 2, now: 4)
        tracker.producerFinished()
        #expect(tracker.isComplete)
        let results = tracker.results(now: 5)
        #expect(results.map(\.status) == [.left, .delivered])
        #expect(results.map(\.exitStatus) == [75, 0])
    }

    @Test func lateReceiptsTimeOutAndRefusalsAreKept() {
        let tracker = DeliveryTracker(recipients: [Self.a, Self.b], receipts: true, now: 0)
        tracker.expect(messageID: 1, bytes: 1, now: 0)
        tracker.producerFinished()
        tracker.receipt(MessageReceipt(messageID: 1, bytes: 0, status: .refused, reason: "no"), from: 1, now: 1)
        #expect(!tracker.expire(now: 999, timeout: 1000))
        #expect(tracker.expire(now: 1000, timeout: 1000))
        #expect(tracker.isComplete)
        #expect(tracker.results(now: 1001).map(\.status) == [.refused, .timeout])
        #expect(tracker.results(now: 1001).map(\.exitStatus) == [77, 75])
    }

    @Test func withoutReceiptsLeavingIsNotTracked() {
        let tracker = DeliveryTracker(recipients: [Self.a], receipts: false, now: 0)
        tracker.sentWithoutReceipt(bytes: 3)
        tracker.left(1, now: 1)
        tracker.producerFinished()
        #expect(tracker.isComplete)
        #expect(tracker.results(now: 2).first?.status == .delivered)
    }
}
