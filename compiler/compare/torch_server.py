#!/usr/bin/python3
"""PyTorch side of `foldc bench --compare`, with the line protocol of ort_server.js:
    /usr/bin/python3 torch_server.py MODEL.pt INPUT.npy THREADS MODE
MODE: eager (the eval() module) or script (torch.jit.trace + torch.jit.freeze, TorchScript).
Prints "ready <torch version> <rel diff vs MODEL.output.npy or -1>", then answers "run K" with
"ms t1 ... tK" and "rss" with "rss BYTES" (peak RSS of this process). Threads: THREADS intra-op,
1 inter-op."""
import os
import resource
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, '..', '..', 'tests', 'fixtures')))


def main():
    model_path, input_path, threads, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    model = torch.load(model_path).eval()
    x = torch.from_numpy(np.load(input_path))
    with torch.no_grad():
        if mode == 'script':
            model = torch.jit.freeze(torch.jit.trace(model, x).eval())
        y = model(x).numpy()
        for _ in range(2):
            model(x)
    want_path = input_path.replace('.input.npy', '.output.npy')
    rel = -1.0
    if os.path.exists(want_path):
        want = np.load(want_path)
        rel = float(np.abs(y - want).max() / np.abs(want).max())
    print('ready %s %g' % (torch.__version__, rel), flush=True)
    with torch.no_grad():
        for line in sys.stdin:
            w = line.split()
            if not w:
                continue
            if w[0] == 'run':
                ms = []
                for _ in range(int(w[1])):
                    t0 = time.perf_counter()
                    model(x)
                    ms.append((time.perf_counter() - t0) * 1e3)
                print('ms ' + ' '.join('%.4f' % t for t in ms), flush=True)
            elif w[0] == 'rss':
                print('rss %d' % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024), flush=True)
            elif w[0] == 'quit':
                break


if __name__ == '__main__':
    main()
