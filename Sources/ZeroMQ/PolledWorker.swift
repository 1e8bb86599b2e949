import Foundation

/// Work for a thread that sits in `poll`, done one job at a time on a thread of its own.
///
/// The polling thread submits a job and goes on with its sockets; it polls `signal` and takes
/// the result with `take` when the job has finished. The broker's router hands it each group
/// commit, so reading and checking the next messages overlaps with SQLite writing and fsyncing
/// the last ones — while what waits on the result (acknowledgments, deliveries) is still done
/// only after it. (An adapter's link doing the same with its ledger writes measured no faster:
/// there the work per batch is mostly the write itself.)
public final class PolledWorker<Output>: @unchecked Sendable {
    /// Readable once a job has finished; the polling thread drains it.
    public let signal = Wakeup()
    private let queue: DispatchQueue
    private let condition = NSCondition()
    private var output: Output?
    private var busy = false

    public init(label: String) {
        queue = DispatchQueue(label: label, qos: .userInitiated)
    }

    /// Whether a job was submitted and its result not yet taken.
    public var isBusy: Bool {
        condition.lock()
        defer { condition.unlock() }
        return busy
    }

    /// Starts `job`; only one at a time: the previous result must have been taken.
    public func submit(_ job: @escaping () -> Output) {
        condition.lock()
        precondition(!busy, "PolledWorker runs one job at a time")
        busy = true
        condition.unlock()
        let box = UncheckedJob(run: job)
        queue.async { [self] in
            let result = box.run()
            condition.lock()
            output = result
            condition.broadcast()
            condition.unlock()
            signal.notify()
        }
    }

    /// The finished job's result, once. With `waiting`, waits for the job in flight, if any.
    public func take(waiting: Bool) -> Output? {
        condition.lock()
        defer { condition.unlock() }
        while waiting, busy, output == nil { condition.wait() }
        guard let result = output else { return nil }
        output = nil
        busy = false
        return result
    }
}

/// A job handed to the worker's queue; it runs there alone, and its result comes back to the
/// submitting thread under the worker's lock.
private struct UncheckedJob<Output>: @unchecked Sendable {
    let run: () -> Output
}
