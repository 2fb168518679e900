/*
 * musehub_client._scan: the working-tree walk of a push, its file reads and a clone's file writes, in C.
 *
 * A push stats every file of the tree to find the few that changed (as git's
 * index does). In Python each stat builds an os.stat_result of some twenty
 * objects; on 25,000 files that was most of a 10-file push. This module walks
 * the tree with one openat + getdents per folder and one fstatat per entry,
 * with the GIL released, and compares each regular file with the stat cache's
 * entry itself, so Python sees only the files that changed.
 *
 * walk(root, skip, known, threads=1)
 *     -> (manifest, same, changed, others, unreadable, files)
 *
 *   root        the tree's folder (str); followed if it is a symlink, no folder
 *               below it ever is
 *   skip        a name left out at the top level only (the client's .musehub)
 *   known       {manifest path: (size, mtime_ns, inode, object id, ...)}
 *   threads     how many threads list folders (each folder is listed by one)
 *   manifest    {path: object id} for every regular file, in path order: the
 *               known id where size, mtime_ns and inode all match, else None
 *   same        {path: known entry} for the files that matched
 *   changed     [(path, size, mtime_ns, inode)] for the other regular files
 *   others      [(path, st_mode)] for what is neither a folder nor a regular
 *               file (symlinks, pipes, sockets, devices)
 *   unreadable  [(path, reason)] for folders that cannot be listed and entries
 *               that cannot be stat'ed (an entry removed meanwhile is left out)
 *   files       the number of regular files
 *
 * The walk has two parts. Without the GIL, *threads* threads list folders
 * (openat, getdents, one fstatat per entry that is not a folder) and keep the
 * listings; then, with the GIL, one pass over the listings in path order
 * builds the results. Paths are '/'-separated and relative to root, decoded as
 * os.fsdecode does. Folders sort as "name/", so for valid UTF-8 names "in path
 * order" is the order Python sorts the path strings in. A root that cannot be
 * opened or listed raises OSError. This is the same walk as
 * musehub_client.worktree._walk_python, which the tests hold it to.
 *
 * write_files(root, files) creates a batch of a clone's files without the GIL
 * (see its comment), so a thread can write them while the clone goes on
 * reading and checking the pack. read_files(root, relatives) reads a batch of a
 * push's files whole without the GIL, so threads read while another hashes or
 * compresses (see musehub_client.files).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif
#ifndef O_DIRECTORY
#define O_DIRECTORY 0
#endif
#ifndef O_NOFOLLOW
#define O_NOFOLLOW 0
#endif

#if defined(__APPLE__)
#define MTIME_SEC(st) ((st).st_mtimespec.tv_sec)
#define MTIME_NSEC(st) ((st).st_mtimespec.tv_nsec)
#else
#define MTIME_SEC(st) ((st).st_mtim.tv_sec)
#define MTIME_NSEC(st) ((st).st_mtim.tv_nsec)
#endif

enum kind { KIND_FILE, KIND_FOLDER, KIND_OTHER, KIND_ERROR };

struct Node;

typedef struct {
    size_t name;          /* offset of the name (NUL-terminated) in the folder's name buffer */
    const char *text;     /* the name, once the listing is complete (the buffer no longer moves) */
    size_t length;        /* its length in bytes */
    enum kind kind;
    int error;            /* errno, for KIND_ERROR */
    long long size;       /* for KIND_FILE */
    long long mtime_sec;  /* for KIND_FILE */
    long mtime_nsec;      /* for KIND_FILE */
    unsigned long long inode;
    unsigned long mode;   /* for KIND_OTHER */
    struct Node *child;   /* for KIND_FOLDER: its own listing */
} Entry;

typedef struct {
    Entry *entries;
    size_t count, capacity;
    char *names;
    size_t used, room;
    int error; /* errno when the folder could not be opened or listed */
} Listing;

/* A folder: its path under the root with a trailing '/' ("" for the root), and its listing once listed. */
typedef struct Node {
    char *prefix;
    size_t length;
    Listing listing;
} Node;

/* --- growing buffers ----------------------------------------------------------------- */

static int grow(void **buffer, size_t *capacity, size_t needed, size_t item) {
    if (needed <= *capacity) return 0;
    size_t size = *capacity ? *capacity : 64;
    while (size < needed) size *= 2;
    void *bigger = realloc(*buffer, size * item);
    if (bigger == NULL) return -1;
    *buffer = bigger;
    *capacity = size;
    return 0;
}

/* Order names as the paths they start sort: a folder compares as "name/". */
static int by_path(const void *a, const void *b) {
    const Entry *x = a, *y = b;
    const unsigned char *p = (const unsigned char *)x->text, *q = (const unsigned char *)y->text;
    size_t i = 0;
    for (;; i++) {
        int c = i < x->length ? p[i] : (x->kind == KIND_FOLDER && i == x->length ? '/' : -1);
        int d = i < y->length ? q[i] : (y->kind == KIND_FOLDER && i == y->length ? '/' : -1);
        if (c != d) return c < d ? -1 : 1;
        if (c == -1) return 0;
    }
}

/* --- listing folders (no Python calls: runs without the GIL, on several threads) --------- */

static int add_entry(Listing *listing, const char *name, size_t length) {
    if (grow((void **)&listing->entries, &listing->capacity, listing->count + 1, sizeof(Entry)) < 0) return -1;
    if (grow((void **)&listing->names, &listing->room, listing->used + length + 1, 1) < 0) return -1;
    Entry *entry = &listing->entries[listing->count++];
    memset(entry, 0, sizeof(*entry));
    entry->name = listing->used;
    entry->length = length;
    memcpy(listing->names + listing->used, name, length + 1);
    listing->used += length + 1;
    return 0;
}

static void drop_last(Listing *listing) {
    listing->count--;
    listing->used = listing->entries[listing->count].name;
}

/* List the folder open at *fd* (taking it over) into *listing*, sorted; -1 only when memory ran out. */
static int list_folder(int fd, const char *skip, Listing *listing) {
    DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        listing->error = errno;
        close(fd);
        return 0;
    }
    struct dirent *found;
    struct stat info;
    for (;;) {
        errno = 0;
        found = readdir(dir);
        if (found == NULL) {
            listing->error = errno; /* 0 at the end of the folder */
            break;
        }
        const char *name = found->d_name;
        if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) continue;
        if (skip != NULL && strcmp(name, skip) == 0) continue;
        if (add_entry(listing, name, strlen(name)) < 0) {
            closedir(dir);
            return -1;
        }
        Entry *entry = &listing->entries[listing->count - 1];
#ifdef _DIRENT_HAVE_D_TYPE
        if (found->d_type == DT_DIR) {
            entry->kind = KIND_FOLDER;
            continue;
        }
        int unknown = found->d_type == DT_UNKNOWN;
#else
        int unknown = 1;
#endif
        if (fstatat(dirfd(dir), name, &info, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT) { /* removed while scanning */
                drop_last(listing);
                continue;
            }
            entry->kind = KIND_ERROR;
            entry->error = errno;
        } else if (S_ISREG(info.st_mode)) {
            entry->kind = KIND_FILE;
            entry->size = (long long)info.st_size;
            entry->mtime_sec = (long long)MTIME_SEC(info);
            entry->mtime_nsec = (long)MTIME_NSEC(info);
            entry->inode = (unsigned long long)info.st_ino;
        } else if (S_ISDIR(info.st_mode)) {
            if (unknown)
                entry->kind = KIND_FOLDER;
            else
                drop_last(listing); /* a folder made since the listing: scanned next time */
        } else {
            entry->kind = KIND_OTHER;
            entry->mode = (unsigned long)info.st_mode;
        }
    }
    closedir(dir);
    if (listing->error != 0) listing->count = listing->used = 0; /* an unreadable folder lists nothing */
    for (size_t i = 0; i < listing->count; i++) listing->entries[i].text = listing->names + listing->entries[i].name;
    qsort(listing->entries, listing->count, sizeof(Entry), by_path);
    return 0;
}

/* The folders still to list, shared by the threads that list them. */
typedef struct {
    int root_fd;
    const char *skip;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    Node **pending;
    size_t pending_count, pending_room;
    Node **all; /* every node made, to free them */
    size_t all_count, all_room;
    size_t busy;     /* folders being listed */
    int out_of_memory;
} Walker;

static Node *new_node(const Node *parent, const Entry *entry) {
    Node *node = calloc(1, sizeof(Node));
    if (node == NULL) return NULL;
    node->length = parent->length + entry->length + 1;
    node->prefix = malloc(node->length + 1);
    if (node->prefix == NULL) {
        free(node);
        return NULL;
    }
    memcpy(node->prefix, parent->prefix, parent->length);
    memcpy(node->prefix + parent->length, entry->text, entry->length);
    node->prefix[node->length - 1] = '/';
    node->prefix[node->length] = '\0';
    return node;
}

static void free_node(Node *node) {
    free(node->prefix);
    free(node->listing.entries);
    free(node->listing.names);
    free(node);
}

/* Free the child nodes made for *listing*'s folders (not yet queued, so owned by nobody else). */
static void free_children(Listing *listing) {
    for (size_t i = 0; i < listing->count; i++) {
        if (listing->entries[i].child != NULL) free_node(listing->entries[i].child);
        listing->entries[i].child = NULL;
    }
}

/* List *node*'s folder and make a node for each folder in it (not yet queued); -1 when memory ran out (then
 * no child node is left: those already made are freed, since only queue_children hands them to the walker). */
static int list_node(Walker *walker, Node *node) {
    int fd;
    if (node->length == 0) {
        fd = dup(walker->root_fd);
    } else {
        node->prefix[node->length - 1] = '\0'; /* open "a/b", not "a/b/" */
        fd = openat(walker->root_fd, node->prefix, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        node->prefix[node->length - 1] = '/';
    }
    if (fd < 0) {
        node->listing.error = errno;
        return 0;
    }
    if (list_folder(fd, node->length == 0 ? walker->skip : NULL, &node->listing) < 0) return -1;
    for (size_t i = 0; i < node->listing.count; i++) {
        Entry *entry = &node->listing.entries[i];
        if (entry->kind == KIND_FOLDER && (entry->child = new_node(node, entry)) == NULL) {
            free_children(&node->listing);
            return -1;
        }
    }
    return 0;
}

/* Queue the folders found in *node* (the lock held); -1 when memory ran out. */
static int queue_children(Walker *walker, Node *node) {
    for (size_t i = node->listing.count; i-- > 0;) { /* last first: the first folder is listed next */
        Node *child = node->listing.entries[i].child;
        if (child == NULL) continue;
        if (grow((void **)&walker->all, &walker->all_room, walker->all_count + 1, sizeof(Node *)) < 0 ||
            grow((void **)&walker->pending, &walker->pending_room, walker->pending_count + 1, sizeof(Node *)) < 0) {
            /* entries[0..i]'s children are not yet owned by the walker; those after i are (walker->all) */
            for (size_t j = 0; j <= i; j++) {
                Node *orphan = node->listing.entries[j].child;
                if (orphan != NULL) free_node(orphan);
                node->listing.entries[j].child = NULL;
            }
            return -1;
        }
        walker->all[walker->all_count++] = child;
        walker->pending[walker->pending_count++] = child;
    }
    return 0;
}

static void *list_folders(void *argument) {
    Walker *walker = argument;
    pthread_mutex_lock(&walker->lock);
    for (;;) {
        while (walker->pending_count == 0 && walker->busy > 0 && !walker->out_of_memory)
            pthread_cond_wait(&walker->changed, &walker->lock);
        if (walker->pending_count == 0 || walker->out_of_memory) break;
        Node *node = walker->pending[--walker->pending_count];
        walker->busy++;
        pthread_mutex_unlock(&walker->lock);
        int failed = list_node(walker, node) < 0;
        pthread_mutex_lock(&walker->lock);
        walker->busy--;
        if (failed || queue_children(walker, node) < 0) walker->out_of_memory = 1;
        pthread_cond_broadcast(&walker->changed);
    }
    pthread_cond_broadcast(&walker->changed);
    pthread_mutex_unlock(&walker->lock);
    return NULL;
}

#define MAX_THREADS 16

/* List the whole tree from *root* on *threads* threads (this one included). */
static void list_tree(Walker *walker, Node *root, int threads) {
    walker->all[walker->all_count++] = root;
    walker->pending[walker->pending_count++] = root;
    pthread_t helpers[MAX_THREADS];
    int started = 0;
    for (int i = 1; i < threads && i < MAX_THREADS; i++) {
        if (pthread_create(&helpers[started], NULL, list_folders, walker) != 0) break; /* fewer threads, same walk */
        started++;
    }
    list_folders(walker);
    for (int i = 0; i < started; i++) pthread_join(helpers[i], NULL);
}

/* --- building the results (with the GIL) --------------------------------------------- */

/* 1 and the file's mtime in nanoseconds in *total* when it fits an int64 (until the year 2262), else 0. */
static int mtime_fits(const Entry *entry, long long *total) {
    return !__builtin_mul_overflow(entry->mtime_sec, 1000000000LL, total) &&
           !__builtin_add_overflow(*total, (long long)entry->mtime_nsec, total);
}

/* The file's mtime in nanoseconds, as os.stat_result.st_mtime_ns gives it. */
static PyObject *mtime_ns(const Entry *entry) {
    long long total;
    if (mtime_fits(entry, &total)) return PyLong_FromLongLong(total);
    /* Beyond int64 nanoseconds (the year 2262): as Python computes it. */
    PyObject *s = PyLong_FromLongLong(entry->mtime_sec), *billion = PyLong_FromLong(1000000000L);
    PyObject *n = PyLong_FromLong(entry->mtime_nsec), *product = NULL, *sum = NULL;
    if (s && billion && n && (product = PyNumber_Multiply(s, billion)) != NULL) sum = PyNumber_Add(product, n);
    Py_XDECREF(s);
    Py_XDECREF(billion);
    Py_XDECREF(n);
    Py_XDECREF(product);
    return sum;
}

/* 1 when *value* is exactly the int *expected*, 0 otherwise (never an error). */
static int equals_long(PyObject *value, long long expected) {
    if (!PyLong_CheckExact(value)) return 0;
    int overflow = 0;
    long long got = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (got == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return !overflow && got == expected;
}

static int equals_unsigned(PyObject *value, unsigned long long expected) {
    if (!PyLong_CheckExact(value)) return 0;
    unsigned long long got = PyLong_AsUnsignedLongLong(value);
    if (got == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return got == expected;
}

/* 1 when the cached *entry* holds this file's size, mtime and inode and a str id; 0 if not; -1 on error. */
static int unchanged(PyObject *cached, const Entry *entry) {
    if (cached == NULL || !PyTuple_CheckExact(cached) || PyTuple_GET_SIZE(cached) < 4) return 0;
    if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(cached, 3))) return 0;
    if (!equals_long(PyTuple_GET_ITEM(cached, 0), entry->size)) return 0;
    if (!equals_unsigned(PyTuple_GET_ITEM(cached, 2), entry->inode)) return 0;
    long long total;
    if (mtime_fits(entry, &total)) return equals_long(PyTuple_GET_ITEM(cached, 1), total);
    PyObject *exact = mtime_ns(entry);
    if (exact == NULL) return -1;
    int same = PyObject_RichCompareBool(PyTuple_GET_ITEM(cached, 1), exact, Py_EQ);
    Py_DECREF(exact);
    return same;
}

/* The system's message for *error*, as OSError.strerror gives it. */
static PyObject *reason(int error) { return PyUnicode_DecodeLocale(strerror(error), "surrogateescape"); }

/* Append (path, value) to *list*, taking over the reference to *value*. */
static int append_pair(PyObject *list, PyObject *path, PyObject *value) {
    if (value == NULL) return -1;
    PyObject *pair = PyTuple_Pack(2, path, value);
    Py_DECREF(value);
    if (pair == NULL) return -1;
    int result = PyList_Append(list, pair);
    Py_DECREF(pair);
    return result;
}

typedef struct {
    PyObject *known, *manifest, *same, *changed, *others, *unreadable;
    Py_ssize_t files;
} Results;

/* Record one listed entry that is not a folder; its path under the root is *path* (*length* bytes). */
static int record(Results *out, const Entry *entry, const char *path, size_t length) {
    PyObject *relative = PyUnicode_DecodeFSDefaultAndSize(path, (Py_ssize_t)length);
    if (relative == NULL) return -1;
    int result = 0;
    if (entry->kind == KIND_FILE) {
        out->files++;
        /* held: a cached entry that is not what the client stores could run Python code when compared
         * (unchanged), and that code could drop it from *known* */
        PyObject *cached = PyDict_GetItemWithError(out->known, relative);
        Py_XINCREF(cached);
        int same = cached == NULL && PyErr_Occurred() ? -1 : unchanged(cached, entry);
        if (same < 0) {
            result = -1;
        } else if (same) {
            result = PyDict_SetItem(out->same, relative, cached);
            if (result == 0) result = PyDict_SetItem(out->manifest, relative, PyTuple_GET_ITEM(cached, 3));
        } else {
            PyObject *row = Py_BuildValue("(OLNK)", relative, entry->size, mtime_ns(entry), entry->inode);
            result = row == NULL ? -1 : PyList_Append(out->changed, row);
            Py_XDECREF(row);
            if (result == 0) result = PyDict_SetItem(out->manifest, relative, Py_None); /* its place, in order */
        }
        Py_XDECREF(cached);
    } else if (entry->kind == KIND_OTHER) {
        result = append_pair(out->others, relative, PyLong_FromUnsignedLong(entry->mode));
    } else if (entry->kind == KIND_ERROR) {
        result = append_pair(out->unreadable, relative, reason(entry->error));
    }
    Py_DECREF(relative);
    return result;
}

/* Where the in-order walk over the listed tree is: a folder and the next entry of it. */
typedef struct {
    const Node *node;
    size_t next;
} Position;

/* Record every entry of the listed tree in path order; -1 on a Python error. */
static int record_tree(Results *out, const Node *root) {
    Position *stack = NULL;
    size_t depth = 0, room = 0;
    char *path = NULL;
    size_t path_room = 0;
    int result = 0;
    if (grow((void **)&stack, &room, 1, sizeof(Position)) < 0) goto nomemory;
    stack[depth++] = (Position){root, 0};
    while (depth > 0 && result == 0) {
        Position *at = &stack[depth - 1];
        const Listing *listing = &at->node->listing;
        if (at->next == listing->count) {
            depth--;
            continue;
        }
        const Entry *entry = &listing->entries[at->next++];
        const Node *folder = at->node;
        if (entry->kind == KIND_FOLDER) {
            const Node *child = entry->child;
            if (child->listing.error != 0) {
                PyObject *where = PyUnicode_DecodeFSDefaultAndSize(child->prefix, (Py_ssize_t)child->length - 1);
                result = where == NULL ? -1 : append_pair(out->unreadable, where, reason(child->listing.error));
                Py_XDECREF(where);
            } else {
                if (grow((void **)&stack, &room, depth + 1, sizeof(Position)) < 0) goto nomemory;
                stack[depth++] = (Position){child, 0};
            }
            continue;
        }
        size_t length = folder->length + entry->length;
        if (grow((void **)&path, &path_room, length + 1, 1) < 0) goto nomemory;
        memcpy(path, folder->prefix, folder->length);
        memcpy(path + folder->length, entry->text, entry->length + 1);
        result = record(out, entry, path, length);
    }
    free(stack);
    free(path);
    return result;
nomemory:
    free(stack);
    free(path);
    PyErr_NoMemory();
    return -1;
}

static PyObject *walk(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *root_object, *skip_object, *known;
    int threads = 1;
    if (!PyArg_ParseTuple(args, "O&UO!|i:walk", PyUnicode_FSConverter, &root_object, &skip_object, &PyDict_Type,
                          &known, &threads))
        return NULL;
    PyObject *skip_bytes = PyUnicode_EncodeFSDefault(skip_object);
    if (skip_bytes != NULL && strlen(PyBytes_AS_STRING(skip_bytes)) != (size_t)PyBytes_GET_SIZE(skip_bytes)) {
        Py_CLEAR(skip_bytes); /* compared with strcmp, it would skip another name */
        PyErr_SetString(PyExc_ValueError, "embedded null byte");
    }
    if (skip_bytes == NULL) {
        Py_DECREF(root_object);
        return NULL;
    }
    Results out = {known, PyDict_New(), PyDict_New(), PyList_New(0), PyList_New(0), PyList_New(0), 0};
    Walker walker = {.root_fd = -1, .skip = PyBytes_AS_STRING(skip_bytes)};
    Node *root = calloc(1, sizeof(Node));
    PyObject *result = NULL;
    int locks = pthread_mutex_init(&walker.lock, NULL) == 0;
    if (locks && pthread_cond_init(&walker.changed, NULL) != 0) {
        pthread_mutex_destroy(&walker.lock);
        locks = 0;
    }
    if (!locks || root == NULL || (root->prefix = calloc(1, 1)) == NULL ||
        grow((void **)&walker.all, &walker.all_room, 1, sizeof(Node *)) < 0 ||
        grow((void **)&walker.pending, &walker.pending_room, 1, sizeof(Node *)) < 0) {
        if (root != NULL) free_node(root);
        root = NULL;
        PyErr_NoMemory();
        goto done;
    }
    if (out.manifest == NULL || out.same == NULL || out.changed == NULL || out.others == NULL ||
        out.unreadable == NULL) {
        free_node(root);
        root = NULL;
        goto done;
    }
    const char *path = PyBytes_AS_STRING(root_object);
    int open_error = 0;
    Py_BEGIN_ALLOW_THREADS
    walker.root_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (walker.root_fd >= 0)
        list_tree(&walker, root, threads < 1 ? 1 : threads);
    else
        open_error = errno;
    Py_END_ALLOW_THREADS
    if (walker.root_fd < 0 || root->listing.error != 0) { /* the tree itself: an error, never an empty tree */
        errno = walker.root_fd < 0 ? open_error : root->listing.error;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, root_object);
        if (walker.all_count == 0) free_node(root);
        goto done;
    }
    if (walker.out_of_memory) {
        PyErr_NoMemory();
        goto done;
    }
    if (record_tree(&out, root) == 0)
        result = Py_BuildValue("(OOOOOn)", out.manifest, out.same, out.changed, out.others, out.unreadable, out.files);

done:
    if (walker.root_fd >= 0) close(walker.root_fd);
    for (size_t i = 0; i < walker.all_count; i++) free_node(walker.all[i]);
    free(walker.all);
    free(walker.pending);
    if (locks) {
        pthread_cond_destroy(&walker.changed);
        pthread_mutex_destroy(&walker.lock);
    }
    Py_XDECREF(out.manifest);
    Py_XDECREF(out.same);
    Py_XDECREF(out.changed);
    Py_XDECREF(out.others);
    Py_XDECREF(out.unreadable);
    Py_DECREF(skip_bytes);
    Py_DECREF(root_object);
    return result;
}

/* --- writing a clone's files ----------------------------------------------------------- */

/* Release the first *made* paths of a batch and the array (NULL: nothing to do). */
static void free_paths(PyObject **paths, Py_ssize_t made) {
    if (paths == NULL) return;
    for (Py_ssize_t i = 0; i < made; i++) Py_XDECREF(paths[i]);
    PyMem_Free(paths);
}

/* Return root/relative as bytes (*root* bytes without NUL, *relative* str encoded as os.fsencode does), or
 * NULL with an exception. A NUL in *relative* raises ValueError("embedded null byte"), as os.open does for
 * the same path: the system would read the path only up to it, and open another file. */
static PyObject *joined(PyObject *root, PyObject *relative_str) {
    PyObject *relative = PyUnicode_EncodeFSDefault(relative_str);
    if (relative == NULL) return NULL;
    Py_ssize_t root_length = PyBytes_GET_SIZE(root), length = PyBytes_GET_SIZE(relative);
    if (memchr(PyBytes_AS_STRING(relative), '\0', (size_t)length) != NULL) {
        Py_DECREF(relative);
        PyErr_SetString(PyExc_ValueError, "embedded null byte");
        return NULL;
    }
    PyObject *path = PyBytes_FromStringAndSize(NULL, root_length + 1 + length);
    if (path != NULL) {
        char *at = PyBytes_AS_STRING(path);
        memcpy(at, PyBytes_AS_STRING(root), (size_t)root_length);
        at[root_length] = '/';
        memcpy(at + root_length + 1, PyBytes_AS_STRING(relative), (size_t)length);
    }
    Py_DECREF(relative);
    return path;
}

/* write_files(root, files) -> None: create each (relative path, bytes) of *files* new under *root*
 * (O_CREAT | O_EXCL | O_NOFOLLOW, mode 0666 less the umask) and write its bytes, all without the GIL.
 * Raises OSError naming the path at the first failure (the files before it stay written). The folders
 * must exist. What worktree.write_new_file does for one file, for a batch. */
static PyObject *write_files(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *root, *files;
    if (!PyArg_ParseTuple(args, "O&O:write_files", PyUnicode_FSConverter, &root, &files)) return NULL;
    PyObject *batch = PySequence_Tuple(files); /* holds every item while the GIL is released */
    if (batch == NULL) {
        Py_DECREF(root);
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(batch), made = 0, failed_at = -1;
    PyObject **paths = PyMem_Calloc((size_t)(count ? count : 1), sizeof(PyObject *));
    PyObject *result = NULL;
    int error = 0;
    if (paths == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; made < count; made++) {
        PyObject *item = PyTuple_GET_ITEM(batch, made);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(item, 0)) ||
            !PyBytes_Check(PyTuple_GET_ITEM(item, 1))) {
            PyErr_SetString(PyExc_TypeError, "write_files takes (str, bytes) pairs");
            goto done;
        }
        if ((paths[made] = joined(root, PyTuple_GET_ITEM(item, 0))) == NULL) goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count && failed_at < 0; i++) {
        PyObject *content = PyTuple_GET_ITEM(PyTuple_GET_ITEM(batch, i), 1);
        const char *data = PyBytes_AS_STRING(content);
        size_t left = (size_t)PyBytes_GET_SIZE(content);
        int fd = open(PyBytes_AS_STRING(paths[i]), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0) {
            error = errno;
            failed_at = i;
            break;
        }
        while (left > 0) {
            ssize_t written = write(fd, data, left);
            if (written < 0) {
                if (errno == EINTR) continue;
                error = errno;
                failed_at = i;
                break;
            }
            data += written;
            left -= (size_t)written;
        }
        if (close(fd) != 0 && failed_at < 0) {
            error = errno;
            failed_at = i;
        }
    }
    Py_END_ALLOW_THREADS
    if (failed_at >= 0) {
        PyObject *where = PyUnicode_DecodeFSDefaultAndSize(PyBytes_AS_STRING(paths[failed_at]),
                                                           PyBytes_GET_SIZE(paths[failed_at]));
        if (where != NULL) {
            errno = error;
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, where);
            Py_DECREF(where);
        }
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    free_paths(paths, made);
    Py_DECREF(batch);
    Py_DECREF(root);
    return result;
}

/* --- reading a push's files ------------------------------------------------------------ */

typedef struct {
    char *data;    /* malloc'ed content, or NULL */
    size_t length;
    int error;     /* errno of the failure, or 0 */
} Read;

/* Read the whole file at *path* into *out* (no GIL needed). Regular files only: O_NOFOLLOW refuses a
 * symlink put where the walk saw a file, and anything else that is not a regular file reads as EINVAL
 * (a FIFO would block). */
static void read_one(const char *path, Read *out) {
    out->data = NULL;
    out->length = 0;
    out->error = 0;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        out->error = errno;
        return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        out->error = errno;
        close(fd);
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        out->error = EINVAL;
        close(fd);
        return;
    }
    size_t capacity = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096; /* +1: a file that grew shows at once */
    char *data = malloc(capacity);
    size_t length = 0;
    while (data != NULL) {
        if (length == capacity) {
            char *bigger = realloc(data, capacity * 2);
            if (bigger == NULL) break;
            data = bigger;
            capacity *= 2;
        }
        ssize_t got = read(fd, data + length, capacity - length);
        if (got < 0) {
            if (errno == EINTR) continue;
            out->error = errno;
            free(data);
            close(fd);
            return;
        }
        if (got == 0) {
            out->data = data;
            out->length = length;
            close(fd);
            return;
        }
        length += (size_t)got;
    }
    free(data);
    out->error = ENOMEM;
    close(fd);
}

/* read_files(root, relatives) -> [bytes or int]: the content of each regular file root/relative, read
 * without the GIL; where one cannot be read, its errno instead (ENOENT: removed meanwhile; EINVAL: no
 * longer a regular file; ELOOP: now a symlink). What worktree.read_file does for one file, for a batch. */
static PyObject *read_files(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *root, *relatives;
    if (!PyArg_ParseTuple(args, "O&O:read_files", PyUnicode_FSConverter, &root, &relatives)) return NULL;
    PyObject *batch = PySequence_Tuple(relatives);
    if (batch == NULL) {
        Py_DECREF(root);
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(batch), made = 0;
    PyObject **paths = PyMem_Calloc((size_t)(count ? count : 1), sizeof(PyObject *));
    Read *reads = PyMem_Calloc((size_t)(count ? count : 1), sizeof(Read));
    PyObject *result = NULL;
    if (paths == NULL || reads == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; made < count; made++) {
        PyObject *item = PyTuple_GET_ITEM(batch, made);
        if (!PyUnicode_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "read_files takes relative paths (str)");
            goto done;
        }
        if ((paths[made] = joined(root, item)) == NULL) goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++) read_one(PyBytes_AS_STRING(paths[i]), &reads[i]);
    Py_END_ALLOW_THREADS
    result = PyList_New(count);
    for (Py_ssize_t i = 0; i < count && result != NULL; i++) {
        PyObject *value = reads[i].error ? PyLong_FromLong(reads[i].error)
                                         : PyBytes_FromStringAndSize(reads[i].data, (Py_ssize_t)reads[i].length);
        if (value == NULL) Py_CLEAR(result);
        else PyList_SET_ITEM(result, i, value);
    }
done:
    if (reads != NULL) {
        for (Py_ssize_t i = 0; i < count; i++) free(reads[i].data);
        PyMem_Free(reads);
    }
    free_paths(paths, made);
    Py_DECREF(batch);
    Py_DECREF(root);
    return result;
}

static PyMethodDef methods[] = {
    {"walk", walk, METH_VARARGS,
     "walk(root, skip, known, threads=1) -> (manifest, same, changed, others, unreadable, files): the tree "
     "under root, stat'ed on threads and compared with the stat cache's entries (see the module's source)."},
    {"write_files", write_files, METH_VARARGS,
     "write_files(root, [(relative path, bytes)]) -> None: create each file new and write it, without the GIL."},
    {"read_files", read_files, METH_VARARGS,
     "read_files(root, [relative path]) -> [bytes or errno]: read each regular file whole, without the GIL."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "musehub_client._scan", "A push's tree walk and file reads, and a clone's file writes, in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__scan(void) { return PyModule_Create(&module); }
