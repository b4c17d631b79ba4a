// The HTML explorer in headless Chromium (Debian's, driven by playwright-core):
//   node explorer.mjs --html DIR/index.html --expect enc_self=8x8,dec_self=5x5,cross=5x8
//                     --layers N --heads H [--svg CJK.svg] [--shots DIR]
// Opens the page from disk (file://) and checks: no console error, no page
// error, no request but the page itself; the heatmap has the expected number
// of cells for every kind; choosing a layer and a head redraws it (title,
// attributes, colours); hovering a cell shows the token pair and weight; the
// line view and the statistics table work; a deep link (#kind=…&layer=…)
// opens that head. With --svg, that chart (with CJK labels) is opened too and
// its font stack must draw real CJK glyphs (distinct from each other and from
// a missing glyph's box). Screenshots go to --shots.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
if (!args.html || !args.expect || !args.layers || !args.heads) {
  console.error('usage: node explorer.mjs --html FILE --expect KIND=QxK,... --layers N --heads H [--svg FILE] [--shots DIR]');
  process.exit(2);
}
const expect = Object.fromEntries(args.expect.split(',').map((kv) => {
  const [k, v] = kv.split('=');
  const [q, n] = v.split('x').map(Number);
  return [k, { q, k: n }];
}));
const L = +args.layers, H = +args.heads;
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
  // the flags this machine needs (a fresh profile is playwright's own)
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

  const cells = () => page.locator('#chart rect.cell').count();
  const attr = (name) => page.getAttribute('#heatmap', name);
  const fills = () => page.$$eval('#heatmap rect.cell', (rs) => rs.map((r) => r.getAttribute('fill')).join(' '));

  // what the page starts with: cross-attention, last layer, head 1
  check((await attr('data-kind')) === 'cross' && +(await attr('data-layer')) === L && +(await attr('data-head')) === 1,
    `starts on cross-attention, layer ${L}, head 1`);
  check((await cells()) === expect.cross.q * expect.cross.k,
    `cross heatmap has ${expect.cross.q}x${expect.cross.k} cells (found ${await cells()})`);
  if (shots) await page.screenshot({ path: path.join(shots, 'explorer-heatmap.png'), fullPage: true });

  // switch layer, then head
  let before = await fills();
  await page.selectOption('#layer', String(0));
  check(+(await attr('data-layer')) === 1 && (await page.textContent('#chart-title')).includes('layer 1'),
    'choosing layer 1 redraws the heatmap with its title');
  check((await fills()) !== before, 'layer 1 has other colours than layer ' + L);
  before = await fills();
  await page.selectOption('#head', String(H - 1));
  check(+(await attr('data-head')) === H && (await page.textContent('#chart-title')).includes('head ' + H),
    `choosing head ${H} redraws the heatmap with its title`);
  check((await fills()) !== before, `head ${H} has other colours than head 1`);
  check((await cells()) === expect.cross.q * expect.cross.k, 'the cell count stays after switching');
  check(page.url().includes('layer=1') && page.url().includes('head=' + H), 'the address records the choice: ' + page.url().replace(/^.*#/, '#'));

  // hover: the token pair and the weight
  const cell = page.locator('#heatmap rect.cell').nth(expect.cross.k + 1);   // query 2, key 2
  await cell.hover();
  const tip = await page.textContent('#tip');
  check(await page.isVisible('#tip') && /query #2 .*\nkey #2 .*\nweight \d\.\d{4}/.test(tip),
    'hovering a cell shows the pair and the weight: ' + JSON.stringify(tip));
  const q2 = await page.evaluate(() => window.atExplorer.data.tgt[1]);
  check(tip.includes(q2), 'the tooltip names the query token ' + JSON.stringify(q2));

  // every kind: the expected number of cells
  for (const kind of Object.keys(expect)) {
    await page.selectOption('#kind', { label: { enc_self: 'Encoder self-attention', dec_self: 'Decoder self-attention', cross: 'Cross-attention' }[kind] });
    const n = await cells();
    check((await attr('data-kind')) === kind && n === expect[kind].q * expect[kind].k,
      `${kind}: ${expect[kind].q}x${expect[kind].k} cells (found ${n})`);
  }

  // the line view
  await page.selectOption('#kind', { label: 'Cross-attention' });
  await page.check('input[name=view][value=lines]');
  const links = await page.locator('#lines line.link').count();
  check(links > 0 && (await page.locator('#chart rect.cell').count()) === 0, `line view draws ${links} lines`);
  await page.locator('#lines text.tok').first().hover();
  check((await page.textContent('#tip')).includes('weight'), 'hovering a token in the line view shows its strongest key');
  if (shots) await page.screenshot({ path: path.join(shots, 'explorer-lines.png'), fullPage: true });
  await page.check('input[name=view][value=heatmap]');

  // the statistics table: a row per head; a click shows that head
  const rows = await page.locator('#stats tbody tr').count();
  check(rows === L * H, `statistics table has ${L * H} rows (found ${rows})`);
  await page.locator('#stats tbody tr').nth(H + 1 < rows ? H + 1 : 0).click();
  const st = await page.evaluate(() => window.atExplorer.state());
  check(H + 1 < rows ? st.layer === 1 && st.head === 1 : true, 'clicking a statistics row selects that head: ' + JSON.stringify(st));
  check((await page.locator('#js tbody tr').count()) === H, 'head similarity table is heads x heads');

  // a deep link
  await page.goto(htmlUrl + `#kind=enc_self&layer=${L}&head=${H}`);
  await page.waitForSelector('html[data-ready="true"]');
  check((await attr('data-kind')) === 'enc_self' && +(await attr('data-layer')) === L && +(await attr('data-head')) === H,
    'a deep link (#kind=enc_self&layer=…&head=…) opens that head');

  // the CJK chart
  if (args.svg) {
    const svgUrl = pathToFileURL(path.resolve(args.svg)).href;
    await page.goto(svgUrl);
    const box = await page.evaluate(() => {
      const r = document.documentElement;
      return { w: +r.getAttribute('width'), h: +r.getAttribute('height'), font: r.getAttribute('font-family'),
        texts: Array.from(document.querySelectorAll('text')).map((t) => t.textContent).join(' ') };
    });
    check(/[\u3040-\u30ff\u4e00-\u9fff]/.test(box.texts), 'the CJK chart has CJK labels');
    if (shots) {
      await page.setViewportSize({ width: Math.ceil(box.w), height: Math.ceil(box.h) });
      await page.screenshot({ path: path.join(shots, 'cjk-heatmap.png') });
    }
    const g = await page.evaluate((font) => {
      function draw(s) {
        const c = new OffscreenCanvas(80, 40), x = c.getContext('2d');
        x.fillStyle = '#fff'; x.fillRect(0, 0, 80, 40);
        x.fillStyle = '#000'; x.font = '28px ' + font; x.textBaseline = 'middle';
        x.fillText(s, 4, 20);
        const d = x.getImageData(0, 0, 80, 40).data;
        let ink = 0, sig = '';
        for (let i = 0; i < d.length; i += 4) { const v = d[i] < 128 ? 1 : 0; ink += v; sig += v; }
        return { ink, sig };
      }
      const cat = draw('\u732b'), sit = draw('\u5ea7'), box1 = draw('\ue000'), box2 = draw('\ue001');
      return { cat: cat.ink, sit: sit.ink, same: cat.sig === sit.sig, tofu: cat.sig === box1.sig || cat.sig === box2.sig };
    }, box.font);
    check(g.cat > 40 && g.sit > 40 && !g.same && !g.tofu,
      `the chart's fonts draw real CJK glyphs (ink ${g.cat} and ${g.sit} pixels, distinct: ${!g.same}, not a missing-glyph box: ${!g.tofu})`);
  }

  const pages = new Set([htmlUrl, args.svg ? pathToFileURL(path.resolve(args.svg)).href : htmlUrl]);
  const foreign = requests.filter((u) => !pages.has(u.replace(/#.*$/, '')));
  check(foreign.length === 0, 'no request but the files themselves' + (foreign.length ? ': ' + foreign.slice(0, 5).join(' ') : ` (${requests.length} requests)`));
  check(consoleErrors.length === 0, 'no console error' + (consoleErrors.length ? ': ' + consoleErrors.slice(0, 5).join(' | ') : ''));
} finally {
  await browser.close();
}
console.log(`explorer: ${checks - failures.length} passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
