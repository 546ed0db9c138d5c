#!/usr/bin/env python3
"""Times shell commands side by side, interleaved: round after round, each command once, in a
rotating order. On a machine shared with other work the load drifts over minutes; running the
commands back to back per round exposes them all to the same drift, where timing one command N
times and then the next would not (hyperfine's order).

usage: bench-interleaved.py OUT.json CWD WARMUP RUNS PREPARE NAME=COMMAND...
PREPARE runs (untimed) before every command; "" for none. OUT.json is hyperfine-shaped:
{"results": [{"command", "median", "min", "user", "system", "times"}]} with user/system the
mean CPU seconds of a run (children's rusage).
"""
import json
import resource
import statistics
import subprocess
import sys
import time

out, cwd, warmup, runs, prepare = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
commands = [arg.split("=", 1) for arg in sys.argv[6:]]
samples = {name: [] for name, _ in commands}


def run_once(cmd):
    if prepare:
        subprocess.run(prepare, shell=True, cwd=cwd, check=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, shell=True, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


for round_ in range(warmup + runs):
    k = round_ % len(commands)
    for name, cmd in commands[k:] + commands[:k]:
        wall, user, system = run_once(cmd)
        if round_ >= warmup:
            samples[name].append((wall, user, system))
    if round_ >= warmup:
        print(f"  round {round_ - warmup + 1}/{runs}: "
              + ", ".join(f"{n} {samples[n][-1][0]:.3f}s" for n, _ in commands), file=sys.stderr)

results = []
for name, _ in commands:
    s = samples[name]
    results.append({
        "command": name,
        "median": statistics.median(w for w, _, _ in s),
        "min": min(w for w, _, _ in s),
        "user": statistics.mean(u for _, u, _ in s),
        "system": statistics.mean(y for _, _, y in s),
        "times": [w for w, _, _ in s],
    })
json.dump({"results": results}, open(out, "w"), indent=1)
