#!/bin/sh
# A full-size zoo model whose kernels are not all written yet (LeViT's attention) against the
# original PyTorch implementation through the reference interpreter: random weights with random
# BatchNorm statistics (tests/fixtures/torch_reference.py), the deploy graph (every fold and fusion
# applied) run by compiler/interpreter.lua, within 1e-4 of the largest output magnitude.
# Usage: full_interpreter.sh MODEL
. "$(dirname "$0")/lib.sh"
model=$1
/usr/bin/python3 "$FIXTURES/torch_reference.py" "$model" "$SCRATCH" > /dev/null
cd "$FOLDC_ROOT"
LUA_PATH="compiler/?.lua;compiler/?/init.lua;./?.lua;;" luajit -e "
local pipeline, passes = require 'pipeline', require 'passes'
local interpreter, npy = require 'interpreter', require 'weights.npy'
local base = '$SCRATCH/$model'
local graph = passes.run(pipeline.bound_graph('$model', base .. '.safetensors'))
local rel = interpreter.rel_diff(interpreter.run(graph, npy.read(base .. '.input.npy'))[1], npy.read(base .. '.output.npy'))
print(string.format('max rel diff %.3g (deploy graph in the interpreter, tol 1e-4)', rel))
os.exit(rel <= 1e-4 and 0 or 1)"
