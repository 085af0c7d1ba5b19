#!/usr/bin/python3
"""Make the inputs of `foldc bench NAME --compare`: one PyTorch model, with the random weights of
tests/fixtures/torch_reference.py, in the three forms the three runtimes read.

    /usr/bin/python3 compiler/compare/export.py MODEL OUTDIR [--seed S] [--opset 13] [--batch N]

Runs torch_reference.py MODEL OUTDIR (which writes MODEL.safetensors, MODEL.input.npy and the float64
reference MODEL.output.npy), rebuilds the same PyTorch module from torch_reference.MODELS, loads that
state_dict, switches re-parameterisable blocks to their deploy form where the module offers it
(`switch_to_deploy()` / `reparameterize()`, as the official RepVGG/ACNet/DBB code does, or the
mirror's whole-model reference conversion, torch_reference.DEPLOY; foldc folds the
same structure at build time, so every runtime gets the model's best form), and writes
MODEL.onnx (torch.onnx.export, opset 13) for ONNX Runtime and MODEL.pt (a pickled eval() module) for
the PyTorch side. Any model torch_reference.py knows works here. --batch N: the input holds N images
(the reference's, then N - 1 more from the seed), the ONNX model takes N, and MODEL.output.npy is
the float64 reference module's output on all N.
"""
import argparse
import json
import os
import struct
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.normpath(os.path.join(HERE, '..', '..', 'tests', 'fixtures'))
sys.path.insert(0, FIXTURES)
import torch_reference  # noqa: E402

NP = {'F32': '<f4', 'F64': '<f8', 'I64': '<i8'}


def read_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == '__metadata__':
            continue
        a, b = v['data_offsets']
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype=NP[v['dtype']]).reshape(v['shape']).copy())
    return out


def load_exact(model, sd):
    """load_state_dict, by copying into the module's own tensors: the DiracNet mirror keeps dotted
    child names in _modules (as the reference does), which load_state_dict reports as unexpected
    keys. The key sets must be equal."""
    own = model.state_dict()
    if set(own) != set(sd):
        sys.exit('export.py: state_dict keys differ: missing %s, extra %s' % (
            sorted(set(own) - set(sd))[:5], sorted(set(sd) - set(own))[:5]))
    with torch.no_grad():
        for k, v in sd.items():
            own[k].copy_(v)


def to_deploy(model):
    for m in list(model.modules()):
        for name in ('switch_to_deploy', 'reparameterize'):
            fn = getattr(m, name, None)
            if callable(fn) and m is not model:
                fn()
                break
    return model


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('model')
    p.add_argument('outdir')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--opset', type=int, default=13)
    p.add_argument('--batch', type=int, default=1)
    a = p.parse_args()
    if a.batch < 1:
        sys.exit('export.py: --batch must be positive')
    if a.model not in torch_reference.MODELS:
        sys.exit('export.py: %s has no PyTorch mirror in tests/fixtures/torch_reference.py (known: %s)' % (
            a.model, ', '.join(sorted(torch_reference.MODELS))))
    os.makedirs(a.outdir, exist_ok=True)
    subprocess.run([sys.executable, os.path.join(FIXTURES, 'torch_reference.py'), a.model, a.outdir,
                    '--seed', str(a.seed)], check=True, stdout=sys.stderr)
    base = os.path.join(a.outdir, a.model)
    model = torch_reference.MODELS[a.model]()
    load_exact(model, read_safetensors(base + '.safetensors'))
    if a.batch > 1:  # more images, and the float64 reference of all of them
        x1 = np.load(base + '.input.npy')
        more = np.random.default_rng([a.seed, 500]).standard_normal((a.batch - 1,) + x1.shape[1:]).astype(np.float32)
        xb = np.concatenate([x1, more])
        np.save(base + '.input.npy', xb)
        np.save(base + '.output.npy', torch_reference.reference_output(model.eval(), xb))
    if a.model in torch_reference.DEPLOY:  # a whole-model reference conversion
        model = torch_reference.DEPLOY[a.model](model.eval()).eval()
    else:
        model = to_deploy(model.eval()).eval()
    x = torch.from_numpy(np.load(base + '.input.npy'))
    with torch.no_grad():
        y = model(x).numpy()
    want = np.load(base + '.output.npy')
    rel = float(np.abs(y - want).max() / max(np.abs(want).max(), 1e-30))
    if rel > 1e-3:
        sys.exit('export.py: %s: the deploy-form module differs from the reference by %.3g' % (a.model, rel))
    torch.onnx.export(model, x, base + '.onnx.tmp', opset_version=a.opset, input_names=['input'],
                      output_names=['output'], do_constant_folding=True)
    os.replace(base + '.onnx.tmp', base + '.onnx')
    torch.save(model, base + '.pt.tmp')
    os.replace(base + '.pt.tmp', base + '.pt')
    print('%s: wrote %s.{safetensors,input.npy,output.npy,onnx,pt} (deploy form vs reference %.2g)' % (
        a.model, base, rel), file=sys.stderr)


if __name__ == '__main__':
    main()
