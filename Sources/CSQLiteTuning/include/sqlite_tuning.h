#ifndef RUJUK_SQLITE_TUNING_H
#define RUJUK_SQLITE_TUNING_H

/// Process-wide SQLite settings that must be made before the first connection opens, through
/// sqlite3_config, which is variadic and so cannot be called from Swift. Returns SQLITE_OK, or
/// SQLITE_MISUSE when SQLite was already initialized (then nothing changed).
int rujuk_sqlite_tune(void);

#endif
