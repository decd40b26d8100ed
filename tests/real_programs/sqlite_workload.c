/*
 * The SQLite workload of the real-programs tier: SQLite's own pager,
 * journal and unix VFS exercised on the guest's filesystem, in every
 * journal mode a WASI build of SQLite has (WAL needs shared memory, which
 * WASI does not have).
 *
 * Usage: sqlite_workload DIR ROWS (DIR is made; it must not exist)
 *
 * Prints one line per step; any SQLite error ends the run with status 1
 * after printing it, so the transcripts of two stores can be compared
 * line for line.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sqlite3.h"

static void check(sqlite3 *db, int rc, const char *what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        printf("error: %s: %s (%d)\n", what, db ? sqlite3_errmsg(db) : "no database", rc);
        exit(1);
    }
}

static void exec(sqlite3 *db, const char *sql) {
    char *message = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &message);
    if (rc != SQLITE_OK) {
        printf("error: %s: %s (%d)\n", sql, message ? message : "?", rc);
        exit(1);
    }
}

/* Prints every row of a query, columns separated by '|'. */
static void show(sqlite3 *db, const char *label, const char *sql) {
    sqlite3_stmt *stmt;
    check(db, sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), sql);
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        printf("%s:", label);
        for (int i = 0; i < sqlite3_column_count(stmt); i++) {
            const unsigned char *text = sqlite3_column_text(stmt, i);
            printf("%s%s", i ? "|" : " ", text ? (const char *)text : "NULL");
        }
        printf("\n");
    }
    check(db, rc, sql);
    sqlite3_finalize(stmt);
}

/* The names in DIR, sorted, with their sizes: what the journal left. */
static void list(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        printf("error: opendir %s: %s\n", dir, strerror(errno));
        exit(1);
    }
    char *names[256];
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(d)) && count < 256) {
        if (strcmp(entry->d_name, ".") && strcmp(entry->d_name, "..")) {
            names[count++] = strdup(entry->d_name);
        }
    }
    closedir(d);
    for (int i = 1; i < count; i++) {
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    }
    for (int i = 0; i < count; i++) {
        char path[1024];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (stat(path, &st) != 0) {
            printf("error: stat %s: %s\n", path, strerror(errno));
            exit(1);
        }
        printf("file: %s %lld\n", names[i], (long long)st.st_size);
        free(names[i]);
    }
}

static void workload(const char *dir, const char *mode, int rows) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.db", dir, mode);
    sqlite3 *db;
    check(NULL, sqlite3_open(path, &db), "open");
    char sql[256];
    snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s", mode);
    show(db, "journal_mode", sql);
    exec(db, "PRAGMA page_size=4096");
    exec(db, "CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, size INTEGER, body BLOB)");

    sqlite3_stmt *insert;
    check(db, sqlite3_prepare_v2(db, "INSERT INTO item(name, size, body) VALUES(?, ?, zeroblob(?))",
                                 -1, &insert, NULL), "prepare insert");
    /* Ten transactions, so the journal is made and finished ten times. */
    for (int batch = 0; batch < 10; batch++) {
        exec(db, "BEGIN");
        for (int i = batch * rows / 10; i < (batch + 1) * rows / 10; i++) {
            char name[64];
            snprintf(name, sizeof name, "item-%07d", (i * 7919) % rows);
            sqlite3_bind_text(insert, 1, name, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int(insert, 2, i % 1000);
            sqlite3_bind_int(insert, 3, (i % 17) * 61);
            check(db, sqlite3_step(insert), "insert");
            sqlite3_reset(insert);
        }
        exec(db, "COMMIT");
    }
    sqlite3_finalize(insert);

    /* A rolled-back change must leave no trace. */
    exec(db, "BEGIN");
    exec(db, "DELETE FROM item WHERE size < 500");
    exec(db, "UPDATE item SET name = 'gone'");
    exec(db, "ROLLBACK");

    exec(db, "CREATE INDEX item_name ON item(name)");
    exec(db, "UPDATE item SET size = size + 1 WHERE id % 3 = 0");
    exec(db, "DELETE FROM item WHERE id % 11 = 0");
    show(db, "count", "SELECT count(*), sum(size), sum(length(body)) FROM item");
    show(db, "names", "SELECT min(name), max(name), count(DISTINCT name) FROM item");
    show(db, "ordered", "SELECT name, size FROM item ORDER BY name LIMIT 3 OFFSET 100");
    show(db, "integrity", "PRAGMA integrity_check");
    exec(db, "VACUUM");
    show(db, "pages", "PRAGMA page_count");
    check(db, sqlite3_close(db), "close");

    /* Reopened: what was committed is what is read. */
    check(NULL, sqlite3_open(path, &db), "reopen");
    show(db, "reopened", "SELECT count(*), sum(size) FROM item");
    show(db, "reintegrity", "PRAGMA quick_check");
    check(db, sqlite3_close(db), "close");
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s DIR ROWS\n", argv[0]);
        return 2;
    }
    int rows = atoi(argv[2]);
    printf("sqlite: %s\n", sqlite3_libversion());
    if (mkdir(argv[1], 0777) != 0) {
        printf("error: mkdir %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    const char *modes[] = {"delete", "truncate", "persist", "memory", "off"};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        workload(argv[1], modes[i], rows);
    }
    list(argv[1]);
    return 0;
}
