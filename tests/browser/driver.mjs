// Drives Debian's headless Chromium for tests/browser through puppeteer-core:
// one JSON command per line on stdin, one JSON answer per line on stdout.
// Each named page lives in its own browser context (its own cookies and
// storage, as a separate browser profile would have). The page's console
// and errors go to stderr, prefixed with the page's name.
//
//   {"id":1,"op":"open","name":"p0","url":"http://..."}   -> {"id":1,"ok":true}
//   {"id":2,"op":"eval","name":"p0","expr":"kwsState()"}  -> {"id":2,"ok":true,"value":...}
//   {"id":3,"op":"reload","name":"p0"}
//   {"id":4,"op":"close","name":"p0"}
//   {"id":5,"op":"quit"}
// An error answers {"id":..,"ok":false,"error":"..."}.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import puppeteer from 'puppeteer-core';

const exe = process.env.KWS_CHROMIUM || '/usr/bin/chromium';
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'kws-chromium-'));
const browser = await puppeteer.launch({
  executablePath: exe,
  headless: true,
  userDataDir: profile,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const pages = new Map();

function say(o) {
  process.stdout.write(JSON.stringify(o) + '\n');
}

async function run(cmd) {
  switch (cmd.op) {
    case 'open': {
      const ctx = await browser.createBrowserContext();
      const page = await ctx.newPage();
      page.on('console', (m) => process.stderr.write(`[${cmd.name}] ${m.type()}: ${m.text()}\n`));
      page.on('pageerror', (e) => process.stderr.write(`[${cmd.name}] page error: ${e.message}\n`));
      pages.set(cmd.name, { ctx, page });
      await page.goto(cmd.url, { waitUntil: 'load', timeout: 30000 });
      return true;
    }
    case 'eval':
      return await pages.get(cmd.name).page.evaluate(cmd.expr);
    case 'reload':
      await pages.get(cmd.name).page.reload({ waitUntil: 'load', timeout: 30000 });
      return true;
    case 'close': {
      const p = pages.get(cmd.name);
      pages.delete(cmd.name);
      await p.ctx.close();
      return true;
    }
    case 'quit':
      await browser.close();
      fs.rmSync(profile, { recursive: true, force: true });
      say({ id: cmd.id, ok: true });
      process.exit(0);
      break;
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
  return null;
}

const rl = readline.createInterface({ input: process.stdin });
say({ id: 0, ok: true, value: await browser.version() });
for await (const line of rl) {
  let cmd;
  try {
    cmd = JSON.parse(line);
    const value = await run(cmd);
    say({ id: cmd.id, ok: true, value: value === undefined ? null : value });
  } catch (e) {
    say({ id: cmd ? cmd.id : null, ok: false, error: String(e && e.stack || e) });
  }
}
await browser.close();
fs.rmSync(profile, { recursive: true, force: true });
