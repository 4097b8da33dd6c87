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

/* columns(items) -> (words, starts, ends, confidences, speakers, lengths, starts_be, ends_be,
 * confidences_be) | None
 *
 * The five columns of ``items`` (a list of dicts) checked by the rules of
 * media_store.words.timestamps, read in one pass, with the packed forms the segments store
 * (media_store.words.segments: lengths as big-endian int4, the numbers as big-endian float8,
 * NaN for no confidence). ``speakers`` is None when no word has one. None: some item is off
 * the common path, and the Python path decides. */
static PyObject *
columns(PyObject *module, PyObject *items)
{
    if (!PyList_CheckExact(items))
        Py_RETURN_NONE;
    Py_ssize_t n = PyList_GET_SIZE(items);
    PyObject *words = PyList_New(n), *starts = PyList_New(n), *ends = PyList_New(n);
    PyObject *confidences = PyList_New(n), *speakers = PyList_New(n);
    PyObject *lengths = PyBytes_FromStringAndSize(NULL, 4 * n);
    PyObject *starts_be = PyBytes_FromStringAndSize(NULL, 8 * n);
    PyObject *ends_be = PyBytes_FromStringAndSize(NULL, 8 * n);
    PyObject *confidences_be = PyBytes_FromStringAndSize(NULL, 8 * n);
    PyObject *result = NULL;
    if (!words || !starts || !ends || !confidences || !speakers || !lengths || !starts_be ||
        !ends_be || !confidences_be)
        goto done;
    char *lengths_at = PyBytes_AS_STRING(lengths), *starts_at = PyBytes_AS_STRING(starts_be);
    char *ends_at = PyBytes_AS_STRING(ends_be);
    char *confidences_at = PyBytes_AS_STRING(confidences_be);
    double previous = 0.0;
    int any_speaker = 0;
    Py_ssize_t filled = 0; /* items set in every list so far (the rest are NULL) */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        if (!PyDict_CheckExact(item))
            goto fallback;
        PyObject *word = PyDict_GetItemWithError(item, k_word);
        PyObject *start = word ? PyDict_GetItemWithError(item, k_start) : NULL;
        PyObject *end = start ? PyDict_GetItemWithError(item, k_end) : NULL;
        if (!end) {
            if (PyErr_Occurred())
                goto done;
            goto fallback;
        }
        PyObject *confidence = PyDict_GetItemWithError(item, k_confidence);
        if (!confidence && PyErr_Occurred())
            goto done;
        PyObject *speaker = PyDict_GetItemWithError(item, k_speaker);
        if (!speaker && PyErr_Occurred())
            goto done;
        double s, e, c = NAN;
        if (!PyUnicode_CheckExact(word) || !clean_text(word))
            goto fallback;
        if (!finite_number(start, &s) || !finite_number(end, &e))
            goto fallback;
        if (s < 0 || e < s || s < previous)
            goto fallback;
        if (confidence == NULL || confidence == Py_None) {
            /* No confidence: one under another engine's name is refused by the Python path. */
            for (int a = 0; a < 3; a++) {
                int has = PyDict_Contains(item, k_aliases[a]);
                if (has < 0)
                    goto done;
                if (has)
                    goto fallback;
            }
            confidence = Py_None;
        }
        else if (!finite_number(confidence, &c) || c < 0 || c > 1) {
            goto fallback;
        }
        if (speaker == NULL || speaker == Py_None) {
            speaker = Py_None;
        }
        else {
            if (!PyUnicode_CheckExact(speaker) ||
                PyUnicode_GET_LENGTH(speaker) > MAX_SPEAKER_LENGTH || !clean_text(speaker))
                goto fallback;
            any_speaker = 1;
        }
        previous = s;
        PyObject *start_f = as_float(start, s), *end_f = as_float(end, e);
        PyObject *confidence_f = confidence == Py_None ? Py_NewRef(Py_None)
                                                       : as_float(confidence, c);
        if (!start_f || !end_f || !confidence_f) {
            Py_XDECREF(start_f);
            Py_XDECREF(end_f);
            Py_XDECREF(confidence_f);
            goto done;
        }
        PyList_SET_ITEM(words, i, Py_NewRef(word));
        PyList_SET_ITEM(starts, i, start_f);
        PyList_SET_ITEM(ends, i, end_f);
        PyList_SET_ITEM(confidences, i, confidence_f);
        PyList_SET_ITEM(speakers, i, Py_NewRef(speaker));
        filled = i + 1;
        Py_ssize_t length = PyUnicode_GET_LENGTH(word);
        if (length > INT32_MAX)
            goto fallback;
        pack_int4(lengths_at + 4 * i, (uint32_t)length);
        pack_double(starts_at + 8 * i, s);
        pack_double(ends_at + 8 * i, e);
        pack_double(confidences_at + 8 * i, c);
    }
    result = Py_BuildValue(
        "(OOOOOOOOO)", words, starts, ends, confidences, any_speaker ? speakers : Py_None,
        lengths, starts_be, ends_be, confidences_be);
    goto done;
fallback:
    /* The lists' unfilled slots are NULL, which list_dealloc skips. */
    (void)filled;
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(words);
    Py_XDECREF(starts);
    Py_XDECREF(ends);
    Py_XDECREF(confidences);
    Py_XDECREF(speakers);
    Py_XDECREF(lengths);
    Py_XDECREF(starts_be);
    Py_XDECREF(ends_be);
    Py_XDECREF(confidences_be);
    return result;
}

static PyMethodDef methods[] = {
    {"columns", columns, METH_O,
     "columns(items) -> the checked columns of word dicts and their packed forms, or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_speedups", "Compiled paths of the word writers.", -1, methods,
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
    if (!k_word || !k_start || !k_end || !k_confidence || !k_speaker || !k_aliases[0] ||
        !k_aliases[1] || !k_aliases[2])
        return NULL;
    return PyModule_Create(&module);
}
