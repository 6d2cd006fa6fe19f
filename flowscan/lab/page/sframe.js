// SFrame (RFC 9605) on encoded frames with WebCrypto, cipher suite AES_128_GCM_SHA256_128
// (0x0004). Header (section 4.3): config byte X|K(3)|Y|C(3) then the long KID/CTR fields.
// Keys (section 4.4.2): HKDF-SHA256 with an empty salt over the base key, info
// "SFrame 1.0 Secret key "/"SFrame 1.0 Secret salt " + KID (8 bytes) + suite (2 bytes).
// Nonce = salt XOR CTR, AAD = the header (section 4.4.3). Keys never leave the page.
"use strict";
const SFrame = (() => {
  const SUITE = 4;
  const te = new TextEncoder();
  function minimal(v) {
    const out = [];
    do { out.unshift(v & 0xff); v = Math.floor(v / 256); } while (v > 0);
    return out;
  }
  function header(kid, ctr) {
    let config = 0; const tail = [];
    if (kid < 8) config |= kid << 4;
    else { const b = minimal(kid); config |= 0x80 | (b.length - 1) << 4; tail.push(...b); }
    if (ctr < 8) config |= ctr;
    else { const b = minimal(ctr); config |= 0x08 | (b.length - 1); tail.push(...b); }
    return new Uint8Array([config, ...tail]);
  }
  function parse(data) {
    if (data.length < 1) return null;
    const config = data[0]; let pos = 1; let kid; let ctr;
    const read = (n) => { let v = 0; for (let i = 0; i < n; i++) v = v * 256 + data[pos + i]; pos += n; return v; };
    if (config & 0x80) kid = read(((config >> 4) & 7) + 1); else kid = (config >> 4) & 7;
    if (config & 0x08) ctr = read((config & 7) + 1); else ctr = config & 7;
    return pos <= data.length ? { kid, ctr, length: pos } : null;
  }
  function info(label, kid) {
    const l = te.encode(label); const out = new Uint8Array(l.length + 10);
    out.set(l); const view = new DataView(out.buffer);
    view.setUint32(l.length, Math.floor(kid / 2 ** 32)); view.setUint32(l.length + 4, kid >>> 0);
    view.setUint16(l.length + 8, SUITE);
    return out;
  }
  const cache = new Map();
  async function keys(base, kid) {
    if (cache.has(kid)) return cache.get(kid);
    const ikm = await crypto.subtle.importKey("raw", base, "HKDF", false, ["deriveBits"]);
    const derive = (label, bits) => crypto.subtle.deriveBits(
      { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: info(label, kid) }, ikm, bits);
    const raw = await derive("SFrame 1.0 Secret key ", 128);
    const salt = new Uint8Array(await derive("SFrame 1.0 Secret salt ", 96));
    const key = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
    const k = { key, salt };
    cache.set(kid, k);
    return k;
  }
  function nonce(salt, ctr) {
    const n = salt.slice();
    let v = ctr;
    for (let i = 11; i >= 0 && v > 0; i--) { n[i] ^= v & 0xff; v = Math.floor(v / 256); }
    return n;
  }
  async function protect(base, kid, ctr, plain) {
    const k = await keys(base, kid); const h = header(kid, ctr);
    const ct = new Uint8Array(await crypto.subtle.encrypt(
      { name: "AES-GCM", iv: nonce(k.salt, ctr), additionalData: h, tagLength: 128 }, k.key, plain));
    const out = new Uint8Array(h.length + ct.length); out.set(h); out.set(ct, h.length);
    return out;
  }
  async function unprotect(base, data) {
    const p = parse(data); if (!p) return null;
    const k = await keys(base, p.kid);
    try {
      return new Uint8Array(await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: nonce(k.salt, p.ctr), additionalData: data.subarray(0, p.length),
          tagLength: 128 }, k.key, data.subarray(p.length)));
    } catch (e) { return null; }
  }
  // Encoded-transform streams: one counter per sender, shared by its audio and video, so a
  // nonce is never used twice under one key.
  function sender(base, kid, counter, stats) {
    return new TransformStream({ async transform(frame, controller) {
      frame.data = (await protect(base, kid, counter.next++, new Uint8Array(frame.data))).buffer;
      stats.protected++;
      controller.enqueue(frame);
    } });
  }
  function receiver(base, stats) {
    return new TransformStream({ async transform(frame, controller) {
      const plain = await unprotect(base, new Uint8Array(frame.data));
      if (plain === null) { stats.failed++; return; }
      frame.data = plain.buffer; stats.unprotected++;
      controller.enqueue(frame);
    } });
  }
  return { protect, unprotect, sender, receiver };
})();
