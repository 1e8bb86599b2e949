import Foundation
import Testing
import ZeroMQ

/// The worker the broker's router commits through: the result comes back once, through the
/// poll signal or by waiting, and only one job runs at a time.
@Suite(.timeLimit(.minutes(5))) struct PolledWorkerTests {
    @Test func aFinishedJobIsSignalledAndTakenOnce() throws {
        let worker = PolledWorker<Int>(label: "test.worker")
        #expect(worker.take(waiting: false) == nil)
        #expect(worker.take(waiting: true) == nil, "nothing in flight: waiting returns at once")
        let release = DispatchSemaphore(value: 0)
        worker.submit {
            release.wait()
            return 42
        }
        #expect(worker.isBusy)
        // Not finished yet: not signalled, nothing to take.
        #expect(try poll([.fd(worker.signal.fileDescriptor)], timeoutMilliseconds: 0) == [false])
        #expect(worker.take(waiting: false) == nil)
        release.signal()
        // The poll wakes when it finishes.
        #expect(try poll([.fd(worker.signal.fileDescriptor)], timeoutMilliseconds: 10_000) == [true])
        worker.signal.drain()
        #expect(worker.take(waiting: false) == 42)
        #expect(!worker.isBusy)
        #expect(worker.take(waiting: false) == nil)
    }

    @Test func takingWithWaitWaitsForTheJobInFlight() {
        let worker = PolledWorker<[Int]>(label: "test.worker")
        for round in 0..<50 {
            let started = DispatchSemaphore(value: 0)
            worker.submit {
                started.signal()
                return Array(0...round)
            }
            started.wait()
            #expect(worker.take(waiting: true) == Array(0...round))
            worker.signal.drain()
        }
    }
}
