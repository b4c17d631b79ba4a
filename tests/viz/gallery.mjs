// Renders chart files to PNG in headless Chromium, for docs/gallery/:
//   node gallery.mjs OUT_DIR NAME=FILE[#fragment] ...
// An SVG is shot at its own size and twice the pixel density (sharp text); an
// HTML page at 1300 px wide, full height, at the normal density (smaller file).
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const [out, ...items] = process.argv.slice(2);
if (!out || !items.length) {
  console.error('usage: node gallery.mjs OUT_DIR NAME=FILE[#fragment] ...');
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const sharp = await (await browser.newContext({ deviceScaleFactor: 2 })).newPage();
const plain = await (await browser.newContext({ deviceScaleFactor: 1 })).newPage();
for (const item of items) {
  const eq = item.indexOf('=');
  const name = item.slice(0, eq), spec = item.slice(eq + 1);
  const hash = spec.includes('#') ? spec.slice(spec.indexOf('#')) : '';
  const file = hash ? spec.slice(0, spec.indexOf('#')) : spec;
  const page = file.endsWith('.svg') ? sharp : plain;
  await page.setViewportSize({ width: 1300, height: 800 });
  await page.goto(pathToFileURL(path.resolve(file)).href + hash);
  const target = path.join(out, name + '.png');
  if (file.endsWith('.svg')) {
    const size = await page.evaluate(() => {
      const r = document.documentElement;
      let right = 0, bottom = 0;   // the drawing, background rectangles left out
      for (const e of r.children) {
        if (e.tagName === 'rect' || !e.getBBox) continue;
        const b = e.getBBox(), m = e.getCTM();
        right = Math.max(right, b.x + b.width + (m ? m.e : 0));
        bottom = Math.max(bottom, b.y + b.height + (m ? m.f : 0));
      }
      return { w: Math.ceil(+r.getAttribute('width')), h: Math.ceil(+r.getAttribute('height')),
        right: Math.ceil(right), bottom: Math.ceil(bottom) };
    });
    await page.setViewportSize({ width: size.w, height: size.h });
    // cut what the drawing leaves empty on the right and at the bottom
    const clip = { x: 0, y: 0, width: Math.min(size.w, size.right + 16), height: Math.min(size.h, size.bottom + 16) };
    await page.screenshot({ path: target, clip });
  } else {
    await page.waitForSelector('html[data-ready="true"]');
    if (hash.includes('view=lines')) await page.hover('#lines text.tok >> nth=3');
    await page.screenshot({ path: target, fullPage: true });
  }
  console.log('wrote ' + target);
}
await browser.close();
