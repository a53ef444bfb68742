/* sockwise._speedups: the policy's setsockopt calls in C (optional; see harden/_stdlib.py).
 *
 * The connect replacement applies a policy's options before every connect of the process. In
 * Python each option is a method call (~0.45 us here, of which ~0.35 us is the system call);
 * here the calls are one C call that reads the descriptor once and makes the system calls
 * back to back. Behaviour is that of calling ``_socket.socket.setsockopt(sock, level, optname,
 * value)`` for each option in order: the first failure raises OSError (errno set) and the
 * options after it are not set; an object that is not a ``_socket.socket`` raises TypeError.
 *
 * When the extension cannot be built, sockwise falls back to the Python version (same
 * behaviour, ~0.1 us more per option).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <sys/socket.h>

/* The options one applier sets: ``n`` (level, optname, value) triples. */
typedef struct {
    PyObject_HEAD
    Py_ssize_t n;
    int *opts; /* 3 * n ints */
    PyObject *repr; /* the options as a Python list, for repr() */
} OptionsObject;

static PyObject *fileno_descr; /* _socket.socket.fileno, unbound */

static void
options_dealloc(OptionsObject *self)
{
    PyMem_Free(self->opts);
    Py_XDECREF(self->repr);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject OptionsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sockwise._speedups.Options",
    .tp_basicsize = sizeof(OptionsObject),
    .tp_dealloc = (destructor)options_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The options of one applier (internal).",
};

static PyObject *
apply(PyObject *holder, PyObject *sock)
{
    OptionsObject *self = (OptionsObject *)holder;
    PyObject *fd_obj = PyObject_Vectorcall(fileno_descr, &sock, 1, NULL);
    if (fd_obj == NULL) {
        return NULL; /* not a _socket.socket: TypeError, as setsockopt would raise */
    }
    long fd = PyLong_AsLong(fd_obj);
    Py_DECREF(fd_obj);
    if (fd == -1 && PyErr_Occurred()) {
        return NULL;
    }
    /* A closed socket's fileno() is -1: setsockopt(-1, ...) fails with EBADF, as in Python. */
    const int *o = self->opts;
    for (Py_ssize_t i = 0; i < self->n; i++, o += 3) {
        int value = o[2];
        if (setsockopt((int)fd, o[0], o[1], &value, sizeof value) != 0) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
    }
    Py_RETURN_NONE;
}

static PyMethodDef apply_def = {
    "apply", apply, METH_O,
    "apply(sock)\n--\n\nSet the applier's options on *sock* (a ``_socket.socket``), in order."};

static int
as_c_int(PyObject *item, int *out)
{
    if (!PyLong_CheckExact(item)) {
        PyErr_Format(PyExc_TypeError, "options: expected int, got %R", item);
        return -1;
    }
    int overflow;
    long v = PyLong_AsLongAndOverflow(item, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow || v < INT_MIN || v > INT_MAX) {
        PyErr_Format(PyExc_OverflowError, "options: %R does not fit a C int", item);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static PyObject *
applier(PyObject *module, PyObject *options)
{
    PyObject *seq = PySequence_Fast(options, "options: expected a sequence of (int, int, int)");
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    OptionsObject *holder = PyObject_New(OptionsObject, &OptionsType);
    if (holder == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    holder->n = n;
    holder->repr = NULL;
    holder->opts = PyMem_Calloc(n > 0 ? (size_t)n * 3 : 1, sizeof(int));
    if (holder->opts == NULL) {
        Py_DECREF(seq);
        Py_DECREF(holder);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *option = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_CheckExact(option) || PyTuple_GET_SIZE(option) != 3) {
            PyErr_Format(PyExc_TypeError, "options: expected (int, int, int) tuples, got %R",
                         options);
            goto fail;
        }
        for (int k = 0; k < 3; k++) {
            if (as_c_int(PyTuple_GET_ITEM(option, k), &holder->opts[3 * i + k]) < 0) {
                goto fail;
            }
        }
    }
    holder->repr = PySequence_List(seq);
    Py_DECREF(seq);
    if (holder->repr == NULL) {
        Py_DECREF(holder);
        return NULL;
    }
    PyObject *func = PyCFunction_NewEx(&apply_def, (PyObject *)holder, NULL);
    Py_DECREF(holder);
    return func;
fail:
    Py_DECREF(seq);
    Py_DECREF(holder);
    return NULL;
}

static PyObject *
options_of(PyObject *module, PyObject *func)
{
    if (!PyCFunction_Check(func) || PyCFunction_GET_FUNCTION(func) != (PyCFunction)apply) {
        PyErr_Format(PyExc_TypeError, "expected an applier, got %R", func);
        return NULL;
    }
    OptionsObject *holder = (OptionsObject *)PyCFunction_GET_SELF(func);
    return Py_NewRef(holder->repr);
}

static PyMethodDef module_methods[] = {
    {"applier", applier, METH_O,
     "applier(options)\n--\n\n"
     "A function setting each ``(level, optname, value)`` of *options* on a socket, in order."},
    {"options_of", options_of, METH_O,
     "options_of(apply)\n--\n\nThe options an applier sets, as a list of tuples."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "sockwise._speedups",
    "The policy's setsockopt calls in C (optional; sockwise falls back to Python).",
    -1,
    module_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (PyType_Ready(&OptionsType) < 0) {
        return NULL;
    }
    PyObject *sockmod = PyImport_ImportModule("_socket");
    if (sockmod == NULL) {
        return NULL;
    }
    PyObject *socktype = PyObject_GetAttrString(sockmod, "socket");
    Py_DECREF(sockmod);
    if (socktype == NULL) {
        return NULL;
    }
    fileno_descr = PyObject_GetAttrString(socktype, "fileno");
    Py_DECREF(socktype);
    if (fileno_descr == NULL) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&module_def);
#ifdef Py_GIL_DISABLED
    /* Free-threaded builds: no state changes after this function (the appliers' options are
     * immutable), so the module does not need the GIL. */
    if (module != NULL && PyUnstable_Module_SetGIL(module, Py_MOD_GIL_NOT_USED) < 0) {
        Py_DECREF(module);
        return NULL;
    }
#endif
    return module;
}
