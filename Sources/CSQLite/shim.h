#ifndef CSQLITE_SHIM_H
#define CSQLITE_SHIM_H
#include <sqlite3.h>

/* SQLITE_TRANSIENT casts -1 to a function pointer, which Swift cannot import, so these wrappers
   bind with it. They take explicit byte lengths (so embedded NULs survive) and bind an empty
   value, not NULL, when given no bytes: SQLite treats a NULL pointer as SQL NULL. */
static inline int csqlite_bind_text(sqlite3_stmt *stmt, int index, const char *bytes, sqlite3_uint64 length) {
    return sqlite3_bind_text64(stmt, index, bytes ? bytes : "", length, SQLITE_TRANSIENT, SQLITE_UTF8);
}

static inline int csqlite_bind_blob(sqlite3_stmt *stmt, int index, const void *bytes, sqlite3_uint64 length) {
    if (bytes == 0 || length == 0) {
        return sqlite3_bind_zeroblob(stmt, index, 0);
    }
    return sqlite3_bind_blob64(stmt, index, bytes, length, SQLITE_TRANSIENT);
}
#endif
