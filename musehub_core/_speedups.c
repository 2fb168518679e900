/*
 * musehub_core._speedups: the bytes a snapshot id hashes, and the line-diff search, in C.
 *
 * A snapshot id (docs/wire.md section 1) is SHA-256 of the sorted
 * "path NUL hex(object id)" strings joined by NUL. In Python that is a string
 * per path, a sort of them and a join: 20 ms for 25,000 paths, paid by every
 * push (the client's commit, the hub's check) and every rebuilt tree. Here it
 * is one merge of the runs already in order and one copy into the result.
 *
 * snapshot_payload(manifest) -> bytes | None
 *
 *   manifest  {path: object id}, both str, in any order
 *   returns   the UTF-8 bytes compute_snapshot_id hashes; None when the
 *             manifest is not a dict whose keys and values are all exact str
 *             (a str subclass could run Python code, which could change the
 *             dict being walked), or a path holds NUL (there "sorted by path"
 *             and "sorted as entries" could differ): the caller then takes
 *             the Python way, which gives the same bytes or the same error
 *
 * Sorting by the paths' UTF-8 bytes is sorting by code point, as Python sorts
 * str; paths are unique keys, and an entry ends its path with NUL, which sorts
 * before any other character, so the entries sort as their paths do. A path
 * that cannot be UTF-8 (a lone surrogate) raises UnicodeEncodeError, as
 * str.encode() does.
 *
 * myers(before, after, units, seconds) is the search of musehub_core.textdiff
 * (Myers' greedy shortest edit script): it numbers the lines through a dict,
 * then searches over the numbers without the GIL, a hundred times faster than
 * its Python twin, on the same budget of units.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char PREFIX[] = "sha256:";
#define PREFIX_LENGTH (sizeof(PREFIX) - 1)

typedef struct {
    const char *path;
    Py_ssize_t path_length;
    const char *hex;
    Py_ssize_t hex_length;
} Row;

static int by_path(const void *a, const void *b) {
    const Row *x = a, *y = b;
    Py_ssize_t shorter = x->path_length < y->path_length ? x->path_length : y->path_length;
    int order = memcmp(x->path, y->path, (size_t)shorter);
    if (order != 0) return order;
    return x->path_length < y->path_length ? -1 : (x->path_length > y->path_length ? 1 : 0);
}

/* Merge the sorted runs rows[a:b] and rows[b:c] through *spare* (room for c - a rows). */
static void merge(Row *rows, Py_ssize_t a, Py_ssize_t b, Py_ssize_t c, Row *spare) {
    Py_ssize_t i = a, j = b, k = 0;
    while (i < b && j < c) spare[k++] = by_path(&rows[j], &rows[i]) < 0 ? rows[j++] : rows[i++];
    while (i < b) spare[k++] = rows[i++];
    while (j < c) spare[k++] = rows[j++];
    memcpy(&rows[a], spare, (size_t)k * sizeof(Row));
}

/* Sort *rows* by path, merging the runs already in order: a tree after a delta is its base's paths in order
 * then the added paths in order, two runs and one merge. Returns -1 when memory ran out. */
static int sort_rows(Row *rows, Py_ssize_t count) {
    Py_ssize_t *starts = PyMem_Malloc((size_t)(count + 1) * sizeof(Py_ssize_t));
    Row *spare = PyMem_Malloc((size_t)count * sizeof(Row));
    if (starts == NULL || spare == NULL) {
        PyMem_Free(starts);
        PyMem_Free(spare);
        return -1;
    }
    Py_ssize_t runs = 0;
    for (Py_ssize_t i = 0; i < count; i++)
        if (i == 0 || by_path(&rows[i - 1], &rows[i]) > 0) starts[runs++] = i;
    starts[runs] = count;
    while (runs > 1) { /* merge neighbouring runs pairwise until one is left */
        Py_ssize_t kept = 0;
        for (Py_ssize_t r = 0; r < runs; r += 2) {
            if (r + 1 < runs) merge(rows, starts[r], starts[r + 1], starts[r + 2], spare);
            starts[kept++] = starts[r];
        }
        starts[kept] = count;
        runs = kept;
    }
    PyMem_Free(starts);
    PyMem_Free(spare);
    return 0;
}

static PyObject *snapshot_payload(PyObject *Py_UNUSED(module), PyObject *manifest) {
    if (!PyDict_CheckExact(manifest)) Py_RETURN_NONE;
    Py_ssize_t count = PyDict_GET_SIZE(manifest);
    if (count == 0) return PyBytes_FromStringAndSize("", 0);
    Row *rows = PyMem_Malloc((size_t)count * sizeof(Row));
    if (rows == NULL) return PyErr_NoMemory();
    Py_ssize_t position = 0, index = 0, total = 0;
    PyObject *key, *value;
    while (PyDict_Next(manifest, &position, &key, &value)) {
        if (!PyUnicode_CheckExact(key) || !PyUnicode_CheckExact(value)) {
            PyMem_Free(rows);
            Py_RETURN_NONE;
        }
        if (PyUnicode_FindChar(key, 0, 0, PyUnicode_GET_LENGTH(key), 1) != -1) { /* NUL in a path (or an error) */
            PyMem_Free(rows);
            if (PyErr_Occurred()) return NULL;
            Py_RETURN_NONE;
        }
        Row *row = &rows[index];
        /* Borrowed buffers: ASCII strings give their own data, others a UTF-8 copy the str keeps. */
        if ((row->path = PyUnicode_AsUTF8AndSize(key, &row->path_length)) == NULL ||
            (row->hex = PyUnicode_AsUTF8AndSize(value, &row->hex_length)) == NULL) {
            PyMem_Free(rows);
            return NULL;
        }
        if (row->hex_length >= (Py_ssize_t)PREFIX_LENGTH && memcmp(row->hex, PREFIX, PREFIX_LENGTH) == 0) {
            row->hex += PREFIX_LENGTH;
            row->hex_length -= PREFIX_LENGTH;
        }
        total += row->path_length + 1 + row->hex_length + 1;
        index++;
    }
    if (sort_rows(rows, count) < 0) {
        PyMem_Free(rows);
        return PyErr_NoMemory();
    }
    PyObject *payload = PyBytes_FromStringAndSize(NULL, total - 1); /* no NUL after the last entry */
    if (payload == NULL) {
        PyMem_Free(rows);
        return NULL;
    }
    char *out = PyBytes_AS_STRING(payload);
    for (Py_ssize_t i = 0; i < count; i++) {
        memcpy(out, rows[i].path, (size_t)rows[i].path_length);
        out += rows[i].path_length;
        *out++ = '\0';
        memcpy(out, rows[i].hex, (size_t)rows[i].hex_length);
        out += rows[i].hex_length;
        if (i + 1 < count) *out++ = '\0';
    }
    PyMem_Free(rows);
    return payload;
}

/* --- myers -------------------------------------------------------------------------------------------- */

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

typedef struct {
    Py_ssize_t *runs; /* (equal, i1, i2, j1, j2) five at a time, newest first while walking back */
    Py_ssize_t count, capacity;
} Runs;

/* Prepend (as the walk goes backwards) a run; merge it with the one after it when both are equal or both edits. */
static int push_run(Runs *runs, int equal, Py_ssize_t i1, Py_ssize_t i2, Py_ssize_t j1, Py_ssize_t j2) {
    if (i1 == i2 && j1 == j2) return 0;
    if (runs->count && runs->runs[5 * (runs->count - 1)] == equal) {
        Py_ssize_t *last = &runs->runs[5 * (runs->count - 1)];
        last[1] = i1;
        last[3] = j1;
        return 0;
    }
    if (runs->count == runs->capacity) {
        Py_ssize_t capacity = runs->capacity ? 2 * runs->capacity : 64;
        Py_ssize_t *grown = realloc(runs->runs, (size_t)capacity * 5 * sizeof(Py_ssize_t));
        if (grown == NULL) return -1;
        runs->runs = grown;
        runs->capacity = capacity;
    }
    Py_ssize_t *run = &runs->runs[5 * runs->count++];
    run[0] = equal, run[1] = i1, run[2] = i2, run[3] = j1, run[4] = j2;
    return 0;
}

/* The search: 1 found (runs filled), 0 out of budget or time, -1 out of memory. The frontier of each d keeps
 * only the d + 1 diagonals of d's parity (those the walk back reads), so memory is about the units spent. */
static int myers_search(const int *a, Py_ssize_t n, const int *b, Py_ssize_t m, long long units, double deadline,
                        long long *spent, Runs *runs) {
    Py_ssize_t offset = n + m + 1;
    Py_ssize_t *v = calloc((size_t)(2 * offset + 1), sizeof(Py_ssize_t));
    int *trace = NULL; /* lines are counted in ints: a diffed file is at most DIFF_MAX_BYTES */
    Py_ssize_t trace_length = 0, trace_capacity = 0;
    int found = 0;
    if (v == NULL) return -1;
    Py_ssize_t d = 0;
    for (; d <= n + m && !found; d++) {
        long long steps = d + 1;
        for (Py_ssize_t k = -d; k <= d; k += 2) {
            Py_ssize_t x = (k == -d || (k != d && v[offset + k - 1] < v[offset + k + 1])) ? v[offset + k + 1]
                                                                                           : v[offset + k - 1] + 1;
            Py_ssize_t y = x - k, start = x;
            while (x < n && y < m && a[x] == b[y]) x++, y++;
            steps += x - start;
            v[offset + k] = x;
            if (x >= n && y >= m) found = 1;
        }
        if (trace_length + d + 1 > trace_capacity) {
            Py_ssize_t capacity = trace_capacity ? 2 * trace_capacity : 1024;
            while (capacity < trace_length + d + 1) capacity *= 2;
            int *grown = realloc(trace, (size_t)capacity * sizeof(int));
            if (grown == NULL) goto out_of_memory;
            trace = grown;
            trace_capacity = capacity;
        }
        for (Py_ssize_t k = -d; k <= d; k += 2) trace[trace_length++] = (int)v[offset + k];
        *spent += steps;
        if (!found && (*spent > units || now_seconds() > deadline)) break;
    }
    if (found) {
        /* frontier of step e starts at e * (e + 1) / 2 in trace; diagonal k of it at (k + e) / 2 */
        Py_ssize_t x = n, y = m;
        for (Py_ssize_t e = d - 1; e >= 1; e--) {
            const int *previous = &trace[(e - 1) * e / 2];
            Py_ssize_t k = x - y;
#define PREVIOUS(kk) previous[((kk) + (e - 1)) / 2]
            int down = k == -e || (k != e && PREVIOUS(k - 1) < PREVIOUS(k + 1));
            Py_ssize_t prev_k = down ? k + 1 : k - 1, prev_x = PREVIOUS(prev_k);
#undef PREVIOUS
            Py_ssize_t prev_y = prev_x - prev_k;
            Py_ssize_t mid_x = down ? prev_x : prev_x + 1, mid_y = mid_x - k;
            if (push_run(runs, 1, mid_x, x, mid_y, y) < 0 || push_run(runs, 0, prev_x, mid_x, prev_y, mid_y) < 0)
                goto out_of_memory;
            x = prev_x, y = prev_y;
        }
        if (push_run(runs, 1, 0, x, 0, y) < 0) goto out_of_memory;
    }
    free(v);
    free(trace);
    return found;
out_of_memory:
    free(v);
    free(trace);
    return -1;
}

/* Number the first *count* lines of the list *lines* (exact str: no Python code runs while they are compared)
 * through *numbers* ({line: int}). */
static int *number_lines(PyObject *lines, Py_ssize_t count, PyObject *numbers) {
    int *out = malloc((size_t)(count ? count : 1) * sizeof(int));
    if (out == NULL) return (int *)PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!PyUnicode_CheckExact(PyList_GET_ITEM(lines, i))) {
            PyErr_SetString(PyExc_TypeError, "myers() takes lists of str");
            goto fail;
        }
        PyObject *next = PyLong_FromSsize_t(PyDict_GET_SIZE(numbers));
        if (next == NULL) goto fail;
        PyObject *number = PyDict_SetDefault(numbers, PyList_GET_ITEM(lines, i), next); /* borrowed */
        Py_DECREF(next);
        if (number == NULL) goto fail;
        out[i] = (int)PyLong_AsLong(number);
    }
    return out;
fail:
    free(out);
    return NULL;
}

/* myers(before, after, units, seconds) -> (opcodes | None, units spent): before and after are lists of lines. */
static PyObject *myers(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *before, *after;
    long long units;
    double seconds;
    if (!PyArg_ParseTuple(args, "O!O!Ld:myers", &PyList_Type, &before, &PyList_Type, &after, &units, &seconds))
        return NULL;
    PyObject *result = NULL, *numbers = PyDict_New();
    int *a = NULL, *b = NULL;
    long long spent = 0;
    Runs runs = {NULL, 0, 0};
    int found;
    Py_ssize_t n = PyList_GET_SIZE(before), m = PyList_GET_SIZE(after);
    if (numbers == NULL || (a = number_lines(before, n, numbers)) == NULL || (b = number_lines(after, m, numbers)) == NULL)
        goto done;
    double deadline = now_seconds() + seconds;
    Py_BEGIN_ALLOW_THREADS
    found = myers_search(a, n, b, m, units, deadline, &spent, &runs);
    Py_END_ALLOW_THREADS
    if (found < 0) {
        PyErr_NoMemory();
        goto done;
    }
    PyObject *codes = found ? PyList_New(runs.count) : Py_NewRef(Py_None);
    if (codes == NULL) goto done;
    for (Py_ssize_t i = 0; found && i < runs.count; i++) {
        const Py_ssize_t *run = &runs.runs[5 * (runs.count - 1 - i)];
        const char *tag = run[0] ? "equal" : run[1] == run[2] ? "insert" : run[3] == run[4] ? "delete" : "replace";
        PyObject *code = Py_BuildValue("(snnnn)", tag, run[1], run[2], run[3], run[4]);
        if (code == NULL) {
            Py_DECREF(codes);
            goto done;
        }
        PyList_SET_ITEM(codes, i, code);
    }
    result = Py_BuildValue("(NL)", codes, spent);
done:
    free(runs.runs);
    free(a);
    free(b);
    Py_XDECREF(numbers);
    return result;
}

static PyMethodDef methods[] = {
    {"snapshot_payload", snapshot_payload, METH_O,
     "snapshot_payload(manifest) -> bytes | None: the bytes a snapshot id hashes (see the module's source)."},
    {"myers", myers, METH_VARARGS,
     "myers(before, after, units, seconds) -> (opcodes | None, units spent): musehub_core.textdiff's search."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "musehub_core._speedups", "Snapshot id bytes and line diffs, in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) { return PyModule_Create(&module); }
