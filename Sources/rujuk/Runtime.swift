import ArgumentParser
import Foundation
import Logging
import RujukCore

/// Options shared by the commands that read rujuk.toml.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "The configuration file; agencies.toml and sla.toml are read beside it.")
    var config: String = "Config/rujuk.toml"

    func load() throws -> RujukConfiguration {
        do {
            return try RujukConfiguration.load(URL(fileURLWithPath: config))
        } catch let error as ConfigError {
            throw ValidationError("configuration error: \(error)")
        }
    }
}

/// A logger for the long-running processes: stderr, level from RUJUK_LOG_LEVEL (default info).
func makeLogger(_ label: String) -> Logger {
    LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
    var logger = Logger(label: label)
    logger.logLevel = ProcessInfo.processInfo.environment["RUJUK_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
    return logger
}
