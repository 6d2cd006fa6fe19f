// One side of a direct browser call. The lab reads window.lab.local (this side's SDP, all
// candidates gathered) and hands the other side's SDP to window.labRemote(sdp).
"use strict";
window.lab = { published: false, subscribed: 0, errors: [], local: null, sdp: [] };
(() => {
  const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: "max-bundle" });
  const fail = (what) => (err) => window.lab.errors.push(what + ": " + String(err));
  const gathered = new Promise((resolve) => {
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === "complete") resolve(); };
  });
  pc.onconnectionstatechange = () => {
    const up = pc.connectionState === "connected";
    window.lab.published = up;
    window.lab.subscribed = up ? 1 : 0;
    if (pc.connectionState === "failed") window.lab.errors.push("connection failed");
  };
  pc.ontrack = () => {};
  async function publish(description) {
    await pc.setLocalDescription(description);
    await gathered;
    window.lab.local = pc.localDescription.sdp;
    window.lab.sdp.push(pc.localDescription.sdp);
  }
  const media = navigator.mediaDevices.getUserMedia({
    audio: true, video: { width: 320, height: 240, frameRate: 15 } })
    .then((stream) => { for (const t of stream.getTracks()) pc.addTrack(t, stream); });
  const offering = new URLSearchParams(location.search).get("role") === "offer";
  if (offering) media.then(() => pc.createOffer()).then(publish).catch(fail("offer"));
  window.labRemote = (sdp) => {
    window.lab.sdp.push(sdp);
    const type = offering ? "answer" : "offer";
    const done = media.then(() => pc.setRemoteDescription({ type, sdp }));
    if (!offering) done.then(() => pc.createAnswer()).then(publish).catch(fail("answer"));
    else done.catch(fail("remote answer"));
  };
})();
