// The explorer's analysis views in headless Chromium (Debian's, driven by playwright-core):
//   node analysis.mjs --html DIR/index.html --layers N --heads H --grids G --maps M
//                     --links K [--plain OTHER/index.html] [--shots DIR]
// Opens a page written by attn viz --importance --rollout --relevance --roles
// --gold and checks: no console error, no page error, no request but the page
// itself; the Analysis section shows G head grids of layers x heads cells, a
// tooltip on a cell, a click on a cell shows that kind, layer and head in the
// main view (and outlines the cell); the gold links are K outlined cells on
// every cross-attention heatmap; the M maps draw every cell, and the per
// output token view draws the chosen row as bars whose tallest is that row's
// largest value; clicking a map row chooses it. With --plain, a page without
// analysis keeps the section hidden. Screenshots go to --shots.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
for (const k of ['html', 'layers', 'heads', 'grids', 'maps', 'links']) {
  if (!args[k]) {
    console.error('usage: node analysis.mjs --html FILE --layers N --heads H --grids G --maps M --links K [--plain FILE] [--shots DIR]');
    process.exit(2);
  }
}
const L = +args.layers, H = +args.heads, G = +args.grids, M = +args.maps, K = +args.links;
const shots = args.shots || null;
if (shots) fs.mkdirSync(shots, { recursive: true });

const failures = [];
let checks = 0;
function check(ok, what) {
  checks++;
  if (!ok) failures.push(what);
  console.log((ok ? 'ok   ' : 'FAIL ') + what);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1300, height: 900 } });
  const page = await context.newPage();
  const consoleErrors = [], requests = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') consoleErrors.push(m.type() + ': ' + m.text()); });
  page.on('pageerror', (e) => consoleErrors.push('page error: ' + e.message));
  page.on('request', (r) => requests.push(r.url()));
  page.on('requestfailed', (r) => consoleErrors.push('request failed: ' + r.url()));

  const htmlUrl = pathToFileURL(path.resolve(args.html)).href;
  await page.goto(htmlUrl);
  await page.waitForSelector('html[data-ready="true"]', { timeout: 20000 });
  const state = () => page.evaluate(() => window.atExplorer.state());

  // the section and its head grids
  check(await page.isVisible('#analysis'), 'the Analysis section is shown');
  const grids = await page.locator('#grids svg.grid').count();
  check(grids === G, `${G} head grids (found ${grids})`);
  const perGrid = await page.$$eval('#grids svg.grid', (gs) => gs.map((g) => g.querySelectorAll('rect.hcell').length));
  check(perGrid.every((n) => n === L * H), `every grid has ${L}x${H} cells (${perGrid.join(' ')})`);
  if (shots) await page.screenshot({ path: path.join(shots, 'analysis.png'), fullPage: true });

  // a tooltip, then a click that switches the main view: layer 1, head 2 of encoder
  // self-attention in the importance grid
  const cell = page.locator('#grids svg.grid[data-kind="enc_self"]').first().locator('rect.hcell[data-layer="0"][data-head="1"]');
  await cell.hover();
  const tip = await page.textContent('#tip');
  check(await page.isVisible('#tip') && /layer 1 \u00b7 head 2\nvalue /.test(tip), 'hovering a grid cell shows its head and value: ' + JSON.stringify(tip));
  await cell.click();
  let st = await state();
  check(st.kind === 'enc_self' && st.layer === 0 && st.head === 1, 'clicking a grid cell selects that head: ' + JSON.stringify(st));
  check(await page.getAttribute('#heatmap', 'data-kind') === 'enc_self' && +(await page.getAttribute('#heatmap', 'data-head')) === 2,
    'the main heatmap shows it');
  check(await cell.evaluate((r) => r.classList.contains('current')), 'the cell is outlined as the current head');
  const current = await page.locator('#grids rect.hcell.current').count();
  const encGrids = await page.locator('#grids svg.grid[data-kind="enc_self"]').count();
  check(current === encGrids, `one current cell in each of the ${encGrids} encoder grids (found ${current})`);

  // a cross-attention cell: the gold links on its heatmap
  const cross = page.locator('#grids svg.grid[data-kind="cross"]').last().locator(`rect.hcell[data-layer="${L - 1}"][data-head="${H - 1}"]`);
  await cross.click();
  st = await state();
  check(st.kind === 'cross' && st.layer === L - 1 && st.head === H - 1, 'a cross-attention grid cell selects its head: ' + JSON.stringify(st));
  let gold = await page.locator('#heatmap rect.gold').count();
  check(gold === K && +(await page.getAttribute('#heatmap', 'data-gold')) === K, `the gold links are ${K} outlined cells (found ${gold})`);
  check((await page.textContent('#chart-sub')).includes('AER'), 'the subtitle gives the head\'s attention on the links and AER');
  const link = await page.evaluate(() => window.atExplorer.analysis.links[0]);
  const lc = page.locator(`#heatmap rect.cell[data-q="${link[0]}"][data-k="${link[1]}"]`);
  await lc.hover();
  check((await page.textContent('#tip')).includes('gold link'), 'a linked cell\'s tooltip says so');
  await page.selectOption('#layer', '0');
  gold = await page.locator('#heatmap rect.gold').count();
  check(gold === K, `another layer keeps the ${K} outlines`);
  await page.check('input[name=view][value=lines]');
  check(await page.locator('#chart rect.gold').count() === 0, 'the line view has no outlines');
  await page.check('input[name=view][value=heatmap]');
  await page.selectOption('#kind', { label: 'Encoder self-attention' });
  check(await page.locator('#heatmap rect.gold').count() === 0, 'encoder self-attention has no outlines');

  // the maps
  const maps = await page.locator('#map option').count();
  check(maps === M, `${M} maps to choose (found ${maps})`);
  for (let i = 0; i < maps; i++) {
    await page.selectOption('#map', String(i));
    const want = await page.evaluate((i) => { const m = window.atExplorer.analysis.maps[i]; return m.nrows * m.ncols; }, i);
    const n = await page.locator('#map-chart rect.mcell').count();
    check(n === want, `map ${i + 1} draws its ${want} cells (found ${n})`);
  }
  // the per output token view of relevance R^qs
  const rq = await page.evaluate(() => window.atExplorer.analysis.maps.findIndex((m) => m.title.startsWith('relevance R^qs')));
  check(rq >= 0, 'a relevance R^qs map');
  await page.selectOption('#map', String(rq));
  await page.selectOption('#out-tok', '2');
  const bars = await page.evaluate(() => {
    const b = Array.from(document.querySelectorAll('#barchart rect.bar'));
    const hs = b.map((r) => +r.getAttribute('height'));
    return { row: +document.querySelector('#barchart').getAttribute('data-row'), n: b.length, top: hs.indexOf(Math.max(...hs)) };
  });
  const want = await page.evaluate((rq) => {
    const m = window.atExplorer.analysis.maps[rq], row = Array.from(m.v.slice(2 * m.ncols, 3 * m.ncols));
    return { n: m.ncols, top: row.indexOf(Math.max(...row)) };
  }, rq);
  check(bars.row === 2 && bars.n === want.n && bars.top === want.top,
    `output token 3: ${want.n} bars, the tallest on the row's largest value (column ${want.top + 1}): ` + JSON.stringify(bars));
  await page.locator('#map-chart rect.mcell[data-q="4"][data-k="0"]').click();
  check(+(await page.getAttribute('#barchart', 'data-row')) === 4 && (await page.inputValue('#out-tok')) === '4',
    'clicking a map row chooses that output token');
  await page.locator('#barchart rect.bar').nth(want.top).hover();
  check((await page.textContent('#tip')).startsWith('output #5'), 'a bar\'s tooltip names the output token');
  if (shots) {
    await page.locator('#analysis').screenshot({ path: path.join(shots, 'analysis-maps.png') });
  }

  // a page without analysis keeps the section hidden
  const pages = new Set([htmlUrl]);
  if (args.plain) {
    const plainUrl = pathToFileURL(path.resolve(args.plain)).href;
    pages.add(plainUrl);
    await page.goto(plainUrl);
    await page.waitForSelector('html[data-ready="true"]');
    check(!(await page.isVisible('#analysis')) && (await page.locator('#heatmap rect.gold').count()) === 0,
      'a page without analysis layers hides the section');
  }

  const foreign = requests.filter((u) => !pages.has(u.replace(/#.*$/, '')));
  check(foreign.length === 0, 'no request but the files themselves' + (foreign.length ? ': ' + foreign.slice(0, 5).join(' ') : ` (${requests.length} requests)`));
  check(consoleErrors.length === 0, 'no console error' + (consoleErrors.length ? ': ' + consoleErrors.slice(0, 5).join(' | ') : ''));
} finally {
  await browser.close();
}
console.log(`analysis: ${checks - failures.length} passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
