// The web terminal in a real browser: Debian's chromium driven by playwright-core, against a real
// webterminal over TLS with sandbox targets. Screenshots land in test/browser/artifacts/.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { silentLogger } from '../../shared/log/index.ts';
import { buildUi } from '../../daemons/webterminal/ui/build.ts';
import { startWebterminal, type Webterminal } from '../../daemons/webterminal/server.ts';
import { targetStarter } from '../../daemons/webterminal/targets.ts';
import {
  pidsOf,
  sandboxDeps,
  testConfig,
  testPki,
  TOKENS,
} from '../integration/webterminal/helpers.ts';

const ARTIFACTS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'artifacts');
const CHROMIUM = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'].find((p) => existsSync(p));

/** Polls `cond` (the daemon has no event for "session gone" a test could await) up to `ms`. */
async function until(
  cond: () => boolean | Promise<boolean>,
  ms: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`waiting for ${what}: not within ${ms} ms`);
    await sleep(50);
  }
}

/** The terminal's visible text (xterm's DOM renderer: one element per row). */
async function screenText(page: Page): Promise<string> {
  return page.locator('.xterm-rows').innerText();
}

async function waitScreen(page: Page, re: RegExp, ms = 10_000): Promise<RegExpExecArray> {
  let last: string;
  const deadline = Date.now() + ms;
  for (;;) {
    last = await screenText(page);
    const m = re.exec(last);
    if (m !== null) return m;
    if (Date.now() > deadline)
      throw new Error(`no ${String(re)} on screen within ${ms} ms:\n${last}`);
    await sleep(50);
  }
}

describe(
  'webterminal in chromium',
  {
    skip: CHROMIUM === undefined ? 'chromium is not installed (scripts/install-browser.sh)' : false,
    timeout: 180_000,
  },
  () => {
    let wt: Webterminal;
    let browser: Browser;
    let context: BrowserContext;
    let uiDir: string;

    before(async () => {
      await mkdir(ARTIFACTS, { recursive: true });
      uiDir = await mkdtemp(path.join(os.tmpdir(), 'hostplane-webterminal-ui-'));
      await buildUi(uiDir);
      const log = silentLogger();
      const pki = await testPki();
      wt = await startWebterminal(
        testConfig('[sessions]\nttl = "3s"\nsweep_interval = "100ms"\n', uiDir),
        { log, clock: Date.now, start: targetStarter(await sandboxDeps(), log), tls: pki.server },
      );
      // launch() starts chromium on a new, empty profile of its own (a temporary user-data-dir)
      browser = await chromium.launch({
        executablePath: CHROMIUM!,
        headless: true,
        args: [
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
      });
      // the test CA is not in chromium's store; everything else about TLS is real
      context = await browser.newContext({
        ignoreHTTPSErrors: true,
        viewport: { width: 1200, height: 700 },
      });
    });
    after(async () => {
      await context.close();
      await browser.close();
      await wt.close();
      await rm(uiDir, { recursive: true, force: true });
    });

    it('logs in, opens a sandbox terminal, runs a command, follows resizes, re-attaches on reload, and cleans up after the page is gone', async () => {
      const page = await context.newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(e.message));
      await page.goto(wt.origin);
      await page.locator('#token').fill(TOKENS.alice);
      await page.locator('#login-form button').click();
      await page.locator('button[data-target="shell"]').click();
      await page.locator('body[data-state="attached"]').waitFor();
      await page.screenshot({ path: path.join(ARTIFACTS, 'picker-and-terminal.png') });

      await page.locator('#term').click();
      await page.keyboard.type('echo hello-$((6*7))\n');
      await waitScreen(page, /^hello-42$/m);
      await page.screenshot({ path: path.join(ARTIFACTS, 'hello-42.png') });

      await page.keyboard.type('echo S1:$(stty size):E\n');
      const before = await waitScreen(page, /S1:(\d+) (\d+):E/);
      await page.setViewportSize({ width: 800, height: 400 });
      await page.keyboard.type('echo S2:$(stty size):E\n');
      const afterResize = await waitScreen(page, /S2:(\d+) (\d+):E/);
      assert.ok(
        Number(afterResize[1]) < Number(before[1]),
        `rows ${before[1]} → ${afterResize[1]}`,
      );
      assert.ok(
        Number(afterResize[2]) < Number(before[2]),
        `cols ${before[2]} → ${afterResize[2]}`,
      );
      await page.screenshot({ path: path.join(ARTIFACTS, 'resized.png') });

      const id = await page.locator('body').getAttribute('data-session');
      assert.match(id ?? '', /^[0-9a-f-]{36}$/);
      await page.keyboard.type('sleep 7781 &\n');
      await until(async () => (await pidsOf(['sleep', '7781'])).length === 1, 5_000, 'sleep 7781');
      await page.reload();
      await page.locator('body[data-state="attached"]').waitFor();
      assert.equal(await page.locator('body').getAttribute('data-session'), id);
      await waitScreen(page, /^hello-42$/m);
      assert.equal(wt.sessions.size, 1);
      await page.screenshot({ path: path.join(ARTIFACTS, 'after-reload.png') });
      assert.deepEqual(pageErrors, []);

      await page.close();
      await until(
        () => wt.sessions.size === 0,
        8_000,
        'the session to expire after the page closed',
      );
      await until(
        async () => (await pidsOf(['sleep', '7781'])).length === 0,
        2_000,
        'sleep 7781 to end',
      );
    });

    it('blocks a page script from connecting to a host outside the allowlist (CSP)', async () => {
      const page = await context.newPage();
      await page.goto(wt.origin);
      const csp = (await page.request.get(wt.origin)).headers()['content-security-policy'] ?? '';
      assert.match(
        csp,
        /connect-src 'self' wss:\/\/\*\.seed\.example\.com https:\/\/\*\.seed\.example\.com/,
      );
      // 127.0.0.2 is loopback: had CSP failed, nothing would have left the machine
      const result = await page.evaluate(async () => {
        const violations: string[] = [];
        document.addEventListener('securitypolicyviolation', (e) => {
          violations.push(`${e.effectiveDirective} ${e.blockedURI}`);
        });
        let fetchError = '';
        try {
          await fetch('https://127.0.0.2:9/steal');
        } catch (e) {
          fetchError = String(e);
        }
        try {
          new WebSocket('wss://127.0.0.2:9/steal');
        } catch (e) {
          violations.push(`threw ${String(e)}`);
        }
        await new Promise((r) => setTimeout(r, 200));
        return { violations, fetchError };
      });
      assert.match(result.fetchError, /TypeError/);
      assert.ok(
        result.violations.some((v) => v.startsWith('connect-src https://127.0.0.2:9')),
        JSON.stringify(result.violations),
      );
      assert.ok(
        result.violations.some((v) => v.includes('wss://127.0.0.2:9')),
        JSON.stringify(result.violations),
      );
      await page.screenshot({ path: path.join(ARTIFACTS, 'csp.png') });
      await page.close();
    });

    it('shows the login form to a visitor without a login and no terminal', async () => {
      const fresh = await browser.newContext({ ignoreHTTPSErrors: true });
      const page = await fresh.newPage();
      await page.goto(wt.origin);
      await page.locator('#login-form').waitFor();
      assert.equal(await page.locator('#picker').isVisible(), false);
      await page.locator('#token').fill('wrong-token');
      await page.locator('#login-form button').click();
      await page.locator('#status[data-level="error"]').waitFor();
      assert.match((await page.locator('#status').textContent()) ?? '', /not accepted/);
      await page.screenshot({ path: path.join(ARTIFACTS, 'login-refused.png') });
      await fresh.close();
    });
  },
);
