// The ONNX Runtime side of the peer benchmark (issue 12): onnxruntime-node
// running the ONNX export that torch_peer.py prepare wrote.
//
//   node ort_peer.mjs check DIR
//       run DIR/model.onnx on DIR/check/{src,tgt,src_mask,tgt_mask}.bin (the
//       check batch; shapes in DIR/check.json) and write the log-probs to
//       DIR/check/ort_logprobs.bin (float32) for torch_peer.py compare.
//   node ort_peer.mjs bench DIR [--batch B] [--src-len S] [--tgt-len T]
//                         [--iters K] [--warmup W] [--threads N]
//       time session.run of the forward pass on random ids (1..999, no
//       padding: all-true source mask, the subsequent mask on the target, as
//       the reference builds them) and print one JSON object: median and min
//       ms, the versions.
//
// Install the package first: `npm ci --ignore-scripts` in this folder.
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { cpus } from 'node:os';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const ort = require('onnxruntime-node');

function usage(msg) {
  process.stderr.write(`ort_peer: ${msg}\nusage: node ort_peer.mjs check DIR | ` +
                       'bench DIR [--batch B] [--src-len S] [--tgt-len T] [--iters K] ' +
                       '[--warmup W] [--threads N]\n');
  process.exit(2);
}

function options(args) {
  const o = { batch: 1, 'src-len': 32, 'tgt-len': 32, iters: 10, warmup: 2,
              threads: cpus().length };
  for (let i = 0; i < args.length; i += 2) {
    const key = args[i].replace(/^--/, '');
    const val = Number(args[i + 1]);
    if (!(key in o) || !Number.isInteger(val) || val < (key === 'warmup' ? 0 : 1))
      usage(`bad option ${args[i]} ${args[i + 1] ?? ''}`);
    o[key] = val;
  }
  return o;
}

async function session(dir, threads) {
  return ort.InferenceSession.create(join(dir, 'model.onnx'), {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
  });
}

function i64(path) {
  const b = readFileSync(path);
  return new BigInt64Array(b.buffer, b.byteOffset, b.length / 8);
}

function u8(path) {
  const b = readFileSync(path);
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

async function check(dir) {
  const meta = JSON.parse(readFileSync(join(dir, 'check.json'), 'utf8'));
  const [B, T] = meta.shape;
  const src = i64(join(dir, 'check', 'src.bin'));
  const s = src.length / B;  // the source length: check.json has the log-probs' shape
  if (!Number.isInteger(s)) usage('check.json does not describe the batch');
  const feeds = {
    src: new ort.Tensor('int64', src, [B, s]),
    tgt: new ort.Tensor('int64', i64(join(dir, 'check', 'tgt.bin')), [B, T]),
    src_mask: new ort.Tensor('bool', u8(join(dir, 'check', 'src_mask.bin')), [B, 1, s]),
    tgt_mask: new ort.Tensor('bool', u8(join(dir, 'check', 'tgt_mask.bin')), [B, T, T]),
  };
  const sess = await session(dir, 1);
  const out = (await sess.run(feeds)).logprobs;
  const path = join(dir, 'check', 'ort_logprobs.bin');
  writeFileSync(path + '.tmp', Buffer.from(out.data.buffer, out.data.byteOffset,
                                           out.data.byteLength));
  renameSync(path + '.tmp', path);
  console.log(`ort_peer check: log-probs ${out.dims.join('x')} written to ${path}`);
}

function forwardFeeds(B, S, T) {
  let seed = 88172645463325252n;  // xorshift64: any fixed ids do
  const mask64 = (1n << 64n) - 1n;
  const ids = (n) => {
    const a = new BigInt64Array(n);
    for (let i = 0; i < n; i++) {
      seed ^= (seed << 13n) & mask64; seed ^= seed >> 7n; seed ^= (seed << 17n) & mask64;
      a[i] = 1n + (seed % 999n);
    }
    return a;
  };
  const tm = new Uint8Array(B * T * T);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < T; i++)
      for (let j = 0; j <= i; j++) tm[(b * T + i) * T + j] = 1;
  return {
    src: new ort.Tensor('int64', ids(B * S), [B, S]),
    tgt: new ort.Tensor('int64', ids(B * T), [B, T]),
    src_mask: new ort.Tensor('bool', new Uint8Array(B * S).fill(1), [B, 1, S]),
    tgt_mask: new ort.Tensor('bool', tm, [B, T, T]),
  };
}

async function bench(dir, o) {
  const sess = await session(dir, o.threads);
  const feeds = forwardFeeds(o.batch, o['src-len'], o['tgt-len']);
  for (let i = 0; i < o.warmup; i++) await sess.run(feeds);
  const ms = [];
  for (let i = 0; i < o.iters; i++) {
    const t0 = process.hrtime.bigint();
    await sess.run(feeds);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const sorted = [...ms].sort((a, b) => a - b);
  const n = sorted.length;
  const median = n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  const pkg = JSON.parse(readFileSync(require.resolve('onnxruntime-node/package.json'), 'utf8'));
  console.log(JSON.stringify({
    bench: 'forward', peer: 'onnxruntime', onnxruntime_node: pkg.version,
    node: process.versions.node, threads: o.threads,
    config: { batch: o.batch, src_len: o['src-len'], tgt_len: o['tgt-len'], iters: o.iters,
              warmup: o.warmup },
    median_ms: median, min_ms: sorted[0],
  }));
}

const [cmd, dir, ...rest] = process.argv.slice(2);
if (!dir) usage('a command and DIR are required');
if (cmd === 'check') await check(dir);
else if (cmd === 'bench') await bench(dir, options(rest));
else usage(`unknown command ${cmd}`);
