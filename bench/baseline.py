"""NumPy reference for the attribution scan: scores = G @ q over a raw float32 [n x k] file.

Times the read (np.fromfile) separately from the arithmetic: the matmul (G @ q, float32, BLAS
gemv) and a plain reduction G.sum() over the same bytes (the memory-bandwidth reference).
Prints one JSON object. Usage: python3 bench/baseline.py FILE N K [REPEAT]
"""

import json
import sys
import time

import numpy as np


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), max(times)


def main():
    path, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    repeat = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    t0 = time.perf_counter()
    g = np.fromfile(path, dtype="<f4", count=n * k).reshape(n, k)
    read_s = time.perf_counter() - t0
    rng = np.random.default_rng(7)
    q = rng.standard_normal(k).astype(np.float32)
    q /= np.linalg.norm(q)
    matmul_best, matmul_worst = best_of(lambda: g @ q, repeat)
    sum_best, sum_worst = best_of(lambda: g.sum(dtype=np.float32), repeat)
    print(
        json.dumps(
            {
                "numpy": np.__version__,
                "bytes": int(g.nbytes),
                "readS": read_s,
                "matmulS": matmul_best,
                "matmulWorstS": matmul_worst,
                "sumS": sum_best,
                "sumWorstS": sum_worst,
            }
        )
    )


if __name__ == "__main__":
    main()
