// Watches a channel in headless Chromium for a while and reports every encoded video frame
// that reached the browser's decoder (read through WebRTC encoded streams, before decoding):
// its RTP timestamp, whether it is a key frame, the FNV-1a digests of its slice NAL units,
// and when it arrived; plus the decoder's own counters (frames decoded, freezes).
//
// node frames.mjs --url http://127.0.0.1:8080 --token T --device ID --channel ID
//   [--seconds 20] [--timeout-ms 30000]
//
// Prints one JSON line: { state, error, frames: [{ts, key, at, slices: [hex]}], stats }.
import { launch, parseArgs } from "./common.mjs";

const { args, need } = parseArgs();
const base = need("url"), token = need("token"), device = need("device"), channel = need("channel");
const seconds = Number(args.seconds || 20);
const timeoutMs = Number(args["timeout-ms"] || 30000);

const { browser, close } = await launch();

let result;
try {
  const page = await browser.newPage();
  // Same origin as the API; the page's own player stays idle (no autoplay parameters).
  await page.goto(`${base}/`);
  result = await page.evaluate(async ({ token, device, channel, seconds, timeoutMs }) => {
    const fnv = (d, from, to) => {
      let h = 0x811c9dc5;
      for (let i = from; i < to; i++) { h ^= d[i]; h = Math.imul(h, 0x01000193) >>> 0; }
      return h.toString(16).padStart(8, "0");
    };
    // Slice NAL units (types 1 and 5) of an Annex B frame, trailing zeros stripped.
    const slices = (d) => {
      const starts = [];
      for (let i = 0; i + 2 < d.length; i++) {
        if (d[i] === 0 && d[i + 1] === 0 && d[i + 2] === 1) { starts.push(i + 3); i += 2; }
      }
      const out = [];
      for (let k = 0; k < starts.length; k++) {
        const s = starts[k];
        let e = k + 1 < starts.length ? starts[k + 1] - 3 : d.length;
        while (e > s && d[e - 1] === 0) e--;
        const type = d[s] & 0x1f;
        if (type === 1 || type === 5) out.push(fnv(d, s, e));
      }
      return out;
    };
    const frames = [];
    const pc = new RTCPeerConnection({ encodedInsertableStreams: true });
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    const video = document.createElement("video");
    video.muted = true; video.autoplay = true; video.playsInline = true;
    document.body.appendChild(video);
    video.srcObject = new MediaStream();
    const t0 = performance.now();
    pc.ontrack = (ev) => {
      video.srcObject.addTrack(ev.track);
      const { readable, writable } = ev.receiver.createEncodedStreams();
      if (ev.track.kind !== "video") { readable.pipeTo(writable); return; }
      readable.pipeThrough(new TransformStream({
        transform(frame, ctl) {
          const d = new Uint8Array(frame.data);
          frames.push({
            ts: frame.getMetadata().rtpTimestamp ?? frame.timestamp,
            key: frame.type === "key",
            at: Math.round(performance.now() - t0),
            slices: slices(d),
          });
          ctl.enqueue(frame);
        },
      })).pipeTo(writable);
    };
    const auth = { "Authorization": "Bearer " + token };
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const r = await fetch(`/api/v1/whep/${encodeURIComponent(device)}/${encodeURIComponent(channel)}`,
      { method: "POST", headers: { ...auth, "Content-Type": "application/sdp" }, body: pc.localDescription.sdp });
    if (r.status !== 201) return { state: "error", error: `HTTP ${r.status} ${await r.text()}`, frames };
    const resource = new URL(r.headers.get("Location"), location.href).href;
    await pc.setRemoteDescription({ type: "answer", sdp: await r.text() });
    const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
    const end = performance.now() + timeoutMs;
    while (frames.length === 0 && performance.now() < end) await sleep(50);
    if (frames.length === 0) return { state: "timeout", error: "no frame", frames };
    const first = performance.now();
    const samples = [];
    while (performance.now() - first < seconds * 1000) {
      await sleep(1000);
      const st = await pc.getStats();
      st.forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video") {
          samples.push({ framesDecoded: s.framesDecoded, freezeCount: s.freezeCount,
            totalFreezesDuration: s.totalFreezesDuration, framesDropped: s.framesDropped,
            packetsLost: s.packetsLost, keyFramesDecoded: s.keyFramesDecoded,
            pliCount: s.pliCount, at: Math.round(performance.now() - t0) });
        }
      });
    }
    await fetch(resource, { method: "DELETE", headers: auth }).catch(() => {});
    pc.close();
    return { state: "done", frames, samples };
  }, { token, device, channel, seconds, timeoutMs });
} catch (e) {
  result = { state: "error", error: String(e) };
} finally {
  await close();
}
console.log(JSON.stringify(result));
