"""Round 18 (probe18): the person detector's new head, int8 simulated as in
benchmarks/person_ceiling.py (its initial codes, grids, stochastic rounding), on its frozen
features, 300 steps of the default inverse-time schedule (T=30) from eta0 (on the data's
mean |x|^2), with the head's bias at the weights' rate (x1) or frozen (x0), 10 sample
orders of the 3000 cached training samples; accuracy on the 1000 validation samples.

    PYTHONPATH=. nice .venv/bin/python benchmarks/person_ceiling.py --extract-only \
        --features F.npz --train 3000 --val 1000
    PYTHONPATH=. nice .venv/bin/python benchmarks/probe18/head_sim.py F.npz [orders]
"""
import sys, numpy as np
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
import person_ceiling as pc
f = np.load(sys.argv[1]); X, y, V, vy = f["Xt"], f["yt"], f["Xv"], f["yv"]
head = pc.head_quantization()
x2 = float((X**2).sum(1).mean())
def run(eta, bf, T, seed, int8=True, cen=None):
    rng = np.random.default_rng(seed + 100)
    order = np.random.default_rng(seed).permutation(len(y))[:300]
    sw, sb, sz = head["w_scale"], head["b_scale"], head["z_scale"]
    lr0 = eta / x2
    W, b = head["codes"] * sw, np.zeros(10)
    def logits(x):
        z = x @ W.T + b
        return np.clip(np.rint(z / sz), -128, 127) * sz if int8 else z
    for t, i in enumerate(order):
        p = pc.softmax(logits(X[i])); p[y[i]] -= 1
        step = lr0 * T / (T + t)
        dW, db = -step * np.outer(p, X[i]), -step * bf * p
        if int8:
            dW = np.floor(dW / sw + rng.random(dW.shape)) * sw
            db = np.floor(db / sb + rng.random(db.shape)) * sb
            W = np.clip(W + dW, -127 * sw, 127 * sw)
        else:
            W = W + dW
        b = b + db
    return float((np.argmax(logits(V), 1) == vy).mean())
print("x2", x2)
N = int(sys.argv[2]) if len(sys.argv) > 2 else 10
for T in (30,):
    for bf in (1.0, 0.0):
        for eta in (0.45, 1.35, 2, 3, 4.5, 6, 9):
            a = [run(eta, bf, T, s) for s in range(N)]
            print(f"T={T} bias x{bf} eta0 {eta}: {100*np.mean(a):.1f} +- {100*np.std(a)/np.sqrt(N):.1f}  min {100*min(a):.1f}", flush=True)
