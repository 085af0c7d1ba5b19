#!/usr/bin/python3
"""Side-by-side timing of one model under foldc, ONNX Runtime and PyTorch (`foldc bench --compare`).

    /usr/bin/python3 compiler/compare/compare.py --model NAME --dir DIR --foldc-main EXE --foldc-weights W
        [--threads 1] [--rounds 8] [--runs 5] [--ort-modules DIR] [--gflop G --peak P] [--json]

DIR holds what export.py wrote (NAME.onnx, NAME.pt, NAME.input.npy, NAME.output.npy). ONNX Runtime
(ort_server.js, npm onnxruntime-node) and PyTorch (torch_server.py: eager and frozen TorchScript) run
as long-lived processes; foldc's example program runs once per round (`--runs K --json`). Each
round runs K timed inferences on every runtime in turn (the order rotates), so a busy machine
slows all of them alike; the table gives each runtime's minimum over all rounds, the median of its
per-round minima, images per second (the input's first dimension: the batch, over the minimum),
ratios to foldc (>1: foldc is faster), with --gflop (the model's GFLOP a run: 2 x MACs of all its
images) and --peak (the FMA peak in GFLOP/s of the threads used, measured just before) the % of that
peak each runtime reaches, and peak RSS of its process.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


class Server:
    """A runtime behind the line protocol of ort_server.js / torch_server.py."""

    def __init__(self, label, argv, env=None):
        self.label = label
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        w = self.p.stdout.readline().split()
        if not w or w[0] != 'ready':
            raise RuntimeError('%s did not start (%s)' % (label, ' '.join(argv)))
        self.version, self.rel = w[1], float(w[2])

    def ask(self, line):
        self.p.stdin.write(line + '\n')
        self.p.stdin.flush()
        return self.p.stdout.readline().split()

    def run(self, k):
        return [float(t) for t in self.ask('run %d' % k)[1:]]

    def rss(self):
        return int(self.ask('rss')[1])

    def close(self):
        try:
            self.ask('quit')
        except (BrokenPipeError, OSError):
            pass
        self.p.wait()


class Foldc:
    """The bundle's example program, one process per round; peak RSS from wait4."""

    def __init__(self, main, weights, inp, threads):
        self.label, self.version, self.rel = 'foldc', '', -1.0
        self.argv = [main, '--weights', weights, '--input', inp, '--threads', str(threads), '--json']
        self.peak = 0
        want_path = inp.replace('.input.npy', '.output.npy')
        if os.path.exists(want_path):
            got_path = os.path.join(os.path.dirname(weights), 'compare.output.npy')
            subprocess.run(self.argv[:-1] + ['--output', got_path], check=True, stdout=subprocess.DEVNULL)
            got, want = np.load(got_path), np.load(want_path)
            self.rel = float(np.abs(got.reshape(want.shape) - want).max() / np.abs(want).max())

    def run(self, k):
        p = subprocess.Popen(self.argv + ['--runs', str(k)], stdout=subprocess.PIPE, text=True)
        out = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
        if status != 0:
            raise RuntimeError('foldc run failed: ' + out[-300:])
        self.peak = max(self.peak, usage.ru_maxrss * 1024)
        return [json.loads(out.strip().splitlines()[-1])['min_ms']]

    def rss(self):
        return self.peak

    def close(self):
        pass


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', required=True)
    p.add_argument('--dir', required=True)
    p.add_argument('--foldc-main', required=True)
    p.add_argument('--foldc-weights', required=True)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--rounds', type=int, default=8)
    p.add_argument('--runs', type=int, default=5)
    p.add_argument('--ort-modules', default=os.path.expanduser('~/.cache/foldc/ort/node_modules'))
    p.add_argument('--skip', default='', help='comma-separated runtimes to leave out: ort,script,eager')
    p.add_argument('--gflop', type=float, default=0.0)
    p.add_argument('--peak', type=float, default=0.0)
    p.add_argument('--json', action='store_true')
    a = p.parse_args()
    base = os.path.join(a.dir, a.model)
    inp = base + '.input.npy'
    skip = set(s for s in a.skip.split(',') if s)
    runners = [Foldc(a.foldc_main, a.foldc_weights, inp, a.threads)]
    env = dict(os.environ, NODE_PATH=a.ort_modules)
    if 'ort' not in skip:
        runners.append(Server('ONNX Runtime', ['node', os.path.join(HERE, 'ort_server.js'), base + '.onnx', inp,
                                               str(a.threads)], env))
    # PyTorch's GEMMs (its 1x1 convolutions) go to the system BLAS, OpenBLAS (bin/install-deps): as many
    # threads as the others get, and on AVX-512 CPUs OpenBLAS 0.3.21 misdetects the Skylake-X kernels
    # (shared/BASELINES.md), unless the caller says otherwise
    torch_env = dict(os.environ, OPENBLAS_NUM_THREADS=str(a.threads))
    if 'OPENBLAS_CORETYPE' not in os.environ and ' avx512f' in open('/proc/cpuinfo').read():
        torch_env['OPENBLAS_CORETYPE'] = 'SkylakeX'
    for mode, label in (('script', 'PyTorch TorchScript'), ('eager', 'PyTorch eager')):
        if mode not in skip:
            runners.append(Server(label, [sys.executable, os.path.join(HERE, 'torch_server.py'), base + '.pt', inp,
                                          str(a.threads), mode], torch_env))
    mins = {r.label: [] for r in runners}
    try:
        for rnd in range(a.rounds):
            order = runners[rnd % len(runners):] + runners[:rnd % len(runners)]
            for r in order:
                mins[r.label].append(min(r.run(a.runs)))
            print('round %d/%d: %s' % (rnd + 1, a.rounds, ', '.join('%s %.2f' % (r.label, mins[r.label][-1])
                                                                      for r in runners)), file=sys.stderr)
        rss = {r.label: r.rss() for r in runners}
    finally:
        for r in runners:
            r.close()
    best = {k: min(v) for k, v in mins.items()}
    med = {k: sorted(v)[len(v) // 2] for k, v in mins.items()}
    f = best['foldc']
    batch = int(np.load(inp, mmap_mode='r').shape[0])
    print('%s, %d thread(s), batch %d: min over %d interleaved rounds of %d runs' % (a.model, a.threads, batch,
                                                                                   a.rounds, a.runs))
    def of_peak(ms):
        return 100.0 * a.gflop / (ms * 1e-3) / a.peak if a.gflop > 0 and a.peak > 0 else -1.0

    if a.peak > 0:
        print('FMA peak measured now: %.1f GFLOP/s (%d thread(s)); the model: %.3f GFLOP a run' % (
            a.peak, a.threads, a.gflop))
    print('%-30s %9s %12s %9s %7s %9s %12s %s' % ('runtime', 'min ms', 'median ms', 'images/s', '% peak', 'x foldc',
                                                  'peak RSS MB', 'output vs PyTorch fp64'))
    for r in runners:
        name = r.label + (' ' + r.version if r.version else '')
        pk = of_peak(best[r.label])
        print('%-30s %9.2f %12.2f %9.1f %7s %9.2f %12.0f %s' % (name, best[r.label], med[r.label],
                                                                 1e3 * batch / best[r.label],
                                                                 '%.1f' % pk if pk >= 0 else '-', best[r.label] / f,
                                                                 rss[r.label] / 2**20,
                                                                 '%.1e' % r.rel if r.rel >= 0 else '-'))
    if a.json:
        print(json.dumps({'model': a.model, 'threads': a.threads, 'batch': batch, 'rounds': a.rounds, 'runs': a.runs,
                          'results': [{'runtime': r.label, 'version': r.version, 'min_ms': best[r.label],
                                       'median_ms': med[r.label], 'images_per_s': 1e3 * batch / best[r.label],
                                       'percent_of_peak': of_peak(best[r.label]),
                                       'ratio': best[r.label] / f,
                                       'peak_rss_bytes': rss[r.label], 'rel_diff': r.rel} for r in runners]}))


if __name__ == '__main__':
    main()
