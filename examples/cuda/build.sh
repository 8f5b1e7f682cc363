#!/bin/sh
# Builds examples/cuda/saxpy for the GPU architectures current CUDA toolkits support (Turing → Hopper, plus PTX for
# newer GPUs). Set NVCC to another compiler, or CUDA_ARCH_FLAGS to e.g. "-arch=native" on the GPU host itself.
set -eu
cd "$(dirname "$0")"
NVCC="${NVCC:-nvcc}"
ARCH_FLAGS="${CUDA_ARCH_FLAGS:--gencode arch=compute_75,code=sm_75 -gencode arch=compute_80,code=sm_80 -gencode arch=compute_86,code=sm_86 -gencode arch=compute_89,code=sm_89 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90}"
# shellcheck disable=SC2086
"$NVCC" -O2 -std=c++17 $ARCH_FLAGS -o saxpy saxpy.cu
echo "built $(pwd)/saxpy"
