#!/usr/bin/env python3
"""Opening a real-size dump: first paint, full statistics, memory (docs/benchmarks.md).

Synthesizes (unless --dump is given) a Llama-3-8B-shaped dump -- 32 layers x 8 kv heads
x 128 channels, 32 768 tokens, float16, 3.7 GB -- and measures, warm and cold page cache:

  * `kvq info` (new binary; and --baseline-kvq, e.g. a build of an older commit):
    first paint = the first line on stdout (the header), full = exit;
  * the studio's session loader (bench_open = kvq::ui::loadSession): first paint = the
    header callback, full = the session returned;
  * isolated (the default) and --no-isolation, and a reopen answered by the cache;
  * a baseline in h5py + numpy (--h5py-stats, run as a child of this script): the same
    statistics (moments per layer, kind and head, mean/max |x| per channel) and the same
    NaN/Inf check, read in blocks of 4096 tokens as the tools do; first paint = the
    header printed after the root attributes and the layer list are read.

Memory is the peak of the summed resident set of the measured process and all its
children (the validators), sampled every 20 ms from /proc. "Cold" evicts the dump's
pages with posix_fadvise(DONTNEED) first -- only this file's, not the whole machine's.
The synthesized dump is deleted afterwards unless --keep.

  python3 bench/open_bench.py --kvq build/app/kvq --bench-open build/bench/bench_open \\
      [--baseline-kvq OLD_KVQ] [--dump DUMP] [--tokens 32768] [--workdir /tmp] [--keep]
      [--repeat 2] [--no-cold] [--no-h5py]
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

SHAPE = ["--layers", "32", "--kv-heads", "8", "--head-dim", "128", "--seed", "1"]
BYTES_PER_TOKEN = 32 * 8 * 128 * 2 * 2  # layers x heads x channels x {keys, values} x float16
BLOCK_TOKENS = 4096


def h5py_stats(path):
    """The baseline: the statistics of `kvq info` with h5py and numpy (float64 sums)."""
    import h5py
    import numpy as np

    with h5py.File(path, "r") as f:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        layers = sorted(f["layers"].keys(), key=int)
        print(json.dumps({"model": str(attrs.get("model")), "layers": layers}), flush=True)
        for name in layers:
            group, row = f["layers"][name], {"layer": int(name)}
            for kind in ("keys", "values", "queries"):
                if kind not in group:
                    continue
                ds = group[kind]
                tokens, heads, dim = ds.shape
                sums = np.zeros((4, heads))  # sum x, x^2, x^3, x^4 per head
                abs_sum, max_abs = np.zeros((heads, dim)), np.zeros((heads, dim))
                for t in range(0, tokens, BLOCK_TOKENS):
                    x = ds[t:t + BLOCK_TOKENS].astype(np.float64)
                    if not np.isfinite(x).all():
                        sys.exit(f"{path}: /layers/{name}/{kind}: NaN/Inf")
                    if kind == "queries":
                        continue
                    x2 = x * x
                    sums += np.stack([x.sum((0, 2)), x2.sum((0, 2)), (x2 * x).sum((0, 2)), (x2 * x2).sum((0, 2))])
                    a = np.abs(x)
                    abs_sum += a.sum(0)
                    np.maximum(max_abs, a.max(0), out=max_abs)
                if kind == "queries":
                    continue
                n = tokens * dim
                mean = sums[0].sum() / (n * heads)
                m2 = sums[1].sum() / (n * heads) - mean * mean
                row[kind] = {"mean_abs": abs_sum.sum() / (n * heads), "std": float(np.sqrt(max(m2, 0))),
                             "max_abs": float(max_abs.max()),
                             "outliers": np.argsort(-abs_sum.sum(0))[:8].tolist()}
            print(json.dumps(row), flush=True)


def tree_rss_kb(root):
    """Summed VmRSS of root and every descendant (KiB)."""
    parents = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            parents[int(name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, grew = {root}, True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class PeakSampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak_kb, self.done = pid, 0, False

    def run(self):
        while not self.done:
            self.peak_kb = max(self.peak_kb, tree_rss_kb(self.pid))
            time.sleep(0.02)


def evict(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def warm(path):
    with open(path, "rb") as f:
        while f.read(64 << 20):
            pass


def measure(cmd, env, first_line_marks_paint):
    """Runs cmd; returns (first paint s, full s, CPU s of the whole tree, peak tree RSS MB, stdout lines)."""
    start = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    sampler = PeakSampler(proc.pid)
    sampler.start()
    first, lines = None, []
    for line in proc.stdout:
        if first is None and first_line_marks_paint:
            first = time.monotonic() - start
        lines.append(line.rstrip("\n"))
    proc.wait()
    full = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    sampler.done = True
    sampler.join()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.read()}")
    return first, full, cpu, sampler.peak_kb / 1024.0, lines


def run_case(name, cmd, env, dump, cold, loader):
    if cold:
        evict(dump)
    else:
        warm(dump)
    first, full, cpu, peak, lines = measure(cmd, env, not loader)
    if loader:  # bench_open reports its own timings (the header callback, the session)
        result = json.loads(lines[-1])
        first, full = result["first_paint_s"], result["full_s"]
    row = {"case": name, "cache": "cold" if cold else "warm", "first_paint_s": round(first, 3),
           "full_s": round(full, 3), "cpu_s": round(cpu, 2), "peak_tree_rss_mb": round(peak, 1),
           "load": round(os.getloadavg()[0], 1)}
    print(json.dumps(row), flush=True)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kvq", required=True)
    ap.add_argument("--bench-open", required=True)
    ap.add_argument("--baseline-kvq", help="an older kvq (before the isolated, one-pass open) for comparison")
    ap.add_argument("--dump", help="use this dump instead of synthesizing one")
    ap.add_argument("--tokens", type=int, default=32768, help="tokens of the synthesized dump (32768: 3.7 GB)")
    ap.add_argument("--no-cold", action="store_true", help="warm page cache only")
    ap.add_argument("--no-h5py", action="store_true", help="leave out the h5py + numpy baseline")
    ap.add_argument("--h5py-stats", metavar="DUMP", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    ap.add_argument("--keep", action="store_true", help="keep the synthesized dump")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    if args.h5py_stats:
        h5py_stats(args.h5py_stats)
        return

    dump, made = args.dump, False
    if dump is None:
        free = shutil.disk_usage(args.workdir).free
        if free < args.tokens * BYTES_PER_TOKEN + (1 << 30):
            sys.exit(f"{args.workdir} has {free >> 30} GiB free; the dump needs more")
        dump = os.path.join(args.workdir, f"kvq-bench-llama3-8b-shape-{args.tokens}.h5")
        print(f"synthesizing {dump} ...", file=sys.stderr, flush=True)
        subprocess.run([args.kvq, "synth", "--out", dump, *SHAPE, "--tokens", str(args.tokens)], check=True,
                       stdout=subprocess.DEVNULL)
        made = True
    cache = tempfile.mkdtemp(prefix="kvq-bench-cache-")
    env = dict(os.environ, XDG_CACHE_HOME=cache)
    try:
        rows = []
        for _ in range(args.repeat):
            for cold in (False,) if args.no_cold else (False, True):
                if args.baseline_kvq:
                    rows.append(run_case("kvq info (before)", [args.baseline_kvq, "info", dump], env, dump, cold, False))
                rows.append(run_case("kvq info", [args.kvq, "info", "--no-cache", dump], env, dump, cold, False))
                rows.append(run_case("kvq info --no-isolation",
                                     [args.kvq, "info", "--no-cache", "--no-isolation", dump], env, dump, cold, False))
                rows.append(run_case("studio loader", [args.bench_open, dump], env, dump, cold, True))
                rows.append(run_case("studio loader, no isolation", [args.bench_open, dump, "--no-isolation"], env,
                                     dump, cold, True))
                if not args.no_h5py:
                    rows.append(run_case("h5py + numpy baseline", [sys.executable, __file__, "--kvq", args.kvq,
                                         "--bench-open", args.bench_open, "--h5py-stats", dump], env, dump, cold,
                                         False))
            # Reopening: the first run fills the cache, the second is answered by it.
            run_case("fill cache", [args.kvq, "info", dump], env, dump, False, False)
            rows.append(run_case("kvq info, cached", [args.kvq, "info", dump], env, dump, False, False))
            rows.append(run_case("studio loader, cached", [args.bench_open, dump, "--cache",
                                                           os.path.join(cache, "kvq-studio", "stats")], env, dump,
                                 False, True))
        print("\n| case | page cache | first paint (s) | full statistics (s) | CPU, all processes (s) | "
              "peak RSS, all processes (MB) | load average |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['case']} | {r['cache']} | {r['first_paint_s']:.2f} | {r['full_s']:.2f} | {r['cpu_s']:.2f} | "
                  f"{r['peak_tree_rss_mb']:.0f} | {r['load']} |")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if made and not args.keep:
            os.remove(dump)


if __name__ == "__main__":
    main()
