/* Optional compiled paths of the word-timestamp writers (media_store/_speedups.pyi says what
 * each returns). Each function here has a pure-Python original, which stays the reference:
 * when this module is missing, or a function returns None, the Python code runs and its
 * result (or its error, naming the first bad word) is the library's. tests/words/
 * test_speedups.py compares the two ways on generated and adversarial input.
 *
 * Nothing here raises for bad input: any value off the common path (a non-dict item, a
 * numpy float, a NaN, words out of order, a NUL, a key under another engine's name) makes
 * the function return None, and the Python path says what is wrong.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

#define MAX_SPEAKER_LENGTH 50

static PyObject *k_word, *k_start, *k_end, *k_confidence, *k_speaker;
static PyObject *k_aliases[3]; /* probability, score, conf */

/* No NUL and no lone surrogate: what PostgreSQL text and UTF-8 can hold. */
static int
clean_text(PyObject *text)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    if (kind == PyUnicode_1BYTE_KIND)
        return memchr(data, 0, (size_t)n) == NULL;
    if (kind == PyUnicode_2BYTE_KIND) {
        const Py_UCS2 *p = (const Py_UCS2 *)data;
        for (Py_ssize_t i = 0; i < n; i++)
            if (p[i] == 0 || (p[i] >= 0xD800 && p[i] <= 0xDFFF))
                return 0;
        return 1;
    }
    const Py_UCS4 *p = (const Py_UCS4 *)data;
    for (Py_ssize_t i = 0; i < n; i++)
        if (p[i] == 0 || (p[i] >= 0xD800 && p[i] <= 0xDFFF))
            return 0;
    return 1;
}

/* A float or an int (not a bool) as a finite double: 1, else 0 (*error set on failure of
 * the interpreter itself, never for a bad value). */
static int
finite_number(PyObject *value, double *out)
{
    if (PyFloat_CheckExact(value)) {
        *out = PyFloat_AS_DOUBLE(value);
    }
    else if (PyLong_CheckExact(value)) {
        *out = PyLong_AsDouble(value);
        if (*out == -1.0 && PyErr_Occurred()) {
            PyErr_Clear(); /* too large for a float: refused by the Python path */
            return 0;
        }
    }
    else {
        return 0;
    }
    return isfinite(*out);
}

/* The value as a float object: the same object for a float, a new one for an int. */
static PyObject *
as_float(PyObject *value, double number)
{
    if (PyFloat_CheckExact(value)) {
        Py_INCREF(value);
        return value;
    }
    return PyFloat_FromDouble(number);
}

static void
pack_double(char *at, double value)
{
    uint64_t bits;
    memcpy(&bits, &value, 8);
    for (int i = 7; i >= 0; i--) {
        at[i] = (char)(bits & 0xFF);
        bits >>= 8;
    }
}

static void
pack_int4(char *at, uint32_t value)
{
    at[0] = (char)(value >> 24);
    at[1] = (char)(value >> 16);
    at[2] = (char)(value >> 8);
    at[3] = (char)value;
}

/* The columns being made: the five lists and the four packed forms. */
typedef struct {
    PyObject *words, *starts, *ends, *confidences, *speakers;
    PyObject *lengths, *starts_be, *ends_be, *confidences_be;
    double previous;
    int any_speaker;
    /* The speakers coded as media_store.words.segments codes them: each distinct value
     * (None too) numbered as first seen, renumbered in sorted order at the end. */
    PyObject *distinct; /* value -> first-seen number */
    PyObject *codes;    /* bytes, one code a word */
    int too_many;       /* more than 256 distinct values: the Python path codes them */
} Out;

/* A list of ``n`` Nones: a list with empty slots must not be seen by Python code (the
 * garbage collector's gc.get_objects(), which a key's __eq__ may call mid-pass). */
static PyObject *
list_of_none(Py_ssize_t n)
{
    PyObject *list = PyList_New(n);
    for (Py_ssize_t i = 0; list && i < n; i++)
        PyList_SET_ITEM(list, i, Py_NewRef(Py_None));
    return list;
}

/* Put ``value`` (a new reference) at ``i`` of a list list_of_none made. */
static void
list_put(PyObject *list, Py_ssize_t i, PyObject *value)
{
    PyObject *old = PyList_GET_ITEM(list, i);
    PyList_SET_ITEM(list, i, value);
    Py_DECREF(old);
}

static int
out_init(Out *out, Py_ssize_t n)
{
    out->words = list_of_none(n);
    out->starts = list_of_none(n);
    out->ends = list_of_none(n);
    out->confidences = list_of_none(n);
    out->speakers = list_of_none(n);
    out->lengths = PyBytes_FromStringAndSize(NULL, 4 * n);
    out->starts_be = PyBytes_FromStringAndSize(NULL, 8 * n);
    out->ends_be = PyBytes_FromStringAndSize(NULL, 8 * n);
    out->confidences_be = PyBytes_FromStringAndSize(NULL, 8 * n);
    out->previous = 0.0;
    out->any_speaker = 0;
    out->distinct = PyDict_New();
    out->codes = PyBytes_FromStringAndSize(NULL, n);
    out->too_many = 0;
    return out->words && out->starts && out->ends && out->confidences && out->speakers &&
                   out->lengths && out->starts_be && out->ends_be && out->confidences_be &&
                   out->distinct && out->codes
               ? 0
               : -1;
}

/* (names, codes): the distinct speakers sorted, None last, and each word's index among them
 * (media_store.words.segments._pack_speaker_runs), or None when there are more than a byte
 * codes. */
static PyObject *
speaker_codes(Out *out)
{
    if (out->too_many)
        Py_RETURN_NONE;
    PyObject *names = PyList_New(0);
    if (!names)
        return NULL;
    PyObject *value, *number;
    Py_ssize_t at = 0;
    int has_none = 0;
    while (PyDict_Next(out->distinct, &at, &value, &number)) {
        if (value == Py_None)
            has_none = 1;
        else if (PyList_Append(names, value) < 0)
            goto failed;
    }
    if (PyList_Sort(names) < 0 || (has_none && PyList_Append(names, Py_None) < 0))
        goto failed;
    unsigned char renumber[256];
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(names); k++) {
        number = PyDict_GetItemWithError(out->distinct, PyList_GET_ITEM(names, k));
        if (!number)
            goto failed;
        renumber[PyLong_AsLong(number)] = (unsigned char)k;
    }
    unsigned char *codes = (unsigned char *)PyBytes_AS_STRING(out->codes);
    for (Py_ssize_t i = 0; i < PyBytes_GET_SIZE(out->codes); i++)
        codes[i] = renumber[codes[i]];
    PyObject *pair = PyTuple_Pack(2, names, out->codes);
    Py_DECREF(names);
    return pair;
failed:
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_SystemError, "speaker codes");
    Py_DECREF(names);
    return NULL;
}

/* The result tuple (new reference), and ``out`` released either way. */
static PyObject *
out_finish(Out *out, int made)
{
    PyObject *result = NULL;
    if (made == 1) {
        PyObject *coded = out->any_speaker ? speaker_codes(out) : Py_NewRef(Py_None);
        if (coded)
            result = PyTuple_Pack(
                10, out->words, out->starts, out->ends, out->confidences,
                out->any_speaker ? out->speakers : Py_None, out->lengths, out->starts_be,
                out->ends_be, out->confidences_be, coded);
        Py_XDECREF(coded);
    }
    else if (made == 0)
        result = Py_NewRef(Py_None);
    Py_XDECREF(out->words);
    Py_XDECREF(out->starts);
    Py_XDECREF(out->ends);
    Py_XDECREF(out->confidences);
    Py_XDECREF(out->speakers);
    Py_XDECREF(out->lengths);
    Py_XDECREF(out->starts_be);
    Py_XDECREF(out->ends_be);
    Py_XDECREF(out->confidences_be);
    Py_XDECREF(out->distinct);
    Py_XDECREF(out->codes);
    return result;
}

/* Check word ``i`` by the rules of media_store.words.timestamps and put it in ``out``
 * (``confidence`` and ``speaker`` NULL when absent): 1 done, 0 off the common path (the
 * Python path decides), -1 an error of the interpreter. */
static int
out_put(Out *out, Py_ssize_t i, PyObject *word, PyObject *start, PyObject *end,
        PyObject *confidence, PyObject *speaker)
{
    double s, e, c = NAN;
    if (!PyUnicode_CheckExact(word) || !clean_text(word))
        return 0;
    if (!finite_number(start, &s) || !finite_number(end, &e))
        return 0;
    if (s < 0 || e < s || s < out->previous)
        return 0;
    if (confidence == NULL || confidence == Py_None)
        confidence = Py_None;
    else if (!finite_number(confidence, &c) || c < 0 || c > 1)
        return 0;
    if (speaker == NULL || speaker == Py_None) {
        speaker = Py_None;
    }
    else {
        if (!PyUnicode_CheckExact(speaker) ||
            PyUnicode_GET_LENGTH(speaker) > MAX_SPEAKER_LENGTH || !clean_text(speaker))
            return 0;
        out->any_speaker = 1;
    }
    Py_ssize_t length = PyUnicode_GET_LENGTH(word);
    if (length > INT32_MAX)
        return 0;
    out->previous = s;
    PyObject *start_f = as_float(start, s), *end_f = as_float(end, e);
    PyObject *confidence_f =
        confidence == Py_None ? Py_NewRef(Py_None) : as_float(confidence, c);
    if (!start_f || !end_f || !confidence_f) {
        Py_XDECREF(start_f);
        Py_XDECREF(end_f);
        Py_XDECREF(confidence_f);
        return -1;
    }
    list_put(out->words, i, Py_NewRef(word));
    list_put(out->starts, i, start_f);
    list_put(out->ends, i, end_f);
    list_put(out->confidences, i, confidence_f);
    list_put(out->speakers, i, Py_NewRef(speaker));
    if (!out->too_many) {
        PyObject *number = PyDict_GetItemWithError(out->distinct, speaker);
        if (!number) {
            if (PyErr_Occurred())
                return -1;
            Py_ssize_t seen = PyDict_GET_SIZE(out->distinct);
            if (seen == 256) {
                out->too_many = 1;
            }
            else {
                number = PyLong_FromSsize_t(seen);
                if (!number || PyDict_SetItem(out->distinct, speaker, number) < 0) {
                    Py_XDECREF(number);
                    return -1;
                }
                Py_DECREF(number); /* the dict holds it */
            }
        }
        if (number)
            PyBytes_AS_STRING(out->codes)[i] = (char)PyLong_AsLong(number);
    }
    pack_int4(PyBytes_AS_STRING(out->lengths) + 4 * i, (uint32_t)length);
    pack_double(PyBytes_AS_STRING(out->starts_be) + 8 * i, s);
    pack_double(PyBytes_AS_STRING(out->ends_be) + 8 * i, e);
    pack_double(PyBytes_AS_STRING(out->confidences_be) + 8 * i, c);
    return 1;
}

/* out_put with the values held: an allocation on the way may run the garbage collector,
 * whose finalizers could change the dict or list they were borrowed from. */
static int
put_held(Out *out, Py_ssize_t i, PyObject *word, PyObject *start, PyObject *end,
         PyObject *confidence, PyObject *speaker)
{
    Py_INCREF(word);
    Py_INCREF(start);
    Py_INCREF(end);
    Py_XINCREF(confidence);
    Py_XINCREF(speaker);
    int made = out_put(out, i, word, start, end, confidence, speaker);
    Py_DECREF(word);
    Py_DECREF(start);
    Py_DECREF(end);
    Py_XDECREF(confidence);
    Py_XDECREF(speaker);
    return made;
}

/* Word ``i`` of columns() from its dict ``item`` (held by the caller). */
static int
put_item(Out *out, Py_ssize_t i, PyObject *item)
{
    /* Each value held as soon as found: a lookup may run code (a key's __eq__) that changes
     * the dict. */
    PyObject *word = Py_XNewRef(PyDict_GetItemWithError(item, k_word));
    PyObject *start = word ? Py_XNewRef(PyDict_GetItemWithError(item, k_start)) : NULL;
    PyObject *end = start ? Py_XNewRef(PyDict_GetItemWithError(item, k_end)) : NULL;
    PyObject *confidence = NULL, *speaker = NULL;
    int made = 1;
    if (end && !PyErr_Occurred())
        confidence = Py_XNewRef(PyDict_GetItemWithError(item, k_confidence));
    if (end && !PyErr_Occurred())
        speaker = Py_XNewRef(PyDict_GetItemWithError(item, k_speaker));
    if (PyErr_Occurred())
        made = -1;
    else if (!end)
        made = 0;
    if (made == 1 && (confidence == NULL || confidence == Py_None)) {
        /* No confidence: one under another engine's name is refused by the Python path. */
        for (int a = 0; made == 1 && a < 3; a++) {
            int has = PyDict_Contains(item, k_aliases[a]);
            made = has < 0 ? -1 : has ? 0 : 1;
        }
    }
    if (made == 1)
        made = out_put(out, i, word, start, end, confidence, speaker);
    Py_XDECREF(word);
    Py_XDECREF(start);
    Py_XDECREF(end);
    Py_XDECREF(confidence);
    Py_XDECREF(speaker);
    return made;
}

/* columns(items) -> (words, starts, ends, confidences, speakers, lengths, starts_be, ends_be,
 * confidences_be, speaker_codes) | None
 *
 * The five columns of ``items`` (a list of dicts) checked by the rules of
 * media_store.words.timestamps, read in one pass, with the packed forms the segments store
 * (media_store.words.segments: lengths as big-endian int4, the numbers as big-endian float8,
 * NaN for no confidence; the speakers coded, see speaker_codes). ``speakers`` is None when
 * no word has one. None: some item is off the common path, and the Python path decides. */
static PyObject *
columns(PyObject *module, PyObject *items)
{
    if (!PyList_CheckExact(items))
        Py_RETURN_NONE;
    Py_ssize_t n = PyList_GET_SIZE(items);
    Out out;
    int made = out_init(&out, n) < 0 ? -1 : 1;
    for (Py_ssize_t i = 0; made == 1 && i < n; i++) {
        if (PyList_GET_SIZE(items) != n) { /* changed by code a lookup ran */
            made = 0;
            break;
        }
        PyObject *item = PyList_GET_ITEM(items, i);
        if (!PyDict_CheckExact(item)) {
            made = 0;
            break;
        }
        Py_INCREF(item);
        made = put_item(&out, i, item);
        Py_DECREF(item);
    }
    return out_finish(&out, made);
}

/* check_columns(words, starts, ends, confidences, speakers) -> as columns() | None
 *
 * The same checks and packed forms for words already in columns (lists of one length;
 * ``speakers`` may be None), as the importers' typed decoders make them. */
static PyObject *
check_columns(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "check_columns(words, starts, ends, confidences, speakers)");
        return NULL;
    }
    PyObject *speakers = args[4];
    for (int k = 0; k < 4; k++)
        if (!PyList_CheckExact(args[k]) || PyList_GET_SIZE(args[k]) != PyList_GET_SIZE(args[0]))
            Py_RETURN_NONE;
    if (speakers != Py_None &&
        (!PyList_CheckExact(speakers) || PyList_GET_SIZE(speakers) != PyList_GET_SIZE(args[0])))
        Py_RETURN_NONE;
    Py_ssize_t n = PyList_GET_SIZE(args[0]);
    Out out;
    int made = out_init(&out, n) < 0 ? -1 : 1;
    for (Py_ssize_t i = 0; made == 1 && i < n; i++) {
        for (int k = 0; k < 5; k++) {
            if (args[k] != Py_None && PyList_GET_SIZE(args[k]) != n) {
                made = 0; /* changed by code an allocation ran */
            }
        }
        if (made != 1)
            break;
        made = put_held(&out, i, PyList_GET_ITEM(args[0], i), PyList_GET_ITEM(args[1], i),
                       PyList_GET_ITEM(args[2], i), PyList_GET_ITEM(args[3], i),
                       speakers == Py_None ? NULL : PyList_GET_ITEM(speakers, i));
    }
    return out_finish(&out, made);
}

/* --- search documents (media_store.words.documents.segment_documents) ----------------------- */

#define MAX_POSITION ((1 << 14) - 1)
#define MAX_POSITIONS 255

typedef struct {
    PyObject *prefix;    /* the quoted lexeme and ':' (borrowed from its Analysis) */
    const char *utf8;    /* its UTF-8 bytes (cached by the str itself) */
    Py_ssize_t size;
    Py_ssize_t first;    /* its first entry, then each entry's next */
    Py_ssize_t last;
    Py_ssize_t count;
} Group;

typedef struct {
    Py_ssize_t group;
    Py_ssize_t next;
    long position;
} Entry;

typedef struct {
    Group *groups;
    Entry *entries;
    Py_ssize_t *table; /* open addressing: group index + 1, 0 empty */
    Py_ssize_t n_groups, n_entries, capacity, table_size;
} Document;

static int
document_reserve(Document *d, Py_ssize_t entries)
{
    if (entries <= d->capacity)
        return 0;
    Py_ssize_t capacity = d->capacity ? d->capacity : 512;
    while (capacity < entries)
        capacity *= 2;
    Group *groups = PyMem_Realloc(d->groups, sizeof(Group) * (size_t)capacity);
    if (!groups) {
        PyErr_NoMemory();
        return -1;
    }
    d->groups = groups;
    Entry *more = PyMem_Realloc(d->entries, sizeof(Entry) * (size_t)capacity);
    if (!more) {
        PyErr_NoMemory();
        return -1;
    }
    d->entries = more;
    /* The table is rebuilt from the groups at a new size. */
    Py_ssize_t size = 2 * capacity;
    Py_ssize_t *table = PyMem_Calloc((size_t)size, sizeof(Py_ssize_t));
    if (!table) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t g = 0; g < d->n_groups; g++) {
        Py_hash_t h = PyObject_Hash(d->groups[g].prefix);
        if (h == -1) {
            PyMem_Free(table);
            return -1;
        }
        size_t at = (size_t)h & (size_t)(size - 1);
        while (table[at])
            at = (at + 1) & (size_t)(size - 1);
        table[at] = g + 1;
    }
    PyMem_Free(d->table);
    d->table = table;
    d->table_size = size;
    d->capacity = capacity;
    return 0;
}

/* Add ``prefix`` at ``position`` (1 to MAX_POSITION): 0 done, -1 an error of the
 * interpreter, -2 a prefix UTF-8 cannot hold (the Python path decides). */
static int
document_add(Document *d, PyObject *prefix, long position)
{
    if (document_reserve(d, d->n_entries + 1) < 0)
        return -1;
    Py_hash_t h = PyObject_Hash(prefix);
    if (h == -1)
        return -1;
    size_t mask = (size_t)(d->table_size - 1), at = (size_t)h & mask;
    Py_ssize_t g = -1;
    while (d->table[at]) {
        Group *found = &d->groups[d->table[at] - 1];
        if (found->prefix == prefix) {
            g = d->table[at] - 1;
            break;
        }
        int equal = PyUnicode_Compare(found->prefix, prefix) == 0;
        if (PyErr_Occurred())
            return -1;
        if (equal) {
            g = d->table[at] - 1;
            break;
        }
        at = (at + 1) & mask;
    }
    if (g < 0) {
        Py_ssize_t size;
        const char *utf8 = PyUnicode_AsUTF8AndSize(prefix, &size);
        if (!utf8) {
            if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
                return -1;
            PyErr_Clear(); /* a lone surrogate */
            return -2;
        }
        g = d->n_groups++;
        Group *group = &d->groups[g];
        /* Held until the literal is written: the analysis it came from may be released
         * (a mapping that makes its values, a dict changed by a key's __eq__). */
        group->prefix = Py_NewRef(prefix);
        group->utf8 = utf8;
        group->size = size;
        group->first = -1;
        group->count = 0;
        d->table[at] = g + 1;
    }
    Py_ssize_t e = d->n_entries++;
    d->entries[e].group = g;
    d->entries[e].next = -1;
    d->entries[e].position = position;
    Group *group = &d->groups[g];
    if (group->first < 0)
        group->first = e;
    else
        d->entries[group->last].next = e;
    group->last = e;
    group->count++;
    return 0;
}

static void
document_clear(Document *d)
{
    for (Py_ssize_t g = 0; g < d->n_groups; g++)
        Py_DECREF(d->groups[g].prefix);
    d->n_groups = 0;
    d->n_entries = 0;
    if (d->table)
        memset(d->table, 0, sizeof(Py_ssize_t) * (size_t)d->table_size);
}

static int
group_order(const void *a, const void *b)
{
    const Group *x = *(const Group *const *)a, *y = *(const Group *const *)b;
    Py_ssize_t n = x->size < y->size ? x->size : y->size;
    int c = memcmp(x->utf8, y->utf8, (size_t)n);
    if (c)
        return c;
    return (x->size > y->size) - (x->size < y->size);
}

/* ``position`` (1 to MAX_POSITION) in decimal at ``at``; the end of what was written.
 * sprintf's %ld took a sixth of segment_documents' time (one a word, measured). */
static char *
write_position(char *at, long position)
{
    char digits[8];
    int n = 0;
    do {
        digits[n++] = (char)('0' + position % 10);
        position /= 10;
    } while (position > 0 && n < 8);
    while (n > 0)
        *at++ = digits[--n];
    return at;
}

/* The literal of the document: each lexeme once with its positions, in the order tsvector
 * keeps them (byte order of the quoted lexemes: the server sorts what is not). */
static PyObject *
document_literal(Document *d, Group **order, char **buffer, Py_ssize_t *buffer_size)
{
    Py_ssize_t size = 0;
    for (Py_ssize_t g = 0; g < d->n_groups; g++) {
        order[g] = &d->groups[g];
        size += d->groups[g].size + 1 + 6 * d->groups[g].count; /* ' ', digits and ',' */
    }
    qsort(order, (size_t)d->n_groups, sizeof(Group *), group_order);
    if (size > *buffer_size) {
        char *more = PyMem_Realloc(*buffer, (size_t)size);
        if (!more) {
            PyErr_NoMemory();
            return NULL;
        }
        *buffer = more;
        *buffer_size = size;
    }
    char *at = *buffer;
    for (Py_ssize_t g = 0; g < d->n_groups; g++) {
        Group *group = order[g];
        if (g)
            *at++ = ' ';
        memcpy(at, group->utf8, (size_t)group->size);
        at += group->size;
        for (Py_ssize_t e = group->first; e >= 0; e = d->entries[e].next) {
            if (e != group->first)
                *at++ = ',';
            at = write_position(at, d->entries[e].position);
        }
    }
    return PyUnicode_DecodeUTF8(*buffer, at - *buffer, NULL);
}

/* document_of's code for what document_add returned. */
static int
added(int result)
{
    return result == 0 ? 1 : result;
}

/* One segment's document into ``d``: 1 made, 0 the server's (see the Python original), -1 an
 * error of the interpreter, -2 an analysis not of the expected shape (the Python path). */
static int
document_of(Document *d, PyObject *words, Py_ssize_t lo, Py_ssize_t hi, PyObject *analyses)
{
    long at = 1;
    for (Py_ssize_t i = lo; i < hi && i < PyList_GET_SIZE(words); i++) {
        /* Held: a lookup may run code (a key's __eq__) that changes the list. */
        PyObject *word = Py_NewRef(PyList_GET_ITEM(words, i));
        PyObject *analysis;
        if (PyDict_CheckExact(analyses)) {
            analysis = PyDict_GetItemWithError(analyses, word);
            if (!analysis && !PyErr_Occurred())
                PyErr_SetObject(PyExc_KeyError, word);
            Py_XINCREF(analysis);
        }
        else {
            analysis = PyObject_GetItem(analyses, word);
        }
        Py_DECREF(word);
        if (!analysis)
            return -1;
        int made = 1;
        if (analysis == Py_None) {
            made = 0;
        }
        else if (!PyTuple_Check(analysis) || PyTuple_GET_SIZE(analysis) != 4) {
            made = -2;
        }
        else {
            PyObject *entries = PyTuple_GET_ITEM(analysis, 0);
            PyObject *span = PyTuple_GET_ITEM(analysis, 1);
            PyObject *single = PyTuple_GET_ITEM(analysis, 2);
            PyObject *leads = PyTuple_GET_ITEM(analysis, 3);
            int overflow = 0;
            long width = PyLong_Check(span) ? PyLong_AsLongAndOverflow(span, &overflow) : -1;
            /* Past the last position, a word's span only sends the rest of its segment to the
             * server: held there, so that ``at`` cannot overflow. */
            if (overflow > 0 || width > MAX_POSITION + 1)
                width = MAX_POSITION + 1;
            int lead = i == lo ? PyObject_IsTrue(leads) : 1;
            if (width < 0 || overflow < 0 || !PyTuple_Check(entries) || lead < 0) {
                made = PyErr_Occurred() ? -1 : -2;
            }
            else if (!lead) {
                made = 0; /* the parser may read it otherwise at the start of a text */
            }
            else if (single != Py_None) {
                if (!PyUnicode_Check(single)) {
                    made = -2;
                }
                else if (PyUnicode_GET_LENGTH(single)) {
                    if (at > MAX_POSITION)
                        made = 0;
                    else
                        made = added(document_add(d, single, at));
                }
                at += width;
            }
            else {
                for (Py_ssize_t k = 0; made == 1 && k < PyTuple_GET_SIZE(entries); k++) {
                    PyObject *entry = PyTuple_GET_ITEM(entries, k);
                    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2 ||
                        !PyUnicode_Check(PyTuple_GET_ITEM(entry, 0)) ||
                        !PyLong_Check(PyTuple_GET_ITEM(entry, 1))) {
                        made = -2;
                        break;
                    }
                    int past = 0;
                    long offset = PyLong_AsLongAndOverflow(PyTuple_GET_ITEM(entry, 1), &past);
                    if (offset == -1 && PyErr_Occurred())
                        made = -1;
                    else if (offset < 0 || past < 0)
                        made = -2; /* no analysis has one: the Python path decides */
                    else if (past > 0 || offset > MAX_POSITION || at + offset > MAX_POSITION)
                        made = 0;
                    else
                        made = added(document_add(d, PyTuple_GET_ITEM(entry, 0), at + offset));
                }
                at += width;
            }
        }
        Py_DECREF(analysis);
        if (made != 1)
            return made;
    }
    for (Py_ssize_t g = 0; g < d->n_groups; g++)
        if (d->groups[g].count > MAX_POSITIONS)
            return 0; /* more positions than to_tsvector keeps: the server's */
    return 1;
}

/* segment_documents(words, segment_words, analyses) -> list[str | None] | None
 *
 * media_store.words.documents.segment_documents, each lexeme written once with all its
 * positions (the server merges them otherwise: measured half its cost of reading the
 * literal). None: an analysis off the expected shape, and the Python path decides. */
static PyObject *
segment_documents(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "segment_documents(words, segment_words, analyses)");
        return NULL;
    }
    PyObject *words = args[0], *analyses = args[2];
    Py_ssize_t step = PyLong_AsSsize_t(args[1]);
    if (step == -1 && PyErr_Occurred())
        return NULL;
    if (!PyList_CheckExact(words) || step < 1 || step > MAX_POSITIONS + 1)
        Py_RETURN_NONE;
    Py_ssize_t n = PyList_GET_SIZE(words);
    PyObject *out = PyList_New(0);
    Document d = {0};
    Group **order = NULL;
    char *buffer = NULL;
    Py_ssize_t buffer_size = 0, order_size = 0;
    if (!out)
        return NULL;
    for (Py_ssize_t lo = 0; lo < n; lo += step) {
        Py_ssize_t hi = lo + step < n ? lo + step : n;
        document_clear(&d);
        int made = document_of(&d, words, lo, hi, analyses);
        PyObject *literal = NULL;
        if (made == 1) {
            if (d.n_groups > order_size) {
                Group **more = PyMem_Realloc(order, sizeof(Group *) * (size_t)d.n_groups);
                if (!more) {
                    PyErr_NoMemory();
                    goto failed;
                }
                order = more;
                order_size = d.n_groups;
            }
            literal = document_literal(&d, order, &buffer, &buffer_size);
            if (!literal)
                goto failed;
        }
        else if (made == 0) {
            literal = Py_NewRef(Py_None);
        }
        else if (made == -2) {
            Py_CLEAR(out);
            out = Py_NewRef(Py_None);
            goto done;
        }
        else {
            goto failed;
        }
        int appended = PyList_Append(out, literal);
        Py_DECREF(literal);
        if (appended < 0)
            goto failed;
    }
    goto done;
failed:
    Py_CLEAR(out);
done:
    document_clear(&d);
    PyMem_Free(d.groups);
    PyMem_Free(d.entries);
    PyMem_Free(d.table);
    PyMem_Free(order);
    PyMem_Free(buffer);
    return out;
}

/* unknown_words(words, known) -> list[str]
 *
 * The words of the list ``words`` that the dict ``known`` does not hold, each once, in the
 * order first seen (media_store.words.search.ConfigWords.missing): a transcript's 10,000
 * words hold a few thousand distinct ones, all known once a process has written a few. */
static PyObject *
unknown_words(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_CheckExact(args[0]) || !PyDict_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "unknown_words(words: list, known: dict)");
        return NULL;
    }
    PyObject *words = args[0], *known = args[1];
    PyObject *out = PyList_New(0), *seen = PySet_New(NULL);
    if (!out || !seen)
        goto failed;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(words); i++) {
        PyObject *word = Py_NewRef(PyList_GET_ITEM(words, i));
        int found = PyDict_Contains(known, word);
        if (found == 0) {
            found = PySet_Contains(seen, word);
            if (found == 0 && (PySet_Add(seen, word) < 0 || PyList_Append(out, word) < 0))
                found = -1;
        }
        Py_DECREF(word);
        if (found < 0)
            goto failed;
    }
    Py_DECREF(seen);
    return out;
failed:
    Py_XDECREF(out);
    Py_XDECREF(seen);
    return NULL;
}

/* --- rows (media_store.models.rows._RowPlan.values) ------------------------------------------ */

#define MAX_ROW_FIELDS 128

/* row_values(row, order, accepted, enums[, extra[, names]]) -> dict | tuple | None
 *
 * _RowPlan.values of an asyncpg Record: its columns must be ``order`` (names, in order) and,
 * with ``extra``, that many columns more after them whose names are not in ``order`` (a
 * claim's trace context: _RowPlan.wider_values; ``names``, ``order`` as a frozenset, makes
 * that test a lookup instead of a walk of ``order``); the
 * types of its values a combination in ``accepted`` (a set of tuples of types), and each
 * enum column's value (``enums``: (index, name, members) each) a key of its members, or None.
 * Returns the values by name (each enum value its member), None when a check fails, or the
 * tuple of the values' types when that combination is not in ``accepted`` yet (the Python
 * plan decides, and remembers it). */
static PyObject *
row_values(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 4 || nargs > 6 || !PyTuple_CheckExact(args[1]) || !PyAnySet_Check(args[2]) ||
        !PyTuple_CheckExact(args[3]) || (nargs == 6 && !PyFrozenSet_CheckExact(args[5]))) {
        PyErr_SetString(PyExc_TypeError,
                        "row_values(row, order, accepted, enums[, extra[, names]])");
        return NULL;
    }
    PyObject *row = args[0], *order = args[1], *accepted = args[2], *enums = args[3];
    PyObject *names = nargs == 6 ? args[5] : NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(order);
    Py_ssize_t extra = nargs >= 5 ? PyLong_AsSsize_t(args[4]) : 0;
    if (extra < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "row_values: extra must not be negative");
        return NULL;
    }
    if (n > MAX_ROW_FIELDS || PySequence_Size(row) != n + extra) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    /* The columns' names. */
    PyObject *keys = PyObject_CallMethod(row, "keys", NULL);
    PyObject *iterator = keys ? PyObject_GetIter(keys) : NULL;
    Py_XDECREF(keys);
    if (!iterator)
        return NULL;
    int same = 1;
    for (Py_ssize_t i = 0; same == 1 && i < n; i++) {
        PyObject *key = PyIter_Next(iterator);
        if (!key) {
            same = PyErr_Occurred() ? -1 : 0;
            break;
        }
        PyObject *name = PyTuple_GET_ITEM(order, i);
        same = key == name ? 1 : PyObject_RichCompareBool(key, name, Py_EQ);
        Py_DECREF(key);
    }
    /* The extra columns: none named as one of the model's (read by name, a record gives the
     * last column of a name: a mapping of the row would not hold these values). */
    for (Py_ssize_t i = 0; same == 1 && i < extra; i++) {
        PyObject *key = PyIter_Next(iterator);
        if (!key) {
            same = PyErr_Occurred() ? -1 : 0;
            break;
        }
        int found = names ? PySet_Contains(names, key) : PySequence_Contains(order, key);
        Py_DECREF(key);
        same = found < 0 ? -1 : !found;
    }
    Py_DECREF(iterator);
    if (same <= 0) {
        if (same < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    PyObject *values[MAX_ROW_FIELDS];
    PyObject *types = NULL, *result = NULL;
    Py_ssize_t got = 0;
    for (; got < n; got++) {
        values[got] = PySequence_GetItem(row, got);
        if (!values[got])
            goto done;
    }
    /* Filled at once: no Python code runs between its making and its last item. */
    types = PyTuple_New(n);
    if (!types)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++)
        PyTuple_SET_ITEM(types, i, Py_NewRef((PyObject *)Py_TYPE(values[i])));
    int known = PySet_Contains(accepted, types);
    if (known <= 0) {
        if (known == 0)
            result = Py_NewRef(types);
        goto done;
    }
    result = PyDict_New();
    for (Py_ssize_t i = 0; result && i < n; i++) {
        if (PyDict_SetItem(result, PyTuple_GET_ITEM(order, i), values[i]) < 0)
            Py_CLEAR(result);
    }
    for (Py_ssize_t k = 0; result && k < PyTuple_GET_SIZE(enums); k++) {
        PyObject *rule = PyTuple_GET_ITEM(enums, k);
        Py_ssize_t index = PyLong_AsSsize_t(PyTuple_GET_ITEM(rule, 0));
        PyObject *value = index >= 0 && index < n ? values[index] : NULL;
        if (!value) {
            Py_CLEAR(result);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_IndexError, "row_values: an enum's index");
            break;
        }
        if (value == Py_None)
            continue;
        PyObject *member = PyDict_GetItemWithError(PyTuple_GET_ITEM(rule, 2), value);
        if (!member) {
            Py_CLEAR(result);
            if (!PyErr_Occurred())
                result = Py_NewRef(Py_None); /* not one of the enum's values */
            break;
        }
        if (PyDict_SetItem(result, PyTuple_GET_ITEM(rule, 1), member) < 0)
            Py_CLEAR(result);
    }
done:
    for (Py_ssize_t i = 0; i < got; i++)
        Py_DECREF(values[i]);
    Py_XDECREF(types);
    return result;
}

/* plain_json(value, max_depth) -> bool
 *
 * media_store.models.fields._is_plain_json(value, 0) with MAX_JSON_DEPTH given: whether value
 * is JSON the database stores as it is, built of the exact builtin types only (str without NUL
 * or lone surrogate, int within +-(2**63 - 1), finite float, bool, None, dict with such str
 * keys, list, tuple; containers at most max_depth deep). False says only "let the Python walk
 * decide" (a subclass, a problem to name). No Python code runs while it walks: nothing can
 * change the containers under it. */
static int
plain_json_at(PyObject *value, long depth, long max_depth)
{
    if (PyUnicode_CheckExact(value))
        return clean_text(value);
    if (value == Py_None || PyBool_Check(value))
        return 1;
    if (PyLong_CheckExact(value)) {
        int overflow = 0;
        long long n = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (n == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
        return !overflow && n != LLONG_MIN;
    }
    if (PyFloat_CheckExact(value))
        return isfinite(PyFloat_AS_DOUBLE(value));
    if (PyDict_CheckExact(value)) {
        if (depth >= max_depth)
            return 0;
        Py_ssize_t pos = 0;
        PyObject *key, *child;
        while (PyDict_Next(value, &pos, &key, &child)) {
            if (!PyUnicode_CheckExact(key) || !clean_text(key))
                return 0;
            if (!plain_json_at(child, depth + 1, max_depth))
                return 0;
        }
        return 1;
    }
    if (PyList_CheckExact(value) || PyTuple_CheckExact(value)) {
        if (depth >= max_depth)
            return 0;
        /* The items of either kind, as one array (nothing here can resize a list). */
        PyObject **items = PySequence_Fast_ITEMS(value);
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(value); i++)
            if (!plain_json_at(items[i], depth + 1, max_depth))
                return 0;
        return 1;
    }
    return 0;
}

static PyObject *
plain_json(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyLong_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "plain_json(value, max_depth)");
        return NULL;
    }
    long max_depth = PyLong_AsLong(args[1]);
    if (max_depth == -1 && PyErr_Occurred())
        return NULL;
    /* Bounded so that the recursion stays far from the C stack's end. */
    if (max_depth < 0 || max_depth > 1000) {
        PyErr_SetString(PyExc_ValueError, "plain_json: max_depth out of 0..1000");
        return NULL;
    }
    return PyBool_FromLong(plain_json_at(args[0], 0, max_depth));
}

/* leading_spaces(texts) -> int
 *
 * How many of the texts after the first begin with whitespace (str.isspace's characters): the
 * importer's test of whether an engine writes its words with their leading space
 * (media_store.cli.importer._joined, which counts them with a regular expression otherwise).
 * None when an item is not a str: the Python path decides. */
static PyObject *
leading_spaces(PyObject *module, PyObject *texts)
{
    if (!PyList_CheckExact(texts))
        Py_RETURN_NONE;
    Py_ssize_t count = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(texts); i++) {
        PyObject *text = PyList_GET_ITEM(texts, i);
        if (!PyUnicode_Check(text))
            Py_RETURN_NONE; /* the Python path says what is wrong */
        if (i > 0 && PyUnicode_GET_LENGTH(text) > 0 &&
            Py_UNICODE_ISSPACE(PyUnicode_READ_CHAR(text, 0)))
            count++;
    }
    return PyLong_FromSsize_t(count);
}

/* Words lo to hi (exclusive) of a segment's concatenated text and its big-endian int32
 * lengths (media_store.words.segments._split); None for lengths that do not fit the text. */
static PyObject *
split_words(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyUnicode_CheckExact(args[0]) || !PyBytes_CheckExact(args[1]))
        Py_RETURN_NONE;
    PyObject *text = args[0];
    Py_ssize_t lo = PyLong_AsSsize_t(args[2]), hi = PyLong_AsSsize_t(args[3]);
    if ((lo == -1 || hi == -1) && PyErr_Occurred()) {
        PyErr_Clear(); /* not an index: the Python path decides */
        Py_RETURN_NONE;
    }
    Py_ssize_t count = PyBytes_GET_SIZE(args[1]) / 4;
    if (lo < 0 || hi < lo || hi > count)
        Py_RETURN_NONE;
    const unsigned char *lengths = (const unsigned char *)PyBytes_AS_STRING(args[1]);
    Py_ssize_t size = PyUnicode_GET_LENGTH(text), at = 0;
    PyObject *out = PyList_New(hi - lo);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < hi; i++) {
        const unsigned char *b = lengths + 4 * i;
        int32_t length = (int32_t)(((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) |
                                   ((uint32_t)b[2] << 8) | (uint32_t)b[3]);
        if (length < 0 || length > size - at) {
            Py_DECREF(out);
            Py_RETURN_NONE;
        }
        if (i >= lo) {
            PyObject *word = PyUnicode_Substring(text, at, at + length);
            if (word == NULL) {
                Py_DECREF(out);
                return NULL;
            }
            PyList_SET_ITEM(out, i - lo, word);
        }
        at += length;
    }
    return out;
}

/* The indexes of the words (a list of str) that are in matched (a set); None for anything
 * else (a word not a str: the Python path decides). A str's hash and equality run no Python
 * code, so the list cannot change under the loop. */
static PyObject *
marked_words(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_CheckExact(args[0]) || !PySet_CheckExact(args[1]))
        Py_RETURN_NONE;
    PyObject *words = args[0], *matched = args[1];
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(words); i++)
        if (!PyUnicode_CheckExact(PyList_GET_ITEM(words, i)))
            Py_RETURN_NONE;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(words); i++) {
        int found = PySet_Contains(matched, PyList_GET_ITEM(words, i));
        if (found < 0) {
            Py_DECREF(out);
            return NULL;
        }
        if (found) {
            PyObject *index = PyLong_FromSsize_t(i);
            if (index == NULL || PyList_Append(out, index) < 0) {
                Py_XDECREF(index);
                Py_DECREF(out);
                return NULL;
            }
            Py_DECREF(index);
        }
    }
    return out;
}

/* An attribute of a decoded word: a new reference, or NULL with the error cleared (a
 * struct without it: the Python path decides). */
static PyObject *
word_attr(PyObject *word, PyObject *name)
{
    PyObject *value = PyObject_GetAttr(word, name);
    if (value == NULL)
        PyErr_Clear();
    return value;
}

/* A whole count of a unit (an int, not a bool) of at most ``limit`` either way, as a double
 * (exact: the caller's limit is within 2**53); 0 when it is not one. */
static int
whole_count(PyObject *value, long long limit, double *out)
{
    if (value == NULL || !PyLong_CheckExact(value))
        return 0;
    int overflow = 0;
    long long count = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow || (count == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    if (count > limit || count < -limit)
        return 0;
    *out = (double)count;
    return 1;
}

/* A protobuf Duration's JSON text (``"12.300s"``: ASCII digits, maybe a point and 1 to 9
 * digits, then "s") as seconds, converted as float() converts the digits; 0 when the text is
 * not one or its value is not finite (units.duration_text and decode._seconds decide). */
static int
duration_text(PyObject *value, double *out)
{
    if (value == NULL || !PyUnicode_CheckExact(value) || !PyUnicode_IS_ASCII(value))
        return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    const char *text = (const char *)PyUnicode_DATA(value);
    Py_ssize_t i = 0, digits = 0, decimals = -1;
    char buffer[64];
    while (i < n && text[i] >= '0' && text[i] <= '9')
        i++, digits++;
    if (i < n && text[i] == '.') {
        i++;
        decimals = 0;
        while (i < n && text[i] >= '0' && text[i] <= '9')
            i++, decimals++;
    }
    if (digits == 0 || decimals == 0 || decimals > 9 || i != n - 1 || text[i] != 's' ||
        n > (Py_ssize_t)sizeof(buffer))
        return 0;
    memcpy(buffer, text, (size_t)(n - 1));
    buffer[n - 1] = '\0';
    double seconds = PyOS_string_to_double(buffer, NULL, NULL);
    if (seconds == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (!isfinite(seconds))
        return 0;
    *out = seconds;
    return 1;
}

/* How a struct holds its times: seconds as floats in ``start`` and ``end`` (names NULL);
 * whole counts of 1/per_second in two named fields, the second an end or a duration; or
 * (per_second 0) protobuf Duration texts in two named fields. */
typedef struct {
    PyObject *start_name, *end_name;
    double per_second;
    int duration;
    long long limit;
} Times;

/* The start and end of ``word`` in seconds as new float objects; 0 when off that shape. */
static int
word_times(PyObject *word, const Times *times, PyObject **start, PyObject **end)
{
    *start = *end = NULL;
    if (times->start_name == NULL) {
        *start = word_attr(word, k_start);
        *end = word_attr(word, k_end);
        if (*start != NULL && *end != NULL && PyFloat_CheckExact(*start) &&
            PyFloat_CheckExact(*end) && isfinite(PyFloat_AS_DOUBLE(*start)) &&
            isfinite(PyFloat_AS_DOUBLE(*end)))
            return 1;
    }
    else {
        PyObject *a = word_attr(word, times->start_name);
        PyObject *b = word_attr(word, times->end_name);
        double first, second;
        int ok;
        if (times->per_second == 0.0) {
            ok = duration_text(a, &first) && duration_text(b, &second);
            if (ok) {
                *start = PyFloat_FromDouble(first);
                *end = PyFloat_FromDouble(second);
            }
        }
        else {
            ok = whole_count(a, times->limit, &first) && whole_count(b, times->limit, &second);
            if (ok) {
                /* A sum of two counts within 2**52 is exact; one division, correctly
                 * rounded, as Python divides two ints in that range. */
                *start = PyFloat_FromDouble(first / times->per_second);
                *end = PyFloat_FromDouble((times->duration ? first + second : second) /
                                          times->per_second);
            }
        }
        Py_XDECREF(a);
        Py_XDECREF(b);
        if (ok) {
            if (*start != NULL && *end != NULL)
                return 1;
            PyErr_Clear();
        }
    }
    Py_CLEAR(*start);
    Py_CLEAR(*end);
    return 0;
}

/* media_store.asr.decode._word_columns (and the adapters' whole-unit forms) of decoded word
 * structs, in one pass: (texts, starts, ends, confidences, speakers), or None for words off
 * the plain shape (a text not a str, a time not a float or past 1e300, a count out of range,
 * a confidence outside [0, 1], a speaker neither str nor int): the Python original then
 * decides. Arguments: the words (a list), the text's attribute name or the texts (a list as
 * long as the words), the confidence's attribute name, the speaker's attribute name or None,
 * msgspec.UNSET (an absent field), and the times: None (floats in start and end) or
 * (start name, end or duration name, units a second, whether a duration, largest count),
 * units a second 0 for protobuf Duration texts. */
static PyObject *
struct_columns(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 || !PyList_CheckExact(args[0]) || !PyUnicode_CheckExact(args[2]) ||
        !(args[3] == Py_None || PyUnicode_CheckExact(args[3])))
        Py_RETURN_NONE;
    PyObject *words = args[0], *text = args[1], *confidence = args[2], *speaker = args[3];
    PyObject *unset = args[4];
    Times times = {NULL, NULL, 1.0, 0, 0};
    if (args[5] != Py_None) {
        long long per_second;
        int duration;
        if (!PyArg_ParseTuple(args[5], "UULpL", &times.start_name, &times.end_name,
                              &per_second, &duration, &times.limit)) {
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        if (per_second < 0 || times.limit < 0 || times.limit > (1LL << 52))
            Py_RETURN_NONE;
        times.per_second = (double)per_second;
        times.duration = duration;
    }
    Py_ssize_t n = PyList_GET_SIZE(words);
    int given = PyList_CheckExact(text);
    if (given ? PyList_GET_SIZE(text) != n : !PyUnicode_CheckExact(text))
        Py_RETURN_NONE;
    PyObject *texts = given ? Py_NewRef(text) : list_of_none(n);
    PyObject *starts = list_of_none(n), *ends = list_of_none(n);
    PyObject *confidences = list_of_none(n);
    PyObject *speakers = speaker == Py_None ? NULL : list_of_none(n);
    PyObject *result = NULL;
    int any_speaker = 0;
    /* The Python original tests sum(starts) + sum(ends) for a finite value, and sum() of
     * floats is compensated from Python 3.12: a time past 1e300 seconds, where the two sums
     * could differ, is left to it; below, both are finite. */
    const double huge = 1e300;
    if (texts == NULL || starts == NULL || ends == NULL || confidences == NULL ||
        (speaker != Py_None && speakers == NULL))
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        /* An attribute may run Python code (a property): the list is checked each time. */
        if (i >= PyList_GET_SIZE(words) || (given && i >= PyList_GET_SIZE(text)))
            goto plain_not;
        PyObject *word = Py_NewRef(PyList_GET_ITEM(words, i));
        PyObject *value = given ? Py_NewRef(PyList_GET_ITEM(text, i)) : word_attr(word, text);
        if (value == NULL || !PyUnicode_CheckExact(value)) {
            Py_XDECREF(value);
            Py_DECREF(word);
            goto plain_not;
        }
        if (!given)
            list_put(texts, i, value);
        else
            Py_DECREF(value);
        PyObject *start, *end;
        if (!word_times(word, &times, &start, &end)) {
            Py_DECREF(word);
            goto plain_not;
        }
        if (fabs(PyFloat_AS_DOUBLE(start)) > huge || fabs(PyFloat_AS_DOUBLE(end)) > huge) {
            Py_DECREF(start);
            Py_DECREF(end);
            Py_DECREF(word);
            goto plain_not;
        }
        list_put(starts, i, start);
        list_put(ends, i, end);
        value = word_attr(word, confidence);
        if (value == NULL || !(value == Py_None || value == unset || PyFloat_CheckExact(value))) {
            Py_XDECREF(value);
            Py_DECREF(word);
            goto plain_not;
        }
        if (PyFloat_CheckExact(value)) {
            double c = PyFloat_AS_DOUBLE(value);
            if (!(c >= 0.0 && c <= 1.0)) { /* NaN fails too */
                Py_DECREF(value);
                Py_DECREF(word);
                goto plain_not;
            }
            list_put(confidences, i, value);
        }
        else {
            Py_DECREF(value); /* None or UNSET: the slot's None stays */
        }
        if (speakers != NULL) {
            value = word_attr(word, speaker);
            if (value == NULL) {
                Py_DECREF(word);
                goto plain_not;
            }
            if (value == Py_None || value == unset) {
                Py_DECREF(value);
            }
            else if (PyUnicode_CheckExact(value)) {
                any_speaker = 1;
                list_put(speakers, i, value);
            }
            else if (PyLong_CheckExact(value)) {
                PyObject *label = PyObject_Str(value);
                Py_DECREF(value);
                if (label == NULL) {
                    Py_DECREF(word);
                    goto done;
                }
                any_speaker = 1;
                list_put(speakers, i, label);
            }
            else {
                Py_DECREF(value);
                Py_DECREF(word);
                goto plain_not;
            }
        }
        Py_DECREF(word);
    }
    if (PyList_GET_SIZE(words) != n)
        goto plain_not;
    if (speakers == NULL || !any_speaker) {
        Py_XDECREF(speakers);
        speakers = Py_NewRef(Py_None);
    }
    result = PyTuple_Pack(5, texts, starts, ends, confidences, speakers);
    goto done;
plain_not:
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(texts);
    Py_XDECREF(starts);
    Py_XDECREF(ends);
    Py_XDECREF(confidences);
    Py_XDECREF(speakers);
    return result;
}

/* media_store.asr.repair.sound of two lists of floats: True when no word ends before it
 * starts and the starts are in order; None for anything else (the Python original decides). */
static PyObject *
sound_times(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_CheckExact(args[0]) || !PyList_CheckExact(args[1]) ||
        PyList_GET_SIZE(args[0]) != PyList_GET_SIZE(args[1]))
        Py_RETURN_NONE;
    PyObject *starts = args[0], *ends = args[1];
    Py_ssize_t n = PyList_GET_SIZE(starts);
    for (Py_ssize_t i = 0; i < n; i++)
        if (!PyFloat_CheckExact(PyList_GET_ITEM(starts, i)) ||
            !PyFloat_CheckExact(PyList_GET_ITEM(ends, i)))
            Py_RETURN_NONE;
    double previous = 0.0;
    for (Py_ssize_t i = 0; i < n; i++) {
        double start = PyFloat_AS_DOUBLE(PyList_GET_ITEM(starts, i));
        double end = PyFloat_AS_DOUBLE(PyList_GET_ITEM(ends, i));
        if (!(start <= end) || (i > 0 && !(previous <= start)))
            Py_RETURN_FALSE;
        previous = start;
    }
    Py_RETURN_TRUE;
}

/* --- models and ids (media_store.models.rows._RowPlan.make, repositories.enqueue) --------- */

static PyObject *k_dict, *k_fields_set, *k_extra, *k_private, *k_int, *k_is_safe;

/* A new instance of ``type`` by its tp_new (no __init__), as ``type.__new__(type)``. */
static PyObject *
bare_instance(PyObject *type)
{
    PyObject *empty = PyTuple_New(0);
    if (!empty)
        return NULL;
    PyObject *made = ((PyTypeObject *)type)->tp_new((PyTypeObject *)type, empty, NULL);
    Py_DECREF(empty);
    return made;
}

/* make_model(model, values, fields_set) -> an instance of model
 *
 * _RowPlan.make after the plan's first model (validated, its state checked): an instance of
 * ``model`` made by its __new__ alone whose __dict__ is ``values`` (taken as is),
 * __pydantic_fields_set__ a new set of ``fields_set``, and __pydantic_extra__ and
 * __pydantic_private__ None: the four attributes the Python original sets by
 * object.__setattr__, set here as it sets them (PyObject_GenericSetAttr). */
static PyObject *
make_model(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyType_Check(args[0]) || !PyDict_CheckExact(args[1]) ||
        !PyAnySet_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "make_model(model, values, fields_set)");
        return NULL;
    }
    PyObject *made = bare_instance(args[0]);
    if (!made)
        return NULL;
    PyObject *fields = PySet_New(args[2]);
    if (!fields || PyObject_GenericSetAttr(made, k_dict, args[1]) < 0 ||
        PyObject_GenericSetAttr(made, k_fields_set, fields) < 0 ||
        PyObject_GenericSetAttr(made, k_extra, Py_None) < 0 ||
        PyObject_GenericSetAttr(made, k_private, Py_None) < 0) {
        Py_XDECREF(fields);
        Py_DECREF(made);
        return NULL;
    }
    Py_DECREF(fields);
    return made;
}

/* time_ordered_ids(count, milliseconds, start, noise, uuid_type, is_safe) -> list
 *
 * media_store.repositories.enqueue.time_ordered_ids once its Python part chose the
 * millisecond, the counter's start and the random bytes (``noise``: 8 a id): ``count`` ids,
 * each (milliseconds << 80) | version 7 | (counter >> 4) << 64 | variant | (counter & 0xF)
 * << 58 | the id's 8 bytes (big-endian) >> 6, counter = start + index; each an instance of
 * ``uuid_type`` whose slots ``int`` and ``is_safe`` are set as object.__setattr__ sets them
 * (uuid.UUID's own __init__ does so). */
static PyObject *
time_ordered_ids(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 || !PyBytes_CheckExact(args[3]) || !PyType_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError,
                        "time_ordered_ids(count, milliseconds, start, noise, uuid_type, is_safe)");
        return NULL;
    }
    Py_ssize_t count = PyLong_AsSsize_t(args[0]);
    unsigned long long milliseconds = PyLong_AsUnsignedLongLong(args[1]);
    Py_ssize_t start = PyLong_AsSsize_t(args[2]);
    if (PyErr_Occurred())
        return NULL;
    if (count < 0 || start < 0 || milliseconds >= (1ULL << 48) ||
        (unsigned long long)start + (unsigned long long)count > (1ULL << 16) ||
        PyBytes_GET_SIZE(args[3]) != 8 * count) {
        PyErr_SetString(PyExc_ValueError, "time_ordered_ids: arguments out of range");
        return NULL;
    }
    const unsigned char *noise = (const unsigned char *)PyBytes_AS_STRING(args[3]);
    PyObject *ids = PyList_New(count), *shift = PyLong_FromLong(64);
    if (!ids || !shift)
        goto fail;
    for (Py_ssize_t index = 0; index < count; index++) {
        unsigned long long counter = (unsigned long long)(start + index), random = 0;
        for (int b = 0; b < 8; b++)
            random = (random << 8) | noise[8 * index + b];
        unsigned long long high = (milliseconds << 16) | (7ULL << 12) | (counter >> 4);
        unsigned long long low = (2ULL << 62) | ((counter & 0xF) << 58) | (random >> 6);
        PyObject *top = PyLong_FromUnsignedLongLong(high);
        PyObject *shifted = top ? PyNumber_Lshift(top, shift) : NULL;
        PyObject *bottom = shifted ? PyLong_FromUnsignedLongLong(low) : NULL;
        PyObject *value = bottom ? PyNumber_Or(shifted, bottom) : NULL;
        Py_XDECREF(top);
        Py_XDECREF(shifted);
        Py_XDECREF(bottom);
        PyObject *made = value ? bare_instance(args[4]) : NULL;
        if (!made || PyObject_GenericSetAttr(made, k_int, value) < 0 ||
            PyObject_GenericSetAttr(made, k_is_safe, args[5]) < 0) {
            Py_XDECREF(value);
            Py_XDECREF(made);
            goto fail;
        }
        Py_DECREF(value);
        PyList_SET_ITEM(ids, index, made);
    }
    Py_DECREF(shift);
    return ids;
fail:
    Py_XDECREF(ids);
    Py_XDECREF(shift);
    return NULL;
}

static PyMethodDef methods[] = {
    {"columns", columns, METH_O,
     "columns(items) -> the checked columns of word dicts and their packed forms, or None"},
    {"check_columns", (PyCFunction)(void (*)(void))check_columns, METH_FASTCALL,
     "check_columns(words, starts, ends, confidences, speakers) -> as columns(), or None"},
    {"leading_spaces", leading_spaces, METH_O,
     "leading_spaces(texts) -> how many texts after the first begin with whitespace"},
    {"plain_json", (PyCFunction)(void (*)(void))plain_json, METH_FASTCALL,
     "plain_json(value, max_depth) -> whether value is plain JSON the database stores as is"},
    {"row_values", (PyCFunction)(void (*)(void))row_values, METH_FASTCALL,
     "row_values(row, order, accepted, enums[, extra[, names]]) -> the row's values by name, "
     "or None"},
    {"unknown_words", (PyCFunction)(void (*)(void))unknown_words, METH_FASTCALL,
     "unknown_words(words, known) -> the words not in known, each once, in order"},
    {"segment_documents", (PyCFunction)(void (*)(void))segment_documents, METH_FASTCALL,
     "segment_documents(words, segment_words, analyses) -> each segment's tsvector literal"},
    {"split_words", (PyCFunction)(void (*)(void))split_words, METH_FASTCALL,
     "split_words(text, lengths, lo, hi) -> words lo to hi of a segment, or None"},
    {"marked_words", (PyCFunction)(void (*)(void))marked_words, METH_FASTCALL,
     "marked_words(words, matched) -> the indexes of the words in matched"},
    {"struct_columns", (PyCFunction)(void (*)(void))struct_columns, METH_FASTCALL,
     "struct_columns(words, text, confidence, speaker, unset, times) -> the word columns, or None"},
    {"sound_times", (PyCFunction)(void (*)(void))sound_times, METH_FASTCALL,
     "sound_times(starts, ends) -> whether the times need no repair, or None"},
    {"make_model", (PyCFunction)(void (*)(void))make_model, METH_FASTCALL,
     "make_model(model, values, fields_set) -> the model holding values, not validated"},
    {"time_ordered_ids", (PyCFunction)(void (*)(void))time_ordered_ids, METH_FASTCALL,
     "time_ordered_ids(count, milliseconds, start, noise, uuid_type, is_safe) -> UUIDv7s"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_speedups",
    .m_doc = "Compiled paths of the word writers.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    k_word = PyUnicode_InternFromString("word");
    k_start = PyUnicode_InternFromString("start");
    k_end = PyUnicode_InternFromString("end");
    k_confidence = PyUnicode_InternFromString("confidence");
    k_speaker = PyUnicode_InternFromString("speaker");
    k_aliases[0] = PyUnicode_InternFromString("probability");
    k_aliases[1] = PyUnicode_InternFromString("score");
    k_aliases[2] = PyUnicode_InternFromString("conf");
    k_dict = PyUnicode_InternFromString("__dict__");
    k_fields_set = PyUnicode_InternFromString("__pydantic_fields_set__");
    k_extra = PyUnicode_InternFromString("__pydantic_extra__");
    k_private = PyUnicode_InternFromString("__pydantic_private__");
    k_int = PyUnicode_InternFromString("int");
    k_is_safe = PyUnicode_InternFromString("is_safe");
    if (!k_word || !k_start || !k_end || !k_confidence || !k_speaker || !k_aliases[0] ||
        !k_aliases[1] || !k_aliases[2] || !k_dict || !k_fields_set || !k_extra || !k_private ||
        !k_int || !k_is_safe)
        return NULL;
    return PyModule_Create(&module);
}
