"""sizeof and alignof of the TFLM structs that TFLM's arena holds per model, per tensor, per
node and per kernel, for a 64-bit host and for the Cortex-M7, read from TFLM's own headers.

Not run by the tests: TFLM's sources are not installable from the registries the project may
use. Given checkouts of TFLM, flatbuffers (the version TFLM's schema_generated.h asserts) and
gemmlowp (its fixedpoint headers), it compiles one translation unit per target with each
struct's size and alignment as the sizes of empty symbols, reads them back with `nm -S`, and
prints the table that tflite_train/tflm_memory.py holds (TFLM_STRUCTS):

    python benchmarks/tflm_struct_sizes.py --tflm TFLM --flatbuffers FB --gemmlowp GEMMLOWP

The build defines what TFLM's own builds define (TF_LITE_STATIC_MEMORY; no compression).
arm-none-eabi-g++ uses short enums (the AAPCS for bare metal), as a Cortex-M build of TFLM
with it does.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

# name -> C++ type. micro_allocator.cc is included for MicroBuiltinDataAllocator, which it
# defines in an unnamed namespace.
STRUCTS = {
    "TfLiteEvalTensor": "TfLiteEvalTensor",
    "TfLiteTensor": "TfLiteTensor",
    "TfLiteAffineQuantization": "TfLiteAffineQuantization",
    "NodeAndRegistration": "tflite::NodeAndRegistration",
    "SubgraphAllocations": "tflite::SubgraphAllocations",
    "ScratchBufferHandle": "tflite::ScratchBufferHandle",
    "SingleArenaBufferAllocator": "tflite::SingleArenaBufferAllocator",
    "RecordingSingleArenaBufferAllocator": "tflite::RecordingSingleArenaBufferAllocator",
    "GreedyMemoryPlanner": "tflite::GreedyMemoryPlanner",
    "MicroAllocator": "tflite::MicroAllocator",
    "RecordingMicroAllocator": "tflite::RecordingMicroAllocator",
    "MicroBuiltinDataAllocator": "tflite::MicroBuiltinDataAllocator",
    "OpDataConv": "tflite::OpDataConv",
    "OpDataFullyConnected": "tflite::OpDataFullyConnected",
    "OpDataAdd": "tflite::OpDataAdd",
    "OpDataPad": "tflite::OpData",
    "OpDataPooling": "tflite::OpDataPooling",
    "OpDataReduce": "tflite::OpDataReduce",
    "SoftmaxParams": "tflite::SoftmaxParams",
    "OpDataQuantizeReference": "tflite::OpDataQuantizeReference",
    "DequantizeOpData": "tflite::DequantizeOpData",
    "TfLiteConvParams": "TfLiteConvParams",
    "TfLiteDepthwiseConvParams": "TfLiteDepthwiseConvParams",
    "TfLiteFullyConnectedParams": "TfLiteFullyConnectedParams",
    "TfLiteAddParams": "TfLiteAddParams",
    "TfLitePoolParams": "TfLitePoolParams",
    "TfLiteReducerParams": "TfLiteReducerParams",
    "TfLiteReshapeParams": "TfLiteReshapeParams",
    "TfLiteSoftmaxParams": "TfLiteSoftmaxParams",
}

HEADERS = """
#include "tensorflow/lite/micro/micro_allocator.cc"
#include "tensorflow/lite/micro/recording_micro_allocator.h"
#include "tensorflow/lite/micro/arena_allocator/recording_single_arena_buffer_allocator.h"
#include "tensorflow/lite/micro/kernels/conv.h"
#include "tensorflow/lite/micro/kernels/fully_connected.h"
#include "tensorflow/lite/micro/kernels/add.h"
#include "tensorflow/lite/micro/kernels/pad.h"
#include "tensorflow/lite/micro/kernels/pooling.h"
#include "tensorflow/lite/micro/kernels/reduce.h"
#include "tensorflow/lite/micro/kernels/softmax.h"
#include "tensorflow/lite/micro/kernels/quantize.h"
#include "tensorflow/lite/micro/kernels/dequantize.h"
"""

# The pinned wheel (x86-64) is built with TFLM's compression support (its kernels' op data
# carry the compressed-weights scratch indices; the wheel binary holds the decompression
# code); an application's TFLM build is not, by default (TFLM's Makefile and Bazel).
TARGETS = {
    "wheel-x86_64": ["g++", "-DUSE_TFLM_COMPRESSION=1"],
    "cortex-m7": ["arm-none-eabi-g++", "-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16",
                  "-mfloat-abi=hard"],
}


def probe_source() -> str:
    lines = [HEADERS]
    for name, cpp in STRUCTS.items():
        lines.append(f'extern "C" const char size_{name}[sizeof({cpp})] = {{}};')
        lines.append(f'extern "C" const char align_{name}[alignof({cpp})] = {{}};')
    return "\n".join(lines) + "\n"


def symbol_sizes(obj: Path) -> dict[str, int]:
    out = subprocess.run(["nm", "-S", str(obj)], check=True, capture_output=True,
                         text=True).stdout
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3].startswith(("size_", "align_")):
            sizes[parts[3]] = int(parts[1], 16)
    return sizes


def measure(tflm: Path, flatbuffers: Path, gemmlowp: Path) -> dict[str, dict[str, list[int]]]:
    table = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.cc"
        src.write_text(probe_source())
        for target, compiler in TARGETS.items():
            obj = Path(tmp) / f"{target}.o"
            subprocess.run([*compiler, "-std=c++17", "-fno-exceptions", "-fno-rtti", "-c",
                            "-DTF_LITE_STATIC_MEMORY=1",
                            f"-I{tflm}", f"-I{flatbuffers / 'include'}", f"-I{gemmlowp}",
                            str(src), "-o", str(obj)], check=True)
            sizes = symbol_sizes(obj)
            table[target] = {name: [sizes[f"size_{name}"], sizes[f"align_{name}"]]
                             for name in STRUCTS}
    return table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tflm", type=Path, required=True, help="a TFLM checkout")
    ap.add_argument("--flatbuffers", type=Path, required=True,
                    help="a flatbuffers checkout at the version TFLM's schema asserts")
    ap.add_argument("--gemmlowp", type=Path, required=True, help="a gemmlowp checkout")
    args = ap.parse_args()
    table = measure(args.tflm, args.flatbuffers, args.gemmlowp)
    print(f"{'struct':<40}{'wheel':>14}{'cortex-m7':>14}   (size, align)")
    for name in STRUCTS:
        a, b = table["wheel-x86_64"][name], table["cortex-m7"][name]
        print(f"{name:<40}{str(tuple(a)):>14}{str(tuple(b)):>14}")
    json.dump(table, sys.stdout, indent=None)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
