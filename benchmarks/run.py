"""`make bench`: every benchmark in this folder, each writing its JSON into benchmarks/ and
re-rendering its tables in RESULTS.md (benchmarks/results.py). Long: the transfer runs take
about an hour on one core, the mutation run about half an hour on two.

    .venv/bin/python benchmarks/run.py [--only NAME,...]
"""
import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRANSFER = ["transfer.py", "--steps", "1000", "--val", "1000"]
# name -> the command line (relative to benchmarks/) that writes the JSON its tables read
RUNS = {
    "forward_speed": ["forward_speed.py", "--json", "forward_speed.json"],
    "transfer": [*TRANSFER, "--json", "transfer_results.json"],
    "transfer_seed1": [*TRANSFER, "--seed", "1", "--variants", "qas,fp32",
                       "--json", "transfer_seed1.json"],
    "transfer_seed2": [*TRANSFER, "--seed", "2", "--variants", "qas,fp32",
                       "--json", "transfer_seed2.json"],
    "transfer_constant_lr": [*TRANSFER, "--constant-lr", "--json", "transfer_constant_lr.json"],
    "paper_memory": ["paper_memory.py", "--json", "paper_memory_results.json"],
    "mcu_kernels": ["mcu_kernels.py", "--json", "mcu_kernels.json"],
    "mcu_step": ["mcu_step.py", "--grad", "float32,int8,int8-1pass", "--json", "mcu_step.json"],
    "grad_memory": ["grad_memory.py", "--json", "grad_memory.json"],
    "transfer_int8_grads": ["transfer.py", "--steps", "1000", "--val", "3000", "--seeds", "0,1,2",
                            "--variants", "qas,fp32", "--grad", "float32,int8,int8-nearest",
                            "--json", "transfer_int8_grads.json"],
    "transfer_int8_grads_more": ["transfer.py", "--schemes", "bias-only", "--steps", "1000",
                                 "--val", "3000", "--seeds", "3,4,5", "--variants", "qas",
                                 "--grad", "float32,int8", "--json",
                                 "transfer_int8_grads_more.json"],
    "transfer_int8_grads_sparse_more": ["transfer.py", "--schemes",
                                        "schemes/person_detect_sparse.json", "--steps", "1000",
                                        "--val", "3000", "--seeds", "3,4,5", "--variants", "qas",
                                        "--grad", "float32,int8", "--json",
                                        "transfer_int8_grads_sparse_more.json"],
    # the int8 + QAS rows on the new head's 8x grid; the three above were measured on the
    # 16x grid of before 9c6f254 (rerun today, they give 8x rows)
    "transfer_head8x": ["transfer.py", "--steps", "1000", "--val", "3000", "--seeds", "0,1,2",
                        "--variants", "qas", "--grad", "int8", "--json",
                        "transfer_head8x.json"],
    "transfer_head8x_sparse_more": ["transfer.py", "--schemes",
                                    "schemes/person_detect_sparse.json", "--steps", "1000",
                                    "--val", "3000", "--seeds", "3,4,5", "--variants", "qas",
                                    "--grad", "int8", "--json",
                                    "transfer_head8x_sparse_more.json"],
    # the rows on the new head's 12x grid, augment's default since round 26 (fp32 again: its
    # initial head is the 12x grid's)
    "transfer_head12x": ["transfer.py", "--steps", "1000", "--val", "3000", "--seeds", "0,1,2",
                         "--variants", "qas,fp32", "--grad", "int8", "--json",
                         "transfer_head12x.json"],
    # round 27: int8 + QAS with the head's rounding residual, augment's default since (the
    # file's fp32 rows are transfer_head12x.json's: fp32 has no residual)
    "transfer_head_residual": ["transfer.py", "--steps", "1000", "--val", "3000", "--seeds",
                               "0,1,2", "--variants", "qas", "--grad", "int8", "--json",
                               "transfer_head_residual.json"],
    # round 28: today's defaults (head 12x with its residual), int8 against float32 and
    # nearest-rounded int8 gradients, fp32, and last:2 with --weight-headroom 2
    "transfer_round28": ["transfer.py", "--steps", "1000", "--val", "3000", "--seeds",
                         "0,1,2,3,4,5", "--variants", "qas,fp32", "--grad", "float32,int8",
                         "--json", "transfer_round28.json"],
    "transfer_round28_bias": ["transfer.py", "--schemes", "bias-only", "--steps", "1000",
                              "--val", "3000", "--seeds", "6,7,8,9,10,11", "--variants",
                              "qas,fp32", "--grad", "float32,int8", "--json",
                              "transfer_round28_bias.json"],
    "transfer_round28_bias2": ["transfer.py", "--schemes", "bias-only", "--steps", "1000",
                               "--val", "3000", "--seeds", "12,13,14,15,16,17,18,19,20,21,22,23",
                               "--variants", "qas", "--grad", "float32,int8", "--json",
                               "transfer_round28_bias2.json"],
    "transfer_round28_h2": ["transfer.py", "--schemes", "last:2", "--weight-headroom", "2",
                            "--steps", "1000", "--val", "3000", "--seeds", "0,1,2,3,4,5",
                            "--variants", "qas,fp32", "--grad", "int8", "--json",
                            "transfer_round28_h2.json"],
    # round 29: --weight-headroom auto on the schemes whose trained layers feed the head
    "transfer_round29_auto": ["transfer.py", "--schemes",
                              "last:2,schemes/person_detect_sparse.json", "--weight-headroom",
                              "auto", "--steps", "1000", "--val", "3000", "--seeds",
                              "0,1,2,3,4,5", "--variants", "qas", "--grad", "int8", "--json",
                              "transfer_round29_auto.json"],
    # round 29: both new defaults together (nearest, --weight-headroom auto)
    "transfer_round29_defaults": ["transfer.py", "--schemes",
                                  "last:2,schemes/person_detect_sparse.json",
                                  "--weight-headroom", "auto", "--steps", "1000", "--val",
                                  "3000", "--seeds", "0,1,2,3,4,5", "--variants", "qas",
                                  "--grad", "int8-nearest", "--json",
                                  "transfer_round29_defaults.json"],
    "transfer_round28_nearest": ["transfer.py", "--schemes", "bias-only", "--steps", "1000",
                                 "--val", "3000", "--seeds", "0,1,2,3,4,5,6,7,8,9,10,11",
                                 "--variants", "qas", "--grad", "int8-nearest", "--json",
                                 "transfer_round28_nearest.json"],
    "transfer_round28_nearest_ws": ["transfer.py", "--schemes",
                                    "last:2,schemes/person_detect_sparse.json", "--steps",
                                    "1000", "--val", "3000", "--seeds", "0,1,2,3,4,5",
                                    "--variants", "qas", "--grad", "int8-nearest", "--json",
                                    "transfer_round28_nearest_ws.json"],
    # where int8 + QAS's gap to fp32 comes from (branch accuracy): last:2 at the rule's rates,
    # and float32 activation gradients on the 8x head
    "transfer_rule_rates": ["transfer.py", "--schemes", "last:2", "--lr", "rule", "--steps",
                            "1000", "--val", "3000", "--seeds", "0,1,2", "--variants",
                            "qas,fp32", "--grad", "int8", "--json", "transfer_rule_rates.json"],
    "transfer_f32_8x": ["transfer.py", "--schemes", "last:2,schemes/person_detect_sparse.json",
                        "--steps", "1000", "--val", "3000", "--seeds", "0,1,2", "--variants",
                        "qas", "--grad", "float32", "--json", "transfer_f32_8x.json"],
    "checkpoint": ["checkpoint.py", "--json", "checkpoint.json"],
    "codegen": ["codegen.py", "--kernels", "dsp,portable", "--json", "codegen_results.json"],
    "codegen_int8": ["codegen.py", "--grad", "int8", "--no-full", "--kernels", "dsp,portable",
                     "--json", "codegen_int8.json"],
    # the same file's rows with one-pass int8 input gradients (after codegen_int8)
    "codegen_int8_fast": ["codegen.py", "--grad", "int8", "--no-full", "--models", "mcunet,mbv2",
                          "--kernels", "dsp", "--arena-limit", "131072", "--json",
                          "codegen_int8.json", "--merge"],
    # MCUNet's fastest program within the 138 KB (141,312 B): the arena may grow to
    # what its 75,368 B of .data/.bss (trained parameters, update states, the head's
    # residual since round 27: +1,600 B) and a stack of up to 5,988 B leave (61,556 until
    # round 27, whose residual took that program to 142,200 B; 61,664 before round 21, for
    # a 5,880 B stack; after codegen_int8)
    "codegen_int8_goal": ["codegen.py", "--grad", "int8", "--no-full", "--models", "mcunet",
                          "--kernels", "dsp", "--arena-limit", "59956", "--json",
                          "codegen_int8.json", "--merge"],
    # the same file's rows of `codegen --input rows` through each API (after codegen_int8)
    "codegen_int8_rows": ["codegen.py", "--grad", "int8", "--no-full", "--models", "mcunet,mbv2",
                          "--kernels", "dsp", "--input", "rows", "--rig-api", "rows", "--json",
                          "codegen_int8.json", "--merge"],
    "codegen_int8_rows_whole": ["codegen.py", "--grad", "int8", "--no-full", "--models",
                                "mcunet,mbv2", "--kernels", "dsp", "--input", "rows",
                                "--rig-api", "whole", "--json", "codegen_int8.json", "--merge"],
    # MobileNetV2's smallest program: the row API with the DSP kernels' smaller stack buffers
    "codegen_int8_rows_lean": ["codegen.py", "--grad", "int8", "--no-full", "--models", "mbv2",
                               "--kernels", "dsp", "--input", "rows", "--rig-api", "rows",
                               "--lean-stack", "--json", "codegen_int8.json", "--merge"],
    "codegen_sram": ["codegen_sram.py", "--json", "codegen_sram.json"],
    "codegen_profile": ["codegen.py", "--profile", "--models", "mcunet", "--grad", "int8",
                        "--kernels", "dsp,portable", "--json", "codegen_profile.json"],
    "codegen_profile_fast": ["codegen.py", "--profile", "--models", "mcunet", "--grad", "int8",
                             "--kernels", "dsp", "--arena-limit", "131072", "--json",
                             "codegen_profile.json", "--merge"],
    "mcu_forward": ["mcu_forward.py", "--rig-only", "--json", "mcu_forward.json"],
    "mcu_grad_dsp": ["mcu_grad_dsp.py", "--json", "mcu_grad_dsp.json"],
    "tflm_memory": ["tflm_memory.py", "--json", "tflm_memory.json"],
    "fuzz": ["fuzz.py", "--runs", "10000", "--glue", "300", "--seed", "0", "--jobs", "2",
             "--json", "fuzz_results.json"],
    # round 29: no mutants, every command on every seed of the wider corpus
    "fuzz_sweep": ["fuzz.py", "--sweep", "--jobs", "2", "--json", "fuzz_sweep.json"],
    "default_schedule": ["default_schedule.py", "--schedules", "inv50x2,inv30x3",
                         "--json", "default_schedule.json"],
    "person_ceiling": ["person_ceiling.py", "--json", "person_ceiling.json"],
    "person_head_bias": ["person_ceiling.py", "--head-bias", "--json", "person_head_bias.json"],
    "person_samples": ["person_ceiling.py", "--samples", "--json", "person_samples.json"],
    # round 22: gradient accumulation on 5,000 training / 3,000 validation features
    "person_batch": ["person_ceiling.py", "--batch", "--train", "5000", "--val", "3000",
                     "--json", "person_batch.json"],
    "batch_accumulators": ["person_ceiling.py", "--accumulators", "--json",
                           "batch_accumulators.json"],
    # round 18's "after" of the default rates (the "before" is a record, below)
    "default_rates_round18_int8": ["default_schedule.py", "--schedules", "default", "--models",
                                   "person,person_last2,person_sparse", "--grad", "int8",
                                   "--json", "default_rates_round18.json"],
    "default_rates_round18_float32": ["default_schedule.py", "--schedules", "default",
                                      "--models", "mcunet,mbv2", "--grad", "float32",
                                      "--json", "default_rates_round18.json"],
    # the head's rate at half and twice the rule's (RESULTS: ETA_HEAD 0.5 -> 1.0)
    "default_rates_round18_head_half": ["default_schedule.py", "--schedules", "default",
                                        "--models", "person", "--grad", "int8",
                                        "--head-factor", "0.5",
                                        "--json", "default_rates_round18.json"],
    "default_rates_round18_head_twice": ["default_schedule.py", "--schedules", "default",
                                         "--models", "person", "--grad", "int8",
                                         "--head-factor", "2",
                                         "--json", "default_rates_round18.json"],
    "probe_inputs": ["probe_inputs.py", "--json", "probe_inputs.json"],
    "default_runs": ["default_runs.py", "--seeds", "0,1,2", "--val", "3000", "--json",
                     "default_runs.json"],
    "train_speed": ["train_speed.py", "--json", "train_speed.json"],
    "search": ["search.py", "--speedup", "--json", "search_results.json"],
    "paper_accuracy": ["paper_accuracy.py", "--seeds", "0,1,2", "--steps", "1000", "--val",
                       "3000", "--jobs", "2", "--json", "paper_accuracy_results.json"],
    # seeds 3-5 of the product's default and fp32 (the same file; runs only what is missing)
    "paper_accuracy_more": ["paper_accuracy.py", "--seeds", "3,4,5", "--steps", "1000",
                            "--val", "3000", "--variants", "qas,fp32", "--grad", "int8",
                            "--jobs", "2", "--json", "paper_accuracy_results.json"],
    # seeds 6-11 of the same (round 26: the rows' margins to 0.5 point were within a
    # standard error at n=6)
    "paper_accuracy_more2": ["paper_accuracy.py", "--seeds", "6,7,8,9,10,11", "--steps",
                             "1000", "--val", "3000", "--variants", "qas,fp32", "--grad",
                             "int8", "--jobs", "2", "--json", "paper_accuracy_results.json"],
    # round 28: the rows that train pretrained weights with --weight-headroom 2 (they pair
    # with paper_accuracy_results.json's)
    "paper_accuracy_weight_headroom": ["paper_accuracy.py", "--schemes", "last:6,99kb",
                                       "--seeds", "0,1,2,3,4,5", "--steps", "1000", "--val",
                                       "3000", "--variants", "qas", "--weight-headroom", "2",
                                       "--jobs", "2", "--json",
                                       "paper_accuracy_weight_headroom.json"],
    # round 29: last:6 with --weight-headroom auto (2x on the layers feeding the head only;
    # the 99kb rows train none, and bias-only no pretrained weight: unchanged there)
    "paper_accuracy_weight_headroom_auto": ["paper_accuracy.py", "--schemes", "last:6",
                                            "--seeds", "0,1,2,3,4,5", "--steps", "1000",
                                            "--val", "3000", "--variants", "qas",
                                            "--weight-headroom", "auto", "--jobs", "2",
                                            "--json",
                                            "paper_accuracy_weight_headroom_auto.json"],
    # round 29: which trained layers fine-tuning grows past +-127 LSB (seed 0), every run;
    # then what clamping each costs fp32: the person detector and MCUNet, then MobileNetV2
    "weight_growth_all": ["weight_growth.py", "--runs",
                          "transfer:person:last:2,transfer:person:sparse,"
                          "paper:mcunet-5fps:last:6,paper:mcunet-5fps:99kb,"
                          "paper:mbv2-w0.35:last:6,paper:mbv2-w0.35:99kb", "--json",
                          "weight_growth_all.json"],
    "weight_growth": ["weight_growth.py", "--runs",
                      "transfer:person:last:2,transfer:person:sparse,paper:mcunet-5fps:last:6,"
                      "paper:mcunet-5fps:99kb", "--val", "3000", "--json", "weight_growth.json"],
    "weight_growth_mbv2": ["weight_growth.py", "--runs",
                           "paper:mbv2-w0.35:last:6,paper:mbv2-w0.35:99kb", "--val", "3000",
                           "--json", "weight_growth_mbv2.json"],
    # round 29: int8 gradients rounded to nearest on every row (they pair with
    # paper_accuracy_results.json's seeds: bias-only 0-11, the others 0-5)
    "paper_accuracy_nearest_bias": ["paper_accuracy.py", "--models", "mcunet-5fps,mbv2-w0.35",
                                    "--schemes", "bias-only", "--seeds",
                                    "0,1,2,3,4,5,6,7,8,9,10,11", "--steps", "1000", "--val",
                                    "3000", "--variants", "qas", "--grad", "int8-nearest",
                                    "--jobs", "1", "--json", "paper_accuracy_nearest.json"],
    "paper_accuracy_nearest": ["paper_accuracy.py", "--models", "mcunet-5fps,mbv2-w0.35",
                               "--schemes", "last:6,99kb", "--seeds", "0,1,2,3,4,5", "--steps",
                               "1000", "--val", "3000", "--variants", "qas", "--grad",
                               "int8-nearest", "--jobs", "1", "--json",
                               "paper_accuracy_nearest.json"],
    # the diagnostics of MobileNetV2 99kb's gap (same file, runs only what is missing)
    "paper_accuracy_gap": ["paper_accuracy.py", "--models", "mbv2-w0.35", "--schemes", "99kb",
                           "--seeds", "0,1,2,3,4,5", "--variants",
                           "fp32-fq,fp32-sr,fp32-fq-sr,fp32-srh,fp32-srb,qas", "--grad",
                           "float32", "--json", "paper_accuracy_gap.json"],
    "paper_accuracy_gap_nearest": ["paper_accuracy.py", "--models", "mbv2-w0.35", "--schemes",
                                   "99kb", "--seeds", "0,1,2", "--variants", "qas", "--grad",
                                   "int8-nearest", "--json", "paper_accuracy_gap.json"],
    # the diagnostics of the bias-only rows' gap at today's defaults (round 25; same file)
    "paper_accuracy_bias_gap": ["paper_accuracy.py", "--schemes", "bias-only", "--seeds",
                                "0,1,2,3,4,5", "--variants", "qas,fp32-srh",
                                "--head-headroom", "16", "--jobs", "2", "--json",
                                "paper_accuracy_bias_gap.json"],
    "paper_accuracy_bias_gap_f32": ["paper_accuracy.py", "--schemes", "bias-only", "--seeds",
                                    "0,1,2,3,4,5", "--variants", "qas,fp32-fq", "--grad",
                                    "float32", "--jobs", "2", "--json",
                                    "paper_accuracy_bias_gap.json"],
    "mutation": ["mutation.py", "--json", "mutation_results.json"],
    # needs TFLM's sources and a TFLM library for the board, which no registry installs:
    # TFLM_RIG_ARGS="--tflm-src DIR --tflm-lib LIB ..." (see the script); skipped without
    "tflm_rig": ["tflm_rig.py", *shlex.split(os.environ.get("TFLM_RIG_ARGS", "")),
                 "--json", "tflm_rig.json"],
}
# runs that need something from outside the repository: name -> the environment variable
EXTERNAL = {"tflm_rig": "TFLM_RIG_ARGS"}


# JSON of "before" columns: runs of an older checkout, kept as records, not repeated here.
RECORDS = {
    "paper_accuracy_round25.json": "Table 1 in round 25 (paper_accuracy_results.json then, "
                                   "the new head's grid at 8x): paper_accuracy.py --seeds "
                                   "0,1,2,3,4,5 --variants qas,fp32 and --seeds 0,1,2 "
                                   "--variants int8, from a git archive of a174f55; the "
                                   "diagnostics of paper_accuracy_bias_gap.json pair with "
                                   "them",
    "paper_accuracy_round24.json": "Table 1 until round 24 (paper_accuracy_results.json then): "
                                   "the runs of paper_accuracy.py described in RESULTS.md "
                                   "under that table, int8 + QAS from before round 18's head "
                                   "rule; the diagnostics of paper_accuracy_gap.json pair "
                                   "with them",
    "transfer_gap_diag.json": "the rows of several transfer.py runs (branch accuracy; "
                              "transfer.py writes one file per run): --schemes last:2 --steps "
                              "1000 --val 3000 --seeds 0,1,2 with --variants "
                              "fp32-fq,fp32-sr,fp32-fq-sr, with --variants fp32-srh,fp32-srb, "
                              "and with --variants fp32-srh --head-headroom 4 and 16; "
                              "--schemes schemes/person_detect_sparse.json with --seeds 3,4,5 "
                              "--variants fp32 and with --seeds 0,1,2 --variants fp32-sr "
                              "(benchmarks/RESULTS.md, \"What separates int8 + QAS from fp32 "
                              "on last:2\")",
    "mcu_kernels_before.json": "mcu_kernels.py --kernels <git archive d63dde6>/micro_kernels "
                               "--json mcu_kernels_before.json",
    "mcu_kernels_before_d16.json": "mcu_kernels.py --json at commit 654972d, whose kernels "
                                   "were d63dde6's and whose flags were -mfpu=fpv5-d16",
    "train_speed_before.json": "PYTHONPATH=<git archive d63dde6, make -C micro_kernels all "
                               "tflm-wheel> train_speed.py --json train_speed_before.json",
    "mcu_forward_before_dsp2.json": "mcu_forward.py --rig-only --json mcu_forward.json at "
                                    "commit 9f23883 (before the dsp2 round)",
    "mcu_forward_before_dsp3.json": "mcu_forward.py --rig-only --json mcu_forward.json at "
                                    "commit 9f6da88 (before the dsp3 round)",
    "mcu_forward_before_fwd_speed.json": "mcu_forward.json as committed at 6f4db7a (before "
                                         "the fwd-speed round; the same command there "
                                         "gave the same totals again on 2026-11-26)",
    "mcu_forward_before_round4.json": "mcu_forward.json as committed at 9779b7c (before "
                                      "the fwd-dw and fwd-pw round)",
    "default_rates_before_round18.json": "PYTHONPATH=<git archive 6765842> default_schedule.py "
                                         "(this one, copied into the archive) with the "
                                         "arguments of default_rates_round18_int8 and "
                                         "_float32 above, and --models person --grad "
                                         "int8 --head-factor F for F = 2, 3, 4, 6; --json "
                                         "default_rates_before_round18.json",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated names of " + ", ".join(RUNS))
    args = ap.parse_args()
    for name in args.only.split(",") if args.only else RUNS:
        if name not in RUNS:
            ap.error(f"unknown benchmark {name!r}")
        script, *rest = RUNS[name]
        if name in EXTERNAL and not os.environ.get(EXTERNAL[name]):
            print(f"\n{script}: skipped ({EXTERNAL[name]} is not set)", flush=True)
            continue
        print(f"\n$ python benchmarks/{script} {' '.join(rest)}", flush=True)
        subprocess.run([sys.executable, str(HERE / script), *rest], check=True, cwd=HERE)


if __name__ == "__main__":
    main()
