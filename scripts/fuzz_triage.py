#!/usr/bin/env python3
"""Replays the artifacts of a fuzz run and sorts them: ours, or inside libhdf5 (docs/reliability.md).

Each crash-*, oom-*, timeout-* and leak-* file libFuzzer saved is run again, alone, through its target.
The sanitizer's stack decides whose it is: the first frame that is not the sanitizer, libFuzzer, libc or
zlib runtime. A frame in libhdf5 means the library faulted (or hung, or asked for the memory) on its own
— usually before any of our validation could run, as in H5Aread of a corrupt heap object — and only the
child-process isolation contains it. Anything else is a bug of ours and fails the run (--fail-on-ours).

Usage: fuzz_triage.py --build BUILD_FUZZ_DIR --out RUN_DIR [--timeout S] [--fail-on-ours] [--export DIR]
RUN_DIR holds artifacts/<target>/ and stats/ from scripts/fuzz.sh; writes RUN_DIR/triage.json and
RUN_DIR/report.md (the table of docs/reliability.md), prints the report. --export copies the smallest
input of each libhdf5 fault (one per target, kind, faulting frame and our frame) to DIR/<target>/ with
DIR/manifest.tsv: the files the child-process isolation must contain (tests/data/hostile/fuzz/).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys

# libc's own frames of an abort (glibc's fortified checks: __chk_fail -> __fortify_fail -> abort ->
# raise -> __pthread_kill_implementation) belong to the runtime too: the caller of __chk_fail decides.
RUNTIME = re.compile(r"^(__sanitizer|__asan|__ubsan|__lsan|__interceptor|__libc|__GI_|fuzzer::|std::__terminate|"
                     r"__pthread_kill|pthread_kill|__fortify_fail|__chk_fail|__stack_chk_fail|gsignal|"
                     r"std::terminate|__cxa_|raise|abort|malloc|calloc|realloc|free|operator new|operator delete|"
                     r"mem[a-z]*$|str[a-z]*$|wcs[a-z]*$|__mem|__str|_start|main$|"
                     r"__sanitizer_print_stack_trace|inflate|deflate|adler32|crc32)")
FRAME = re.compile(r"^\s*#(\d+) 0x[0-9a-f]+ in (.+?)(?: (/\S+?)(?::\d+)*(?::\d+)?)?(?: \((\S+?)\+0x[0-9a-f]+\))?"
                   r"(?: \(BuildId: [0-9a-f]+\))?$")
FRAME_NO_FUNC = re.compile(r"^\s*#(\d+) 0x[0-9a-f]+ +\((\S+?)\+0x[0-9a-f]+\)")
LIBS_RUNTIME = ("libc.so", "libstdc++", "libz.so", "libgcc_s", "ld-linux")


def frames(report: str):
    """(function, module-or-file) of each stack frame of the first stack in the report."""
    out = []
    started = False
    for line in report.splitlines():
        m = FRAME.match(line)
        if m:
            started = True
            out.append((m.group(2), m.group(4) or m.group(3) or ""))
            continue
        m = FRAME_NO_FUNC.match(line)
        if m:
            started = True
            out.append(("?", m.group(2)))
            continue
        if started and not line.strip():
            break  # only the faulting stack, not "previously allocated by"
    return out


def culprit(stack):
    """'libhdf5' or 'ours', the deciding frame, and our innermost frame (what we were doing)."""
    ours_frame = next((f for f, where in stack if f.startswith("kvq::") or "LLVMFuzzerTestOneInput" in f), "")
    def in_hdf5(function, where):
        return "libhdf5" in where or re.match(r"^H5[A-Z_]", function) is not None

    if stack and all(RUNTIME.match(f) or f.startswith("fuzzer::") or any(lib in w for lib in LIBS_RUNTIME)
                     for f, w in stack):
        # Only libFuzzer's own frames: an RSS limit hit with no allocation to blame.
        return "unattributed", "(no allocation stack)", ours_frame
    for i, (function, where) in enumerate(stack):
        if RUNTIME.match(function) or any(lib in where for lib in LIBS_RUNTIME):
            continue
        if in_hdf5(function, where):
            # Unnamed (static) library frames: show the first named one of the library.
            named = next((f for f, w in stack[i:] if f != "?" and in_hdf5(f, w)), function)
            return "libhdf5", named, ours_frame
        return "ours", function, ours_frame
    return "ours", "(no frame)", ours_frame


def kind_of(name: str, report: str) -> str:
    if "libFuzzer: timeout" in report or name.startswith("timeout-"):
        return "hang"
    if ("out-of-memory" in report or "requested allocation size" in report or "allocation-size-too-big" in report
            or name.startswith("oom-")):
        return "memory blow-up"
    if "LeakSanitizer" in report or name.startswith("leak-"):
        return "leak"
    return "crash"


def short(function: str) -> str:
    function = function.replace("(anonymous namespace)::", "").replace("[abi:cxx11]", "")
    return re.sub(r"\(.*", "", function)


def replay(binary: str, artifact: str, timeout: int) -> dict:
    # max_allocation_size_mb: a huge allocation is reported at once with its stack, instead
    # of ASan first poisoning its shadow until the RSS limit fires with no stack to blame.
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:symbolize=1:fast_unwind_on_fatal=0:fast_unwind_on_malloc=0:"
                                        "max_allocation_size_mb=1024",
               UBSAN_OPTIONS="print_stacktrace=1")
    cmd = [binary, f"-timeout={timeout}", "-rss_limit_mb=2048", "-malloc_limit_mb=1024", "-runs=1", artifact]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout * 3 + 30,
                             env=env)
        report, code = run.stderr, run.returncode
    except subprocess.TimeoutExpired as e:
        report, code = (e.stderr or b"").decode(errors="replace") + "\nlibFuzzer: timeout (triage)", 124
    name = os.path.basename(artifact)
    if code == 0:
        return dict(artifact=artifact, kind="no longer reproduces", owner="-", frame="", ours_frame="")
    # For a hang the interesting stack is the one libFuzzer prints after the timeout message.
    tail = report[report.find("libFuzzer: timeout"):] if "libFuzzer: timeout" in report else report
    owner, frame, ours_frame = culprit(frames(tail))
    return dict(artifact=artifact, kind=kind_of(name, report), owner=owner, frame=short(frame),
                ours_frame=short(ours_frame))


def read_stats(out: str) -> dict:
    totals = {}
    for path in glob.glob(os.path.join(out, "stats", "*.txt")):
        target = os.path.basename(path).rsplit("-", 1)[0]
        counts = totals.setdefault(target, dict(tried=0, refused=0, accepted=0))
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key in counts:
                    counts[key] += int(value)
    return totals


def report(out: str, results: list, stats: dict, targets: list) -> str:
    lines = ["| target | files tried | refused | accepted | crashes: ours | crashes: in libhdf5 (contained by "
             "isolation) | memory blow-ups: ours / libhdf5 | hangs: ours / libhdf5 | not reproducible alone |",
             "|---|---|---|---|---|---|---|---|---|"]
    for target in targets:
        mine = [r for r in results if r["target"] == target]

        def count(kind, owner):
            return sum(1 for r in mine if r["kind"] == kind and r["owner"] == owner)
        s = stats.get(target, dict(tried=0, refused=0, accepted=0))
        lines.append(f"| {target} | {s['tried']} | {s['refused']} | {s['accepted']} | {count('crash', 'ours')} | "
                     f"{count('crash', 'libhdf5')} | {count('memory blow-up', 'ours')} / "
                     f"{count('memory blow-up', 'libhdf5')} | {count('hang', 'ours')} / {count('hang', 'libhdf5')} | "
                     f"{sum(1 for r in mine if r['owner'] in ('-', 'unattributed'))} |")
    signatures = {}
    for r in results:
        key = (r["target"], r["kind"], r["owner"], r["frame"], r["ours_frame"])
        signatures.setdefault(key, []).append(os.path.basename(r["artifact"]))
    if signatures:
        lines += ["", "| target | kind | whose | faulting frame | our innermost frame | artifacts |",
                  "|---|---|---|---|---|---|"]
        for (target, kind, owner, frame, ours), names in sorted(signatures.items()):
            lines.append(f"| {target} | {kind} | {owner} | `{frame}` | `{ours}` | {len(names)} (e.g. {names[0]}) |")
    return "\n".join(lines) + "\n"


def export(results: list, directory: str) -> None:
    smallest = {}
    for r in results:
        if r["owner"] != "libhdf5":
            continue
        key = (r["target"], r["kind"], r["frame"], r["ours_frame"])
        if key not in smallest or os.path.getsize(r["artifact"]) < os.path.getsize(smallest[key]["artifact"]):
            smallest[key] = r
    lines = ["# reader\tfile\tkind\tfaulting frame in libhdf5\tour innermost frame (what we were doing)"]
    for (target, kind, frame, ours), r in sorted(smallest.items()):
        os.makedirs(os.path.join(directory, target), exist_ok=True)
        name = f"{target}/{kind.replace(' ', '_').replace('-', '_')}_{frame}_{ours.split('::')[-1]}.h5"
        shutil.copyfile(r["artifact"], os.path.join(directory, name))
        lines.append(f"{target}\t{name}\t{kind}\t{frame}\t{ours}")
    with open(os.path.join(directory, "manifest.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--timeout", type=int, default=10)
    parser.add_argument("--fail-on-ours", action="store_true")
    parser.add_argument("--export", help="copy one input per libhdf5 fault here, with manifest.tsv")
    args = parser.parse_args()
    targets = sorted(os.path.basename(d) for d in glob.glob(os.path.join(args.out, "artifacts", "*")))
    results = []
    for target in targets:
        binary = os.path.join(args.build, "tests", "fuzz", f"fuzz_{target}_reader")
        for artifact in sorted(glob.glob(os.path.join(args.out, "artifacts", target, "*"))):
            result = replay(binary, artifact, args.timeout)
            result["target"] = target
            results.append(result)
    with open(os.path.join(args.out, "triage.json"), "w") as f:
        json.dump(results, f, indent=1)
    text = report(args.out, results, read_stats(args.out), targets)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(text)
    print(text)
    if args.export:
        export(results, args.export)
    ours = [r for r in results if r["owner"] == "ours"]
    for r in ours:
        print(f"OURS: {r['kind']} in {r['frame']} ({r['artifact']})", file=sys.stderr)
    return 1 if ours and args.fail_on_ours else 0


if __name__ == "__main__":
    sys.exit(main())
