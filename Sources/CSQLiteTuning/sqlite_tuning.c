#include <sqlite3.h>
#include "sqlite_tuning.h"

int rujuk_sqlite_tune(void) {
    // Memory statistics take a process-wide mutex on every allocation; the broker's router
    // thread, an adapter's link thread and the checkpointers would contend on it. Rujuk never
    // reads those statistics.
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}
