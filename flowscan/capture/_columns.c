/* Columnar decoding of a batch in one pass per packet: the compiled twin of
 * flowscan/capture/columns.py (decode_columns and _group), which stays the reference and
 * the fallback where this module is not built; tests/test_columns.py holds the two to the
 * same columns on real captures.
 *
 * numpy decodes a batch as some forty whole-array steps, each a pass over every packet and
 * a temporary array; on a long call (few flows, many packets) those passes are most of the
 * time spent. Here each packet is read once, and packets are grouped into flows with a hash
 * table instead of a sort. The answers are columns.py's: the same fast packets, offsets and
 * flow groups, the groups numbered as numpy numbers them (by the key's hash, ascending).
 *
 * Nothing is read outside a packet's captured bytes: every fast packet's reads lie within
 * them (columns.py reads a little further for packets it then leaves to the per-packet
 * decoder, which changes nothing of the answer), so a read that would leave them makes the
 * packet not fast here.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Link types (decode.LINKTYPE_*), ethertypes, protocols and tunnel ports (decode.py). */
#define LINK_NULL 0
#define LINK_ETHERNET 1
#define LINK_RAW_BSD 12
#define LINK_RAW_OPENBSD 14
#define LINK_RAW 101
#define LINK_LOOP 108
#define LINK_SLL 113
#define LINK_IPV4 228
#define LINK_IPV6 229
#define LINK_SLL2 276
#define ETH_IPV4 0x0800
#define ETH_IPV6 0x86DD
#define PROTO_TCP 6
#define PROTO_UDP 17
#define UDP_GTPU 2152  /* 3GPP TS 29.281 */
#define UDP_VXLAN 4789 /* RFC 7348 */

static inline unsigned
u16be(const unsigned char *p)
{
    return ((unsigned)p[0] << 8) | p[1];
}

static inline uint64_t
u32be(const unsigned char *p)
{
    return ((uint64_t)p[0] << 24) | ((uint64_t)p[1] << 16) | ((uint64_t)p[2] << 8) | p[3];
}

static inline uint64_t
u64be(const unsigned char *p)
{
    return (u32be(p) << 32) | u32be(p + 4);
}

static inline int
is_vlan(unsigned t)
{
    return t == 0x8100 || t == 0x88A8 || t == 0x9100; /* decode.ETH_VLAN */
}

/* columns._link_layer for one packet: its network type and IP header offset, or -1 where
 * the link type is not one read here or the link header is not all captured. */
static int64_t
link_layer(const unsigned char *d, int64_t off, int64_t end, int64_t link, unsigned *et)
{
    switch (link) {
    case LINK_ETHERNET: {
        if (off + 14 > end)
            return -1;
        unsigned t = u16be(d + off + 12);
        int64_t lo = off + 14;
        for (int tags = 0; tags < 2 && is_vlan(t); tags++) { /* 802.1Q / 802.1ad */
            if (lo + 4 > end)
                return -1;
            t = u16be(d + lo + 2);
            lo += 4;
        }
        *et = t;
        return lo;
    }
    case LINK_SLL:
        if (off + 16 > end)
            return -1;
        *et = u16be(d + off + 14);
        return off + 16;
    case LINK_SLL2:
        if (off + 20 > end)
            return -1;
        *et = u16be(d + off);
        return off + 20;
    case LINK_RAW:
    case LINK_RAW_BSD:
    case LINK_RAW_OPENBSD: {
        if (off + 1 > end)
            return -1;
        unsigned version = d[off] >> 4;
        *et = version == 4 ? ETH_IPV4 : version == 6 ? ETH_IPV6 : 0;
        return off;
    }
    case LINK_IPV4:
        *et = ETH_IPV4;
        return off;
    case LINK_IPV6:
        *et = ETH_IPV6;
        return off;
    case LINK_NULL:
    case LINK_LOOP: {
        if (off + 4 > end)
            return -1;
        unsigned family = d[off] | d[off + 3];
        *et = family == 2 ? ETH_IPV4
              : (family == 24 || family == 28 || family == 30) ? ETH_IPV6 : 0;
        return off + 4;
    }
    default:
        return -1;
    }
}

/* The output columns, one int64 array each (is6 as bytes of 0 or 1). */
typedef struct {
    int64_t *idx, *proto, *l3, *l4, *ps, *pe, *sport, *dport;
    char *is6;
} Columns;

/* decode_columns' per-packet tests for packet i; writes its columns at row m and returns
 * 1 if the packet is fast, else 0. */
static int
decode_one(const unsigned char *d, int64_t off, int64_t cap, int64_t link, Py_ssize_t i,
           Columns *c, Py_ssize_t m)
{
    int64_t end = off + cap;
    unsigned et = 0;
    int64_t l3 = link_layer(d, off, end, link, &et);
    if (l3 < 0 || l3 + 1 > end)
        return 0;
    unsigned b0 = d[l3];
    int64_t l4, ip_end;
    unsigned proto;
    int v6 = 0;
    if (et == ETH_IPV4 && b0 >> 4 == 4) { /* RFC 791 section 3.1 */
        int64_t ihl = (int64_t)(b0 & 0x0F) << 2;
        if (ihl < 20 || end < l3 + 20)
            return 0;
        int64_t tot = u16be(d + l3 + 2);
        if ((u16be(d + l3 + 6) & 0x3FFF) != 0 || tot < ihl)
            return 0;
        proto = d[l3 + 9];
        l4 = l3 + ihl;
        ip_end = l3 + tot;
    } else if (et == ETH_IPV6 && b0 >> 4 == 6) { /* RFC 8200 section 3 */
        if (end < l3 + 40)
            return 0;
        int64_t plen = u16be(d + l3 + 4);
        if (plen == 0)
            return 0;
        proto = d[l3 + 6];
        l4 = l3 + 40;
        ip_end = l3 + 40 + plen;
        v6 = 1;
    } else {
        return 0;
    }
    int udp = proto == PROTO_UDP;
    if (!(udp ? end >= l4 + 6 : proto == PROTO_TCP && end >= l4 + 14))
        return 0;
    int64_t sport = u16be(d + l4), dport = u16be(d + l4 + 2), ps, pe;
    if (udp) {
        if (sport == UDP_GTPU || dport == UDP_GTPU || dport == UDP_VXLAN)
            return 0; /* tunnels go to the per-packet decoder */
        int64_t ulen = u16be(d + l4 + 4);
        ps = l4 + 8;
        pe = (ulen >= 8 && l4 + ulen < ip_end) ? l4 + ulen : ip_end;
    } else {
        int64_t doff = (int64_t)(d[l4 + 12] >> 4) << 2;
        if (doff < 20)
            return 0;
        ps = l4 + doff;
        pe = ip_end;
    }
    c->idx[m] = i;
    c->proto[m] = proto;
    c->l3[m] = l3;
    c->l4[m] = l4;
    c->ps[m] = ps;
    c->pe[m] = pe;
    c->sport[m] = sport;
    c->dport[m] = dport;
    c->is6[m] = (char)v6;
    return 1;
}

/* Up to 16 buffers a call holds; all released on every way out. */
typedef struct {
    Py_buffer views[16];
    int count;
} Views;

static void
views_release(Views *v)
{
    for (int k = 0; k < v->count; k++)
        PyBuffer_Release(&v->views[k]);
    v->count = 0;
}

/* The buffer of obj, checked to hold `n` items of `size` bytes (n < 0: any number), or
 * NULL with an exception set. */
static void *
view_of(Views *v, PyObject *obj, int writable, Py_ssize_t size, Py_ssize_t n)
{
    Py_buffer *view = &v->views[v->count];
    int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0)
        return NULL;
    v->count++;
    if (size > 1 && view->len % size) {
        PyErr_SetString(PyExc_ValueError, "an array does not hold 8-byte values");
        return NULL;
    }
    if (n >= 0 && view->len / size < n) {
        PyErr_SetString(PyExc_ValueError, "an array is too short");
        return NULL;
    }
    return view->buf;
}

/* decode(buf, data_off, caplen, link, idx, proto, l3, l4, ps, pe, sport, dport, is6) -> m
 *
 * The fast packets of a batch (columns.py's module docstring says which), in order: for
 * each, its batch index and columns, written to rows 0..m-1 of the output arrays (int64;
 * is6: bool). Each output holds at least len(data_off) rows. */
static PyObject *
decode(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *o[13];
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOOOO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5],
                          &o[6], &o[7], &o[8], &o[9], &o[10], &o[11], &o[12]))
        return NULL;
    Views v = {.count = 0};
    Columns c;
    const unsigned char *d = view_of(&v, o[0], 0, 1, -1);
    const int64_t *off = d ? view_of(&v, o[1], 0, 8, -1) : NULL;
    Py_ssize_t n = off ? v.views[1].len / 8 : 0;
    const int64_t *cap = off ? view_of(&v, o[2], 0, 8, n) : NULL;
    const int64_t *link = cap ? view_of(&v, o[3], 0, 8, n) : NULL;
    int64_t **outs[] = {&c.idx, &c.proto, &c.l3, &c.l4, &c.ps, &c.pe, &c.sport, &c.dport};
    int ok = link != NULL;
    for (int k = 0; ok && k < 8; k++) {
        int64_t *p = view_of(&v, o[4 + k], 1, 8, n);
        ok = p != NULL;
        *outs[k] = p;
    }
    c.is6 = ok ? view_of(&v, o[12], 1, 1, n) : NULL;
    ok = c.is6 != NULL;
    if (!ok) {
        views_release(&v);
        return NULL;
    }
    Py_ssize_t buflen = v.views[0].len, m = 0, bad = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        if (off[i] < 0 || cap[i] < 0 || off[i] + cap[i] > buflen) {
            bad = 1;
            break;
        }
        m += decode_one(d, off[i], cap[i], link[i], i, &c, m);
    }
    Py_END_ALLOW_THREADS
    views_release(&v);
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "a packet lies outside the buffer");
        return NULL;
    }
    return PyLong_FromSsize_t(m);
}

/* columns._MIX: the multipliers of the flow key's seven words. */
static const uint64_t MIX[7] = {0x9E3779B97F4A7C15ull, 0xC2B2AE3D27D4EB4Full,
                                0x165667B19E3779F9ull, 0xD6E8FEB86659FD93ull,
                                0xFF51AFD7ED558CCDull, 0xC4CEB9FE1A85EC53ull,
                                0x94D049BB133111EBull};

/* A packet's bidirectional flow key as columns._group builds it: (protocol and family,
 * then the lower endpoint's address high and low words and port, then the upper's), and
 * whether the lower endpoint sent it. */
static int
flow_key(const unsigned char *d, int64_t l3, int is6, int64_t proto, int64_t sport,
         int64_t dport, uint64_t key[7])
{
    uint64_t src_hi = 0, src_lo, dst_hi = 0, dst_lo;
    if (is6) {
        src_hi = u64be(d + l3 + 8);
        src_lo = u64be(d + l3 + 16);
        dst_hi = u64be(d + l3 + 24);
        dst_lo = u64be(d + l3 + 32);
    } else {
        src_lo = u32be(d + l3 + 12);
        dst_lo = u32be(d + l3 + 16);
    }
    uint64_t sp = (uint64_t)sport, dp = (uint64_t)dport;
    int src_greater = src_hi > dst_hi
                      || (src_hi == dst_hi && (src_lo > dst_lo || (src_lo == dst_lo && sp > dp)));
    key[0] = ((uint64_t)proto << 1) | (uint64_t)(is6 != 0);
    key[1] = src_greater ? dst_hi : src_hi;
    key[2] = src_greater ? dst_lo : src_lo;
    key[3] = src_greater ? dp : sp;
    key[4] = src_greater ? src_hi : dst_hi;
    key[5] = src_greater ? src_lo : dst_lo;
    key[6] = src_greater ? sp : dp;
    return !src_greater;
}

static uint64_t
key_hash(const uint64_t key[7])
{
    uint64_t h = 0;
    for (int k = 0; k < 7; k++) {
        uint64_t mixed = key[k] * MIX[k];
        h ^= mixed ^ (mixed >> 29);
    }
    return h;
}

/* group(buf, l3, is6, proto, sport, dport, group, first, hashes, lower_sends) -> groups
 *
 * Groups the m packets (the length of l3) into flows in order of first appearance: each
 * packet's group, each group's first packet and key hash, and whether the lower endpoint
 * sent each packet. Returns the number of groups, or -1 where two different keys share a
 * hash (columns.py then groups by the keys themselves, as it does on such a collision). */
static PyObject *
group(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *o[10];
    if (!PyArg_ParseTuple(args, "OOOOOOOOOO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5],
                          &o[6], &o[7], &o[8], &o[9]))
        return NULL;
    Views v = {.count = 0};
    const unsigned char *d = view_of(&v, o[0], 0, 1, -1);
    const int64_t *l3 = d ? view_of(&v, o[1], 0, 8, -1) : NULL;
    Py_ssize_t m = l3 ? v.views[1].len / 8 : 0;
    const char *is6 = l3 ? view_of(&v, o[2], 0, 1, m) : NULL;
    const int64_t *proto = is6 ? view_of(&v, o[3], 0, 8, m) : NULL;
    const int64_t *sport = proto ? view_of(&v, o[4], 0, 8, m) : NULL;
    const int64_t *dport = sport ? view_of(&v, o[5], 0, 8, m) : NULL;
    int64_t *grp = dport ? view_of(&v, o[6], 1, 8, m) : NULL;
    int64_t *first = grp ? view_of(&v, o[7], 1, 8, m) : NULL;
    uint64_t *hashes = first ? view_of(&v, o[8], 1, 8, m) : NULL;
    char *lower = hashes ? view_of(&v, o[9], 1, 1, m) : NULL;
    if (lower == NULL) {
        views_release(&v);
        return NULL;
    }
    Py_ssize_t buflen = v.views[0].len;
    for (Py_ssize_t i = 0; i < m; i++) {
        if (l3[i] < 0 || l3[i] + (is6[i] ? 40 : 20) > buflen) {
            views_release(&v);
            PyErr_SetString(PyExc_ValueError, "an IP header lies outside the buffer");
            return NULL;
        }
    }
    size_t slots = 16;
    while (slots < 2 * (size_t)m)
        slots <<= 1;
    /* Each slot: 0 for empty, else its group + 1. The keys of the groups, 7 words each. */
    int64_t *table = calloc(slots, sizeof(int64_t));
    uint64_t *keys = malloc(((size_t)m + 1) * 7 * sizeof(uint64_t));
    if (table == NULL || keys == NULL) {
        free(table);
        free(keys);
        views_release(&v);
        return PyErr_NoMemory();
    }
    Py_ssize_t groups = 0;
    int collision = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < m && !collision; i++) {
        uint64_t key[7];
        lower[i] = (char)flow_key(d, l3[i], is6[i], proto[i], sport[i], dport[i], key);
        uint64_t h = key_hash(key);
        size_t at = (size_t)(h ^ (h >> 32)) & (slots - 1);
        for (;;) {
            int64_t slot = table[at];
            if (slot == 0) { /* a new flow */
                table[at] = groups + 1;
                memcpy(keys + 7 * groups, key, sizeof(key));
                hashes[groups] = h;
                first[groups] = i;
                grp[i] = groups++;
                break;
            }
            if (hashes[slot - 1] == h) {
                if (memcmp(keys + 7 * (slot - 1), key, sizeof(key)) != 0)
                    collision = 1;
                grp[i] = slot - 1;
                break;
            }
            at = (at + 1) & (slots - 1);
        }
    }
    Py_END_ALLOW_THREADS
    free(table);
    free(keys);
    views_release(&v);
    return PyLong_FromSsize_t(collision ? -1 : groups);
}

/* rank(keys, out) -> 0, or -1 where a key is negative or far larger than their number
 *
 * accounting._rank: each element's position among the elements with the same key, in
 * array order, by counting (numpy needs a stable sort for it). */
static PyObject *
rank(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *keys_obj, *out_obj;
    if (!PyArg_ParseTuple(args, "OO", &keys_obj, &out_obj))
        return NULL;
    Views v = {.count = 0};
    const int64_t *keys = view_of(&v, keys_obj, 0, 8, -1);
    Py_ssize_t n = keys ? v.views[0].len / 8 : 0;
    int64_t *out = keys ? view_of(&v, out_obj, 1, 8, n) : NULL;
    if (out == NULL) {
        views_release(&v);
        return NULL;
    }
    int64_t top = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (keys[i] < 0) {
            top = INT64_MAX;
            break;
        }
        if (keys[i] > top)
            top = keys[i];
    }
    if (top > 16 * (int64_t)n + 1024) { /* a negative key, or counts too sparse to hold */
        views_release(&v);
        return PyLong_FromLong(-1);
    }
    if (n == 0) {
        views_release(&v);
        return PyLong_FromLong(0);
    }
    int64_t *seen = calloc((size_t)top + 1, sizeof(int64_t));
    if (seen == NULL) {
        views_release(&v);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++)
        out[i] = seen[keys[i]]++;
    Py_END_ALLOW_THREADS
    free(seen);
    views_release(&v);
    return PyLong_FromLong(0);
}

static PyMethodDef columns_methods[] = {
    {"decode", decode, METH_VARARGS, "The fast packets of a batch and their columns."},
    {"group", group, METH_VARARGS, "Flow groups of the fast packets, by first appearance."},
    {"rank", rank, METH_VARARGS, "Each element's position among those with its key."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef columns_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "flowscan.capture._columns",
    .m_doc = "Columnar decoding of a batch (compiled twin of columns.py).",
    .m_size = -1,
    .m_methods = columns_methods,
};

PyMODINIT_FUNC
PyInit__columns(void)
{
    return PyModule_Create(&columns_module);
}
