@preconcurrency import Glibc

/// The process's standard output, as `print` writes it.
enum StandardOutput {
    /// Flushes each line as it is printed, even to a pipe (`make demo | tee demo.log`), where
    /// C's stdio would otherwise hold output until its buffer fills. Called once at start,
    /// before anything is printed.
    static func lineBuffered() {
        setvbuf(stdout, nil, _IOLBF, 0)
    }
}
