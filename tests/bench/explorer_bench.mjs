// Times the explorer in headless Chromium (tests/bench/explorer_bench.sh):
//   node explorer_bench.mjs FILE.html LAYERS HEADS
// load: navigation start to the first frame after the page says it is ready
// (the inline script has parsed the data and drawn the first heatmap);
// switch: a head chosen in the Head menu to the next frame after the redraw
// (first visits of heads, then a revisit); prints one JSON line. A page with
// analysis layers (explorer_bench analysis) is timed there too: a click on a
// head-grid cell to the redrawn main view, a change of map, a change of the
// output token, each to the next frame; and the gold outlines counted.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const [file, L, H] = [process.argv[2], +process.argv[3], +process.argv[4]];
const require = createRequire(path.join(process.env.NODE_DIR || '.', 'node_modules', 'x.js'));
const { chromium } = require('playwright-core');
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const out = { file: path.basename(file), mb: +(fs.statSync(file).size / 1e6).toFixed(2) };
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [], requests = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('request', (r) => requests.push(r.url()));
  await page.addInitScript(() => {
    new MutationObserver(() => {
      if (document.documentElement.getAttribute('data-ready') === 'true' && !window.__ready) {
        window.__ready = performance.now();
        requestAnimationFrame(() => setTimeout(() => { window.__painted = performance.now(); }, 0));
      }
    }).observe(document, { attributes: true, subtree: true, attributeFilter: ['data-ready'] });
  });
  const t0 = Date.now();
  await page.goto(pathToFileURL(path.resolve(file)).href, { timeout: 300000 });
  await page.waitForFunction(() => window.__painted, null, { timeout: 300000, polling: 50 });
  out.wall_load_ms = Date.now() - t0;
  const nav = await page.evaluate(() => {
    const n = performance.getEntriesByType('navigation')[0];
    return { responseEnd: n.responseEnd, dcl: n.domContentLoadedEventStart, ready: window.__ready, painted: window.__painted };
  });
  out.load_ms = Math.round(nav.painted);
  out.file_read_ms = Math.round(nav.responseEnd);
  out.script_ms = Math.round(nav.ready - nav.responseEnd);
  out.heap_mb = +((await page.evaluate(() => performance.memory ? performance.memory.usedJSHeapSize : 0)) / 1e6).toFixed(1);
  // one change event on the Head menu (the layer stays the last, as the page opens)
  const sw = async (head) => page.evaluate((h) => new Promise((res) => {
    const t = performance.now();
    const sh = document.getElementById('head');
    sh.value = String(h); sh.dispatchEvent(new Event('change'));
    requestAnimationFrame(() => setTimeout(() => res(performance.now() - t), 0));
  }), head);
  const first = [];
  for (const h of [1, 2, Math.min(5, H - 1), H - 1]) first.push(await sw(h));
  const again = await sw(1);
  first.sort((a, b) => a - b);
  out.switch_ms_median = Math.round(first[first.length >> 1]);
  out.switch_ms_max = Math.round(first[first.length - 1]);
  out.switch_ms_revisit = Math.round(again);
  const chk = await page.evaluate(() => {
    const e = document.getElementById('heatmap');
    return { layer: e && e.getAttribute('data-layer'), head: e && e.getAttribute('data-head'),
      canvas: !!document.querySelector('#chart canvas'), rects: document.querySelectorAll('#chart rect.cell').length };
  });
  out.redrawn = chk.layer === String(L) && chk.head === '2';
  out.gold_outlined = +(await page.getAttribute('#heatmap', 'data-gold') || 0);
  const an = await page.evaluate(() => ({ grids: document.querySelectorAll('#grids svg.grid').length,
    maps: document.querySelectorAll('#map option').length }));
  if (an.grids || an.maps) {
    out.analysis = an;
    // the time from an event to the next frame after its redraw
    const timed = (fn, arg) => page.evaluate(([f, a]) => new Promise((res) => {
      const t = performance.now();
      new Function('a', f)(a);
      requestAnimationFrame(() => setTimeout(() => res(performance.now() - t), 0));
    }), [fn, arg]);
    const click = "document.querySelectorAll('#grids svg.grid[data-kind=cross]')[0]" +
      ".querySelector('rect.hcell[data-layer=\"' + a[0] + '\"][data-head=\"' + a[1] + '\"]')" +
      ".dispatchEvent(new MouseEvent('click', { bubbles: true }))";
    const clicks = [];
    for (const [l, h] of [[0, 3], [2, 5], [L - 1, H - 1]]) clicks.push(await timed(click, [l, h]));
    const st = await page.evaluate(() => window.atExplorer.state());
    out.analysis.grid_click_selects = st.kind === 'cross' && st.layer === L - 1 && st.head === H - 1;
    out.analysis.grid_click_ms_max = Math.round(Math.max(...clicks));
    const pick = "const s = document.getElementById(a[0]); s.value = String(a[1]); s.dispatchEvent(new Event('change'))";
    const maps = [];
    for (let i = 0; i < an.maps; i++) maps.push(await timed(pick, ['map', i]));
    maps.sort((x, y) => x - y);
    out.analysis.map_switch_ms_median = Math.round(maps[maps.length >> 1]);
    out.analysis.map_switch_ms_max = Math.round(maps[maps.length - 1]);
    const toks = [];
    for (const t of [1, 100, 300]) toks.push(await timed(pick, ['out-tok', t]));
    out.analysis.output_token_ms_max = Math.round(Math.max(...toks));
    out.analysis.map_canvas = await page.evaluate(() => !!document.querySelector('#map-chart canvas'));
  }
  out.drawing = chk.canvas ? 'canvas' : chk.rects + ' rects';
  out.errors = errors.length;
  out.requests_other_than_page = requests.filter((u) => !u.startsWith('file:')).length + Math.max(0, requests.filter((u) => u.startsWith('file:')).length - 1);
  if (process.env.SHOT) await page.screenshot({ path: process.env.SHOT });
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
