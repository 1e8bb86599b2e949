import Foundation

/// A `rujuk` process of the cluster under test: started, signalled (SIGKILL, SIGSTOP, SIGCONT,
/// SIGTERM) and started again with the same arguments, its output appended to one log file.
final class ChildProcess: @unchecked Sendable {
    let name: String
    let binary: URL
    let arguments: [String]
    let log: URL
    private(set) var process: Process?
    /// How many times it was started.
    private(set) var starts = 0

    init(name: String, binary: URL, arguments: [String], log: URL) {
        self.name = name
        self.binary = binary
        self.arguments = arguments
        self.log = log
        FileManager.default.createFile(atPath: log.path, contents: nil)
    }

    var isRunning: Bool { process?.isRunning ?? false }

    /// Whether the last run ended by SIGKILL (as a `FaultPoint` ends it).
    var diedOfSIGKILL: Bool {
        guard let process, !process.isRunning else { return false }
        return process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL
    }
    var pid: Int32 { process?.processIdentifier ?? 0 }

    /// Starts it; `crashAt` arms a `FaultPoint` (`RUJUK_CRASH_AT`) for this run only.
    func start(crashAt: String? = nil) throws {
        precondition(!isRunning, "\(name) is already running")
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["RUJUK_CRASH_AT"] = crashAt
        process.environment = env
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        handle.write(Data("---- start \(starts + 1)\(crashAt.map { " (crash at \($0))" } ?? "")\n".utf8))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        try handle.close()
        self.process = process
        starts += 1
    }

    /// Sends `signal`; for SIGKILL and SIGTERM waits until the process has exited.
    func signal(_ signal: Int32) {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, signal)
        if signal == SIGKILL || signal == SIGTERM { process.waitUntilExit() }
    }

    /// Waits up to `timeout` for the process to exit by itself; its exit status, or nil.
    func waitForExit(timeout: TimeInterval) async -> Int32? {
        let deadline = Date() + timeout
        while Date() < deadline {
            if let process, !process.isRunning { return process.terminationStatus }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// CPU time (user + system) the running process has used so far, in seconds, from
    /// /proc/<pid>/stat; 0 if it is not running.
    var cpuSeconds: Double {
        guard isRunning, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return 0 }
        // Fields after the command name: state is field 3, utime 14 and stime 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// CPU time (user + system) this process has used so far, in seconds: the harness's own
    /// share of the machine (the agency systems' HTTP server, the load's clients).
    static var ownCPUSeconds: Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// Resident memory of the running process (VmRSS), in MB; 0 if it is not running.
    var residentMegabytes: Double {
        guard isRunning, let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
        return kilobytes / 1024
    }

    /// The log's last `count` characters, for a failure message.
    func logTail(_ count: Int = 2000) -> String {
        String((try? String(contentsOf: log, encoding: .utf8))?.suffix(count) ?? "")
    }

    /// How many times `text` occurs in the log so far.
    func logCount(_ text: String) -> Int {
        ((try? String(contentsOf: log, encoding: .utf8))?.components(separatedBy: text).count ?? 1) - 1
    }

    func logContains(_ text: String) -> Bool {
        (try? String(contentsOf: log, encoding: .utf8))?.contains(text) ?? false
    }
}
