import Foundation
import Testing

/// Every suite runs under a time limit, so that a test that hangs (a send to a peer that never
/// comes, a wait on an event that never happens) fails within minutes and is named in the
/// output, instead of holding CI until its own deadline.
@Suite(.timeLimit(.minutes(1))) struct TimeLimitTests {
    static let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()

    @Test func everySuiteHasATimeLimitAndEveryTestIsInASuite() throws {
        let files = try #require(FileManager.default.enumerator(at: Self.tests, includingPropertiesForKeys: nil))
            .compactMap { $0 as? URL }.filter { $0.pathExtension == "swift" }
        #expect(files.count > 20, "found the test sources")
        var suites = 0
        for file in files {
            let lines = try String(contentsOf: file, encoding: .utf8).split(separator: "\n")
            for (number, line) in lines.enumerated() {
                if line.hasPrefix("@Suite") {
                    suites += 1
                    #expect(line.contains(".timeLimit("), "\(file.lastPathComponent):\(number + 1) has no time limit")
                }
                #expect(!line.hasPrefix("@Test"), "\(file.lastPathComponent):\(number + 1): a test outside a suite has no time limit")
            }
        }
        #expect(suites > 20)
    }
}
