// What the browser drivers share: their command line and a headless Chromium with the flags
// WebRTC on loopback and across namespaces needs (a fresh profile per run, removed on close).
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/// `--key value` and `--flag` arguments as an object; `need(key)` exits when one is missing.
export function parseArgs(argv = process.argv.slice(2)) {
  const args = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) continue;
    const next = argv[i + 1];
    if (next === undefined || next.startsWith("--")) args[a.slice(2)] = true;
    else { args[a.slice(2)] = next; i++; }
  }
  const need = (k) => { if (!args[k]) { console.error(`missing --${k}`); process.exit(2); } return args[k]; };
  return { args, need };
}

/// Headless Chromium (`CHROMIUM` or /usr/bin/chromium) in a fresh profile directory; `close()`
/// closes it and removes the profile.
export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), "gb-chromium-"));
  // launchPersistentContext passes the directory as --user-data-dir.
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--allow-loopback-in-peer-connection",
      "--disable-features=WebRtcHideLocalIpsWithMdns,LocalNetworkAccessChecks",
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
  const close = async () => {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { browser, close };
}
