// The SFrame transform for browsers with RTCRtpScriptTransform (Firefox): frames arrive in
// this worker; the base key and key ID come in the transform's options. One counter for
// every sender transform of this worker, so audio and video never reuse a nonce.
"use strict";
importScripts("sframe.js");
const stats = { protected: 0, unprotected: 0, failed: 0 };
const counter = { next: 0 };
const bytes = (hex) => new Uint8Array(hex.match(/../g).map((h) => parseInt(h, 16)));
onrtctransform = (event) => {
  const t = event.transformer;
  const base = bytes(t.options.key);
  const stream = t.options.side === "send" ? SFrame.sender(base, t.options.kid, counter, stats)
    : SFrame.receiver(base, stats);
  t.readable.pipeThrough(stream).pipeTo(t.writable);
};
setInterval(() => postMessage(stats), 200);
