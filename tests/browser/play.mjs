// Plays a channel in headless Chromium through the gateway's player page (WHEP) and prints
// what the browser saw as one JSON line: per session the state, error, time to first
// frame, resolution, decoded frames (from RTCPeerConnection.getStats) and audio packets.
//
// node play.mjs --url http://127.0.0.1:8080 --token T --device ID --channel ID
//   [--transport udp|tcp-passive|tcp-active] [--sessions N] [--stagger] [--frames 30]
//   [--timeout-ms 30000] [--hold-ms 0] [--expect-audio] [--until-ended]
//
// --stagger starts each session after the previous one plays (a viewer joining a running
// stream). Sessions are stopped (WHEP DELETE) before the browser closes.
import { launch, parseArgs } from "./common.mjs";

const { args, need } = parseArgs();
const base = need("url"), token = need("token"), device = need("device"), channel = need("channel");
const transport = args.transport || "udp";
const sessions = Number(args.sessions || 1);
const frames = Number(args.frames || 30);
const timeoutMs = Number(args["timeout-ms"] || 30000);
const holdMs = Number(args["hold-ms"] || 0);
const expectAudio = Boolean(args["expect-audio"]);
// After the frames arrived, keep watching until the page reports the stream ended.
const untilEnded = Boolean(args["until-ended"]);

const { browser, close } = await launch();

const deadline = (ms) => Date.now() + ms;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function openSession() {
  const page = await browser.newPage();
  const q = new URLSearchParams({ device, channel, transport, autoplay: "1" });
  await page.goto(`${base}/?${q}#token=${encodeURIComponent(token)}`);
  return page;
}

async function waitPlaying(page) {
  const end = deadline(timeoutMs);
  while (Date.now() < end) {
    const p = await page.evaluate(() => ({ state: window.__player.state, error: window.__player.error }));
    if (p.state === "error" || p.state === "ended" || p.error) return p;
    if (p.state === "playing") return p;
    await sleep(100);
  }
  return { state: "timeout", error: "no first frame within " + timeoutMs + " ms" };
}

async function collect(page) {
  const end = deadline(timeoutMs);
  let s = {};
  while (Date.now() < end) {
    s = await page.evaluate(() => {
      const p = window.__player;
      // p.stats is the page's getStats() sample, refreshed every second.
      return { state: p.state, error: p.error, ttffMs: p.ttffMs, ...p.stats };
    });
    const audioOk = !expectAudio || (s.audioPackets || 0) > 10;
    if (s.error || s.state === "ended" || s.state === "error") break;
    if ((s.framesDecoded || 0) >= frames && audioOk) break;
    await sleep(200);
  }
  return s;
}

const results = [];
const pages = [];
try {
  if (args.stagger) {
    for (let i = 0; i < sessions; i++) {
      const page = await openSession();
      pages.push(page);
      await waitPlaying(page);
      results.push(await collect(page));
    }
  } else {
    for (let i = 0; i < sessions; i++) pages.push(await openSession());
    for (const page of pages) await waitPlaying(page);
    for (const page of pages) results.push(await collect(page));
  }
  if (untilEnded) {
    for (let i = 0; i < pages.length; i++) {
      const end = deadline(timeoutMs);
      while (Date.now() < end) {
        const p = await pages[i].evaluate(() => ({ state: window.__player.state, error: window.__player.error }));
        if (p.state === "ended" || p.state === "error") { results[i] = { ...results[i], ended: p }; break; }
        await sleep(200);
      }
    }
  }
  if (holdMs > 0) await sleep(holdMs);
} finally {
  for (const page of pages) {
    await page.evaluate(() => window.__player.stop()).catch(() => {});
  }
  await sleep(300);
  await close();
}
console.log(JSON.stringify({ sessions: results }));
