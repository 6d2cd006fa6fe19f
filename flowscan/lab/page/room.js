// One participant of the lab's VideoRoom call through janus.js. Parameters come in the
// query string (server, room, name, browser); an SFrame base key, when the call is end to
// end, comes in the fragment, which the browser never sends to any server.
"use strict";
window.lab = { published: false, subscribed: 0, errors: [], protected: 0, unprotected: 0,
               failed: 0, sdp: [] };
(() => {
  const q = new URLSearchParams(location.search);
  const server = q.get("server"); const room = Number(q.get("room"));
  const name = q.get("name"); const kid = Number(q.get("kid") || "0");
  const keyHex = location.hash.slice(1);
  const base = keyHex ? new Uint8Array(keyHex.match(/../g).map((h) => parseInt(h, 16))) : null;
  const counter = { next: 0 };
  // Chromium: encoded insertable streams through janus.js; Firefox: RTCRtpScriptTransform
  // in a worker, set on the senders and receivers here.
  const scripted = base !== null && !("createEncodedStreams" in RTCRtpSender.prototype) &&
    "RTCRtpScriptTransform" in window;
  const worker = scripted ? new Worker("sframe-worker.js") : null;
  if (worker) worker.onmessage = (event) => Object.assign(window.lab, event.data);
  const scriptTransform = (side) => new RTCRtpScriptTransform(worker, { side, key: keyHex, kid });
  const fail = (what) => (err) => window.lab.errors.push(what + ": " + String(err));
  const subscribed = new Set();
  let janus = null;

  function tracks(send) {
    return ["audio", "video"].map((type) => {
      const capture = type === "video" ? { width: 320, height: 240, frameRate: 15 } : true;
      const t = send ? { type, capture, recv: false } : { type, capture: false, recv: true };
      if (base && !scripted) t.transforms = send ? { sender: SFrame.sender(base, kid, counter, window.lab) }
        : { receiver: SFrame.receiver(base, window.lab) };  // asks janus.js for encoded streams
      return t;
    });
  }

  const opened = new WeakSet();
  function openReceivers(pc) {
    for (const r of pc.getReceivers()) {
      if (opened.has(r) || !r.track) continue;
      opened.add(r);
      if (scripted) { r.transform = scriptTransform("receive"); continue; }
      let s = null;
      try { s = r.createEncodedStreams(); } catch (e) { continue; }  // janus.js took it
      s.readable.pipeThrough(SFrame.receiver(base, window.lab)).pipeTo(s.writable);
    }
  }

  function subscribe(feed) {
    if (subscribed.has(feed)) return;
    subscribed.add(feed);
    let handle = null;
    janus.attach({
      plugin: "janus.plugin.videoroom",
      success: (h) => { handle = h; h.send({ message: { request: "join", room, ptype: "subscriber", streams: [{ feed }] } }); },
      error: fail("attach subscriber"),
      onmessage: (msg, jsep) => {
        if (!jsep) return;
        window.lab.sdp.push(jsep.sdp);
        handle.createAnswer({ jsep, tracks: tracks(false),
          success: (answer) => window.lab.sdp.push(answer.sdp) && e2ee(answer, null) && handle.send({ message: { request: "start", room }, jsep: answer }),
          error: fail("answer") });
      },
      webrtcState: (on) => { if (on) window.lab.subscribed++; },
      // janus.js applies receiver transforms only to transceivers it creates itself; a
      // subscriber's come from Janus's offer, so their receivers are hooked here.
      onremotetrack: () => { if (base) openReceivers(handle.webrtcStuff.pc); },
    });
  }

  // Firefox's transforms are set outside janus.js, which then cannot tell Janus that the
  // media is end to end encrypted: the jsep says so itself (the room requires it).
  function e2ee(jsep, publisher) {
    if (!scripted) return true;
    jsep.e2ee = true;
    if (publisher) {
      for (const s of publisher.webrtcStuff.pc.getSenders()) {
        if (s.track) s.transform = scriptTransform("send");
      }
    }
    return true;
  }

  function publishers(list) { for (const p of list || []) subscribe(p.id); }

  function publish() {
    let handle = null;
    janus.attach({
      plugin: "janus.plugin.videoroom",
      success: (h) => { handle = h; h.send({ message: { request: "join", room, ptype: "publisher", display: name } }); },
      error: fail("attach publisher"),
      onmessage: (msg, jsep) => {
        if (msg.videoroom === "joined") {
          handle.createOffer({ tracks: tracks(true),
            success: (offer) => window.lab.sdp.push(offer.sdp) && e2ee(offer, handle) && handle.send({ message: { request: "configure", audio: true, video: true }, jsep: offer }),
            error: fail("offer") });
        }
        publishers(msg.publishers);
        if (jsep) { window.lab.sdp.push(jsep.sdp); handle.handleRemoteJsep({ jsep }); }
      },
      webrtcState: (on) => { window.lab.published = on; },
      onlocaltrack: () => {},
    });
  }

  const adapter = { browserDetails: { browser: q.get("browser") || "chrome", version: 120 } };
  Janus.init({ debug: false, dependencies: Janus.useDefaultDependencies({ adapter }),
    callback: () => {
      janus = new Janus({ server, iceServers: [], success: publish, error: fail("session") });
    } });
})();
