import Foundation
import Logging
import RujukCore

/// Directories and files that only the account running Rujuk may read: every data directory
/// 0700, every file in one 0600. A ledger holds victims' personal data; another local account
/// must not be able to read it, whatever the umask of the shell that started the process.
public enum PrivateFiles {
    /// The mode of every directory Rujuk creates or keeps its data in.
    public static let directoryMode: mode_t = 0o700
    /// The mode of every file Rujuk creates in one.
    public static let fileMode: mode_t = 0o600

    /// A mode that was wider than it should be, and was narrowed.
    public struct Tightened: Sendable, Equatable, CustomStringConvertible {
        public var path: String
        public var was: mode_t
        public var now: mode_t
        public var description: String { String(format: "%@ (%o → %o)", path, was, now) }
    }

    /// Sets the process's umask to 077, so that whatever a library creates (SQLite's -wal and
    /// -shm files, a temporary file) is the owner's alone. Called once at start by the CLI.
    public static func restrictUmask() {
        umask(0o077)
    }

    /// Creates `url` and any missing parent with mode 0700; a directory that already exists is
    /// left to `tighten`.
    public static func makeDirectory(_ url: URL) throws {
        var missing: [URL] = []
        var current = url.standardizedFileURL
        while !FileManager.default.fileExists(atPath: current.path), current.path != "/" {
            missing.append(current)
            current = current.deletingLastPathComponent()
        }
        for directory in missing.reversed() where mkdir(directory.path, directoryMode) != 0 && errno != EEXIST {
            throw RujukError(.storageUnavailable, "cannot create the directory \(directory.path): \(String(cString: strerror(errno)))")
        }
    }

    /// Creates an empty file with mode 0600 unless one exists, so that SQLite opens it rather
    /// than creating it with the umask's mode (its -wal and -shm files then take the same mode).
    public static func createFile(_ url: URL) throws {
        let fd = open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, fileMode)
        if fd >= 0 {
            close(fd)
        } else if errno != EEXIST {
            throw RujukError(.storageUnavailable, "cannot create \(url.path): \(String(cString: strerror(errno)))")
        }
    }

    /// Narrows `root` and every directory under it to 0700 and every database file (an SQLite
    /// file, its -wal and -shm) to 0600, and returns what it changed, for the caller to log.
    /// Key and token files are left to their own checks, which refuse one that others could
    /// read: a secret that was exposed must be replaced, not quietly narrowed. Symbolic links
    /// are not followed, and nothing owned by another account is touched.
    public static func tighten(_ root: URL) throws -> [Tightened] {
        var changed: [Tightened] = []
        func visit(_ path: String) throws {
            var status = stat()
            guard lstat(path, &status) == 0, status.st_uid == geteuid() else { return }
            let kind = status.st_mode & S_IFMT
            guard kind == S_IFDIR || (kind == S_IFREG && path.contains(".sqlite")) else { return }
            let mode = status.st_mode & 0o7777
            let wanted = mode & (kind == S_IFDIR ? directoryMode : fileMode)
            if mode != wanted {
                guard chmod(path, wanted) == 0 else {
                    throw RujukError(.storageUnavailable, "cannot narrow the mode of \(path): \(String(cString: strerror(errno)))")
                }
                changed.append(Tightened(path: path, was: mode, now: wanted))
            }
            if kind == S_IFDIR {
                // An entry removed meanwhile (a -shm file at a checkpoint) needs no narrowing.
                for entry in ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() {
                    try visit((path as NSString).appendingPathComponent(entry))
                }
            }
        }
        try visit(root.standardizedFileURL.path)
        return changed
    }

    /// `tighten`, each change logged as a security warning: a data file that was readable by
    /// others may have been read, which an operator should know.
    public static func tighten(_ root: URL, logger: Logger) throws {
        for change in try tighten(root) {
            logger.warning("security: narrowed the mode of a data file or directory", metadata: [
                "security": "file_mode", "path": "\(change.path)",
                "mode.was": "\(String(change.was, radix: 8))", "mode.now": "\(String(change.now, radix: 8))",
            ])
        }
    }

    /// A new directory under the system's temporary directory, mode 0700, with a name no other
    /// process can have guessed in advance (`mkdtemp`).
    public static func makeTemporaryDirectory(prefix: String) throws -> URL {
        var template = Array(FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-XXXXXX").path.utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw RujukError(.storageUnavailable, "cannot create a temporary directory: \(String(cString: strerror(errno)))")
        }
        return URL(fileURLWithPath: String(cString: made), isDirectory: true)
    }
}
