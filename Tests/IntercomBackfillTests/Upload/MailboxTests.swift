import XCTest

@testable import IntercomBackfill

/// The queue REST deliveries take runnable operations from: first in, first out, and, unlike
/// `AsyncStream`, still handing out what was posted when its consumer is cancelled (a delivery
/// cancelled by another's fatal error must still end every operation, or later ones hang).
final class MailboxTests: XCTestCase {
    func test_elementsComeOutInTheOrderPosted_thenNilOnceFinished() async {
        let mailbox = Mailbox<Int>()
        for n in 0..<5 { mailbox.post(n) }
        var taken: [Int] = []
        for _ in 0..<3 { taken.append(await mailbox.next() ?? -1) }
        for n in 5..<8 { mailbox.post(n) }
        mailbox.finish()
        while let n = await mailbox.next() { taken.append(n) }
        XCTAssertEqual(taken, Array(0..<8))
        let afterTheEnd = await mailbox.next()
        XCTAssertNil(afterTheEnd)
    }

    func test_aWaitingConsumerGetsTheNextPost_andTheFinish() async {
        let mailbox = Mailbox<String>()
        let consumer = Task { () -> [String] in
            var taken: [String] = []
            while let element = await mailbox.next() { taken.append(element) }
            return taken
        }
        // Posted from other tasks, whether the consumer waits already or not.
        await withTaskGroup(of: Void.self) { group in
            for n in 0..<100 { group.addTask { mailbox.post("e\(n)") } }
        }
        mailbox.finish()
        let taken = await consumer.value
        XCTAssertEqual(taken.count, 100)
        XCTAssertEqual(Set(taken), Set((0..<100).map { "e\($0)" }))
    }

    func test_aCancelledConsumer_stillGetsWhatIsPosted() async {
        let mailbox = Mailbox<Int>()
        let consumer = Task { () -> [Int?] in
            [await mailbox.next(), await mailbox.next(), await mailbox.next()]
        }
        consumer.cancel()
        mailbox.post(1)
        mailbox.post(2)
        mailbox.finish()
        let taken = await consumer.value
        XCTAssertEqual(taken, [1, 2, nil], "cancelled, it still takes both, then sees the end")
    }
}
