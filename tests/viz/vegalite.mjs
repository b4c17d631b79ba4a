// Checks libat's Vega-Lite charts with the real thing:
//   node vegalite.mjs [--render DIR] FILE_OR_DIR...
// For every *.vl.json: it parses as JSON and declares the v5 schema; vega-lite
// compiles it without a warning; Vega runs the compiled spec headless (no
// loader: the data must be inline) and renders it to SVG. For attention
// charts it also checks what the transforms made of the data: every (layer,
// head, query) row expands to keys 0 .. n-1 in order, each with the weight
// the file holds, and the axis labels are the tokens. With --render, the SVG
// Vega drew is written to DIR (to look at).
import fs from 'node:fs';
import path from 'node:path';
import * as vl from 'vega-lite';
import * as vega from 'vega';

const args = process.argv.slice(2);
let renderDir = null;
const inputs = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--render') renderDir = args[++i];
  else inputs.push(args[i]);
}
if (!inputs.length) {
  console.error('usage: node vegalite.mjs [--render DIR] FILE_OR_DIR...');
  process.exit(2);
}
const files = [];
for (const p of inputs) {
  if (fs.statSync(p).isDirectory())
    for (const f of fs.readdirSync(p).sort()) {
      if (f.endsWith('.vl.json')) files.push(path.join(p, f));
    }
  else files.push(p);
}
if (!files.length) {
  console.error('vegalite.mjs: no .vl.json file in ' + inputs.join(' '));
  process.exit(1);
}

// A loader that refuses everything: a chart must not need the network or a file.
const noLoader = vega.loader();
noLoader.load = async (uri) => { throw new Error('the spec tried to load ' + uri); };
noLoader.sanitize = async (uri) => { throw new Error('the spec tried to load ' + uri); };

function xmlEscape(s) {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

async function check(file) {
  const problems = [];
  const spec = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (!/vega-lite\/v5\.json$/.test(spec.$schema || ''))
    problems.push('$schema is not Vega-Lite v5: ' + spec.$schema);
  const warnings = [];
  const logger = {
    level() { return this; },
    error(...m) { warnings.push('error: ' + m.join(' ')); return this; },
    warn(...m) { warnings.push('warning: ' + m.join(' ')); return this; },
    info() { return this; },
    debug() { return this; },
  };
  const vg = vl.compile(spec, { logger }).spec;
  for (const w of warnings) problems.push('vega-lite ' + w);

  const view = new vega.View(vega.parse(vg), { renderer: 'none', loader: noLoader });
  view.logLevel(vega.Warn);
  const vegaWarnings = [];
  view.logger({
    level() { return this; },
    error(...m) { vegaWarnings.push('error: ' + m.join(' ')); return this; },
    warn(...m) { vegaWarnings.push('warning: ' + m.join(' ')); return this; },
    info() { return this; },
    debug() { return this; },
  });
  await view.runAsync();
  const svg = await view.toSVG();
  for (const w of vegaWarnings) problems.push('vega ' + w);
  if (renderDir) {
    fs.mkdirSync(renderDir, { recursive: true });
    fs.writeFileSync(path.join(renderDir, path.basename(file).replace(/\.vl\.json$/, '.vega.svg')), svg);
  }

  const rows = spec.data && spec.data.values;
  const params = Object.fromEntries((spec.params || []).map((p) => [p.name, p.value]));
  let ncells = 0;
  if (rows && rows.length && Array.isArray(rows[0].w)) {
    // attention: find the expanded data set and compare it with the file
    const byRow = new Map(rows.map((r) => [r.layer + '/' + r.head + '/' + r.q, r.w]));
    let found = null;
    for (const name of Object.keys(vg.data ? Object.fromEntries(vg.data.map((d) => [d.name, 1])) : {})) {
      let t;
      try { t = view.data(name); } catch (e) { continue; }
      if (t && t.length && 'weight' in t[0] && 'k' in t[0]) { found = t; break; }
    }
    if (!found) {
      problems.push('no data set with weight and k after the transforms');
    } else {
      const seen = new Map();
      for (const t of found) {
        const key = t.layer + '/' + t.head + '/' + t.q;
        const w = byRow.get(key);
        if (!w) { problems.push('a weight of unknown row ' + key); break; }
        if (w[t.k] !== t.weight) {
          problems.push(`row ${key} key ${t.k}: weight ${t.weight}, the file says ${w[t.k]}`);
          break;
        }
        if (t.query !== params.rowTokens[t.q] || t.key !== params.colTokens[t.k]) {
          problems.push(`row ${key} key ${t.k}: tokens ${t.query} / ${t.key}`);
          break;
        }
        seen.set(key, (seen.get(key) || 0) + 1);
      }
      for (const [key, w] of byRow)
        if (seen.get(key) !== w.length) {
          problems.push(`row ${key}: ${seen.get(key) || 0} keys after the transforms, ${w.length} in the file`);
          break;
        }
      ncells = found.length;
    }
    // the first key token is an axis label (always drawn: overlap removal keeps the first)
    const first = params.colTokens[0];
    if (!svg.includes('>' + xmlEscape(first) + '<'))
      problems.push('the SVG has no axis label ' + JSON.stringify(first));
  }
  return { problems, ncells };
}

let failed = 0, passed = 0;
for (const f of files) {
  try {
    const { problems, ncells } = await check(f);
    if (problems.length) {
      failed++;
      console.log('FAIL ' + f);
      for (const p of problems.slice(0, 10)) console.log('  ' + p);
    } else {
      passed++;
      console.log('ok   ' + f + (ncells ? ` (${ncells} cells)` : ''));
    }
  } catch (e) {
    failed++;
    console.log('FAIL ' + f + ': ' + (e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e));
  }
}
console.log(`vegalite: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
