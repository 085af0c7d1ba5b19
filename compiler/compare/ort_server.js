// ONNX Runtime side of `foldc bench --compare` (a line protocol on stdin/stdout, so the runs can be
// interleaved with foldc's and PyTorch's without restarting anything):
//   node ort_server.js MODEL.onnx INPUT.npy THREADS     (NODE_PATH: where onnxruntime-node lives)
// prints "ready <version> <max |y - want|/max|want| or -1>" once the session is built, then answers
//   "run K"  -> "ms t1 t2 ... tK"   (wall ms of K back-to-back runs)
//   "rss"    -> "rss BYTES"         (peak resident set of this process)
// CPU execution provider, all graph optimisations, sequential execution, intra-op threads = THREADS.
'use strict';
const fs = require('fs');
const readline = require('readline');
const ort = require('onnxruntime-node');

function readNpy(path) {
  const b = fs.readFileSync(path);
  const major = b[6];
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const off = (major === 1 ? 10 : 12) + hlen;
  const header = b.slice(major === 1 ? 10 : 12, off).toString('latin1');
  if (!header.includes("'<f4'")) throw new Error(path + ': not float32');
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',').filter((s) => s.trim()).map(Number);
  const data = new Float32Array(b.buffer.slice(b.byteOffset + off, b.byteOffset + b.length));
  return { data, shape };
}

async function main() {
  const [model, inputPath, threadsArg] = process.argv.slice(2);
  const threads = Number(threadsArg || '1');
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'], graphOptimizationLevel: 'all', executionMode: 'sequential',
    intraOpNumThreads: threads, interOpNumThreads: 1,
  });
  const x = readNpy(inputPath);
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) };
  let rel = -1;
  const wantPath = inputPath.replace(/\.input\.npy$/, '.output.npy');
  const first = await session.run(feeds);
  if (fs.existsSync(wantPath)) {
    const want = readNpy(wantPath).data, got = first[session.outputNames[0]].data;
    let md = 0, mw = 0;
    for (let i = 0; i < want.length; i++) {
      md = Math.max(md, Math.abs(got[i] - want[i]));
      mw = Math.max(mw, Math.abs(want[i]));
    }
    rel = md / mw;
  }
  let version = 'unknown';
  try { version = require('onnxruntime-node/package.json').version; } catch (e) { /* keep unknown */ }
  process.stdout.write(`ready ${version} ${rel}\n`);
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    const [cmd, arg] = line.trim().split(/\s+/);
    if (cmd === 'run') {
      const ms = [];
      for (let i = 0; i < Number(arg); i++) {
        const t0 = process.hrtime.bigint();
        await session.run(feeds);
        ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      process.stdout.write('ms ' + ms.join(' ') + '\n');
    } else if (cmd === 'rss') {
      process.stdout.write(`rss ${process.resourceUsage().maxRSS * 1024}\n`);
    } else if (cmd === 'quit') {
      break;
    }
  }
  process.exit(0);
}

main().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(1); });
