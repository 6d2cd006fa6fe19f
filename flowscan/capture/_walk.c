/* Record walking for the capture readers: the one loop of the hot path that numpy cannot do,
 * because where a record begins depends on the length of the record before it.
 *
 * Each function mirrors, step for step, the pure-Python loop it replaces in pcap.py or
 * pcapng.py (those loops stay the reference and the fallback where this module is not
 * built); tests/test_walk.py holds the two to the same answers. Nothing here allocates
 * per record or keeps state: the caller passes the buffer, where to start and an int64
 * array to fill, and gets back how many starts it wrote and where the walk stopped.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* pcapng block type of an Enhanced Packet Block (draft-ietf-opsawg-pcapng section 4.3). */
#define EPB_TYPE 0x00000006u
/* Larger than any real link's frame; records.MAX_RECORD. */
#define MAX_RECORD (1u << 24)

static inline uint32_t
read_u32(const unsigned char *p, int big_endian)
{
    if (big_endian)
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}

/* One walk's inputs: the capture bytes (read-only), of which it reads the first n from off
 * on, in which byte order, and the int64 array it writes record starts to. */
typedef struct {
    Py_buffer buf, out;
    const unsigned char *data;
    int64_t *starts;
    Py_ssize_t off, n, room;
    int big_endian;
} Walk;

/* Parses (buf, off, n, big_endian, out[, header]) and checks both buffers once. */
static int
walk_open(PyObject *args, Walk *w, Py_ssize_t *header)
{
    PyObject *buf_obj, *out_obj;
    if (!PyArg_ParseTuple(args, "OnnpO|n", &buf_obj, &w->off, &w->n, &w->big_endian,
                          &out_obj, header))
        return -1;
    if (PyObject_GetBuffer(buf_obj, &w->buf, PyBUF_SIMPLE) < 0)
        return -1;
    if (PyObject_GetBuffer(out_obj, &w->out, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&w->buf);
        return -1;
    }
    const char *problem = NULL;
    if (w->out.len % (Py_ssize_t)sizeof(int64_t))
        problem = "out must hold int64 values";
    else if (w->off < 0 || w->n > w->buf.len)
        problem = "offsets out of range";
    if (problem != NULL) {
        PyBuffer_Release(&w->buf);
        PyBuffer_Release(&w->out);
        PyErr_SetString(PyExc_ValueError, problem);
        return -1;
    }
    w->data = (const unsigned char *)w->buf.buf;
    w->starts = (int64_t *)w->out.buf;
    w->room = w->out.len / (Py_ssize_t)sizeof(int64_t);
    return 0;
}

static void
walk_close(Walk *w)
{
    PyBuffer_Release(&w->buf);
    PyBuffer_Release(&w->out);
}

/* walk_pcap(buf, off, n, big_endian, out, header) -> (count, off)
 *
 * Classic pcap (draft-ietf-opsawg-pcap section 5): each record is a header of `header`
 * bytes (16, or 24 for the "modified" format) whose bytes 8..11 hold the captured length,
 * then that many bytes. Writes the offset of every record that lies wholly within the
 * first n bytes of buf, starting at off, and returns where the first record that does not
 * begins. A record header cut by n counts as not lying within. */
static PyObject *
walk_pcap(PyObject *Py_UNUSED(self), PyObject *args)
{
    Walk w;
    Py_ssize_t header = 0;
    if (walk_open(args, &w, &header) < 0)
        return NULL;
    if (header < 12) {
        walk_close(&w);
        PyErr_SetString(PyExc_ValueError, "a record header holds at least 12 bytes");
        return NULL;
    }
    Py_ssize_t count = 0, off = w.off;
    Py_BEGIN_ALLOW_THREADS
    while (count < w.room && off + header <= w.n) {
        Py_ssize_t end = off + header + (Py_ssize_t)read_u32(w.data + off + 8, w.big_endian);
        if (end > w.n)
            break;
        w.starts[count++] = off;
        off = end;
    }
    Py_END_ALLOW_THREADS
    walk_close(&w);
    return Py_BuildValue("nn", count, off);
}

/* walk_epb(buf, off, n, big_endian, out) -> (count, off, bad_length)
 *
 * pcapng (draft-ietf-opsawg-pcapng section 3.1): a run of Enhanced Packet Blocks, each a
 * block type, a total length, a body and the length again. Writes the offset of each block
 * of the run that lies wholly within the first n bytes; stops at the first block of another
 * type, at a block cut by n, or at a block whose total length cannot be right (under 12,
 * not a multiple of 4, or absurd): then bad_length is that length, else -1. */
static PyObject *
walk_epb(PyObject *Py_UNUSED(self), PyObject *args)
{
    Walk w;
    Py_ssize_t unused = 0;
    if (walk_open(args, &w, &unused) < 0)
        return NULL;
    Py_ssize_t count = 0, off = w.off;
    long long bad = -1;
    Py_BEGIN_ALLOW_THREADS
    while (count < w.room && off + 12 <= w.n) {
        uint32_t btype = read_u32(w.data + off, w.big_endian);
        uint32_t blen = read_u32(w.data + off + 4, w.big_endian);
        if (btype != EPB_TYPE)
            break;
        if (blen < 12 || blen % 4 || blen > MAX_RECORD) {
            bad = blen;
            break;
        }
        if (off + (Py_ssize_t)blen > w.n)
            break;
        w.starts[count++] = off;
        off += blen;
    }
    Py_END_ALLOW_THREADS
    walk_close(&w);
    return Py_BuildValue("nnL", count, off, bad);
}

static PyMethodDef walk_methods[] = {
    {"walk_pcap", walk_pcap, METH_VARARGS, "Record starts of a classic pcap buffer."},
    {"walk_epb", walk_epb, METH_VARARGS, "Block starts of a run of pcapng EPBs."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef walk_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "flowscan.capture._walk",
    .m_doc = "Record walking for the capture readers (compiled).",
    .m_size = -1,
    .m_methods = walk_methods,
};

PyMODINIT_FUNC
PyInit__walk(void)
{
    return PyModule_Create(&walk_module);
}
