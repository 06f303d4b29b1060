"""`make bench`: every benchmark in this folder, each printing its table."""
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

for script in ("forward_speed.py", "train_speed.py", "transfer.py", "paper_memory.py",
               "mcu_kernels.py", "checkpoint.py", "paper_accuracy.py"):
    print(f"\n$ python benchmarks/{script}", flush=True)
    subprocess.run([sys.executable, str(HERE / script)], check=True)
