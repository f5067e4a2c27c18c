import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sparticuz from '@sparticuz/chromium';
import { chromium, type BrowserContext } from 'playwright-core';

// The flags of a headless run on a closed network: without the background-networking ones
// Chromium keeps dialling Google's hosts and gets refused.
const ARGS = ['--headless=shell', '--no-sandbox', '--no-zygote', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export interface TestBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

/**
 * Headless Chromium from npm (@sparticuz/chromium unpacks its own build into the temp dir), so the
 * dashboard test needs no system browser. LEASH_TEST_CHROMIUM points at another binary instead.
 */
export async function launchBrowser(): Promise<TestBrowser> {
  const executablePath = process.env.LEASH_TEST_CHROMIUM ?? (await sparticuz.executablePath());
  const userDataDir = mkdtempSync(join(tmpdir(), 'leash-chromium-'));
  // launchPersistentContext is how playwright takes a fresh --user-data-dir.
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ARGS,
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}
