"""Three scaling rules on the same simulated load: ours (the operator's real decision code),
the seed's, and an HPA-style rule on a Prometheus-fed custom metric.

    .venv/bin/python -m bench.autoscaler_sim [--seeds 40] [--minutes 30]
    .venv/bin/python -m bench.autoscaler_sim --smoke      # a few seconds, for CI

The world: demand is requests in flight (Little's law: arrival rate x service time); one
replica has maxInFlight 8 and a target of 6.4 in flight (80 %), so "1x" is 8 in flight.
A new replica is Ready ``--startup`` seconds after the write that asked for it. Rules:

- ours: ``atomic_operator.autoscaler.decision.decide`` every 2 s on the Ready pods' gauges
  (scraped directly, no lag), started warm (past the restart hold);
- seed: every 60 s, +1 replica when in flight per replica exceeds the target, -1 when below
  30 % of it (the seed design's "one replica per cycle when a threshold trips");
- hpa: 15 s sync; the metric is the per-pod mean from a 15 s Prometheus scrape seen through
  an adapter that relists every 15 s (so 15-30 s old); 10 % tolerance; scale-up at most
  max(2x, +4) per sync; scale-down to the highest recommendation of the last 300 s.

Traces, each over ``--seeds`` random phases and noise draws:

- step: 1x for 2 min, then 8x: seconds from the step to the first scale-up write (p50, p95;
  target p95 <= 5 s), replicas asked for by that write, seconds until the need is asked for;
- stationary: 3x with +-20 % noise (redrawn every second) for the whole run: replica
  changes (target 0);
- square: 1x <-> 3x, 120 s period: scale-downs per 300 s (worst window; target <= 1) and
  seconds under-provisioned (Ready capacity below the noiseless demand).

Ratios are against the HPA-style rule, measured in the same run.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from atomic_operator.autoscaler.decision import Observation, PodSample, Policy, State, decide

SMOKE_ARGS = ["--smoke"]  # `make bench-smoke` (bench/README.md)
MAX_IN_FLIGHT = 8.0
TARGET = 0.8 * MAX_IN_FLIGHT
DT = 0.5
MAX_REPLICAS = 50

Load = Callable[[float], float]
"""Noiseless demand (requests in flight) at a time."""


@dataclass
class World:
    """Replicas as the rules see them: written count, and when each became Ready."""

    replicas: int
    startup: float
    ready_at: list[float] = field(default_factory=list)
    writes: list[tuple[float, int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ready_at = [-1e9] * self.replicas

    def ready(self, now: float) -> int:
        return sum(1 for t in self.ready_at if t <= now)

    def write(self, now: float, replicas: int) -> None:
        if replicas == self.replicas:
            return
        self.writes.append((now, self.replicas, replicas))
        if replicas > self.replicas:
            self.ready_at += [now + self.startup] * (replicas - self.replicas)
        else:
            self.ready_at = sorted(self.ready_at)[:replicas]  # the newest go first
        self.replicas = replicas


class Noise:
    """Multiplicative noise, redrawn once a second, the same for every rule of a seed."""

    def __init__(self, rng: random.Random, amplitude: float, seconds: float) -> None:
        self.values = [1 + rng.uniform(-amplitude, amplitude) for _ in range(int(seconds) + 2)]

    def __call__(self, now: float) -> float:
        return self.values[int(now)]


class Rule:
    period: float
    name: str

    def __init__(self, phase: float) -> None:
        self.next = phase

    def tick(self, now: float, world: World, observed: float) -> None:
        raise NotImplementedError


class Ours(Rule):
    period, name = 2.0, "ours"

    def __init__(self, phase: float) -> None:
        super().__init__(phase)
        self.policy = Policy(min_replicas=1, max_replicas=MAX_REPLICAS, target_per_replica=TARGET)
        self.state = State(started_at=-1e9)

    def tick(self, now: float, world: World, observed: float) -> None:
        ready = world.ready(now)
        pods = tuple(PodSample(f"p{i}", now, in_flight=observed / ready, queued=0.0,
                               mean_latency=1.0) for i in range(ready))
        rec, self.state = decide(self.policy, self.state, Observation(now, world.replicas, pods))
        world.write(now, rec.desired_replicas)


class Seed(Rule):
    period, name = 60.0, "seed"

    def tick(self, now: float, world: World, observed: float) -> None:
        per_replica = observed / max(1, world.ready(now))
        if per_replica > TARGET and world.replicas < MAX_REPLICAS:
            world.write(now, world.replicas + 1)
        elif per_replica < 0.3 * TARGET and world.replicas > 1:
            world.write(now, world.replicas - 1)


class Hpa(Rule):
    period, name = 15.0, "hpa"
    scrape, relist, window, tolerance = 15.0, 15.0, 300.0, 0.1

    def __init__(self, phase: float) -> None:
        super().__init__(phase)
        self.scraped: list[tuple[float, float]] = []  # (time, mean per Ready pod)
        self.next_scrape = phase / 2
        self.recommendations: list[tuple[float, int]] = []

    def observe(self, now: float, world: World, observed: float) -> None:
        if now >= self.next_scrape:
            self.scraped.append((now, observed / max(1, world.ready(now))))
            self.next_scrape += self.scrape

    def tick(self, now: float, world: World, observed: float) -> None:
        # what the adapter last relisted: the newest scrape at least one relist period old
        visible = [v for t, v in self.scraped if t <= now - self.relist]
        if not visible:
            return
        ratio = visible[-1] / TARGET
        ready = world.ready(now)
        current = world.replicas
        raw = current if abs(ratio - 1) <= self.tolerance else math.ceil(ready * ratio)
        raw = max(1, min(MAX_REPLICAS, raw))
        self.recommendations = [(t, r) for t, r in self.recommendations
                                if now - t < self.window] + [(now, raw)]
        if raw > current:
            world.write(now, min(raw, max(2 * current, current + 4)))
        else:
            stabilized = max(r for _, r in self.recommendations)
            if stabilized < current:
                world.write(now, stabilized)


RULES: list[type[Rule]] = [Ours, Seed, Hpa]


def simulate(rule_type: type[Rule], load: Load, noise: Noise, seconds: float, start: int,
             rng: random.Random, startup: float) -> tuple[World, float]:
    """Run one rule; returns the world and the seconds Ready capacity was below demand."""
    rule = rule_type(phase=rng.uniform(0, rule_type.period))
    world = World(start, startup)
    under = 0.0
    now = 0.0
    while now < seconds:
        demand = load(now)
        observed = demand * noise(now)
        if isinstance(rule, Hpa):
            rule.observe(now, world, observed)
        if now >= rule.next:
            rule.tick(now, world, observed)
            rule.next += rule.period
        if world.ready(now) * TARGET < demand - 1e-9:
            under += DT
        now = round(now + DT, 6)
    return world, under


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def step_trace(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    need = math.ceil(8 * MAX_IN_FLIGHT / TARGET)
    for rule in RULES:
        reaction, first, full = [], [], []
        for seed in range(args.seeds):
            rng = random.Random(seed)
            step_at = 120 + rng.uniform(0, 2)

            def load(t: float, s: float = step_at) -> float:
                return MAX_IN_FLIGHT * (8 if t >= s else 1)

            noise = Noise(random.Random(seed + 1000), 0.1, 1200)
            world, _ = simulate(rule, load, noise, 1200, 2, rng, args.startup)
            ups = [(t, new) for t, old, new in world.writes if t >= step_at and new > old]
            if not ups:
                reaction.append(math.inf)
                first.append(2)
                full.append(math.inf)
                continue
            reaction.append(ups[0][0] - step_at)
            first.append(ups[0][1])
            full.append(next((t - step_at for t, n in ups if n >= need), math.inf))
        out[rule.name] = {"p50 s to write": statistics.median(reaction),
                          "p95 s to write": pct(reaction, 0.95),
                          "replicas 1st write": statistics.median(first),
                          f"s to ask {need}": statistics.median(full)}
    return out


def stationary_trace(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    seconds = args.minutes * 60
    for rule in RULES:
        changes = []
        for seed in range(args.seeds):
            noise = Noise(random.Random(seed + 2000), 0.2, seconds)
            world, _ = simulate(rule, lambda t: 3 * MAX_IN_FLIGHT, noise, seconds,
                                math.ceil(3 * MAX_IN_FLIGHT / TARGET), random.Random(seed),
                                args.startup)
            changes.append(float(len(world.writes)))
        out[rule.name] = {"replica changes (mean)": statistics.mean(changes),
                          "replica changes (max)": max(changes)}
    return out


def square_trace(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    seconds = args.minutes * 60
    for rule in RULES:
        worst, downs_total, under = [], [], []
        for seed in range(args.seeds):
            rng = random.Random(seed)
            phase = rng.uniform(0, 120)

            def load(t: float, p: float = phase) -> float:
                return MAX_IN_FLIGHT * (3 if ((t + p) % 120) >= 60 else 1)

            noise = Noise(random.Random(seed + 3000), 0.1, seconds)
            world, below = simulate(rule, load, noise, seconds, 2, rng, args.startup)
            downs = [t for t, old, new in world.writes if new < old]
            per_window = [sum(1 for t in downs if w <= t < w + 300)
                          for w in range(0, int(seconds) - 299, 10)]
            worst.append(float(max(per_window, default=0)))
            downs_total.append(float(len(downs)))
            under.append(below)
        out[rule.name] = {"scale-downs/300 s (worst)": max(worst),
                          "scale-downs total (mean)": statistics.mean(downs_total),
                          "s under-provisioned (mean)": statistics.mean(under)}
    return out


def show(title: str, rows: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}")
    columns = list(next(iter(rows.values())))
    print(f"{'rule':<8}" + "".join(f"{c:>28}" for c in columns))
    for name, row in rows.items():
        cells = []
        for c in columns:
            value, base = row[c], rows["hpa"][c]
            ratio = ("" if name == "hpa" or math.isinf(value) or math.isinf(base)
                     else f" ({value / base:.2f}x)" if base else " (-)")
            cells.append(f"{value:.1f}{ratio}")
        print(f"{name:<8}" + "".join(f"{c:>28}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--startup", type=float, default=10.0,
                        help="seconds from a scale write to the new pod being Ready")
    parser.add_argument("--smoke", action="store_true", help="3 seeds, 10 minutes (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.seeds, args.minutes = 3, 10.0
    print(f"seeds={args.seeds} minutes={args.minutes:g} startup={args.startup:g} s; "
          f"1x = {MAX_IN_FLIGHT:g} in flight, target {TARGET:g} per replica; "
          "ratios against hpa")
    show("load step 1x -> 8x (target: p95 <= 5 s)", step_trace(args))
    show(f"stationary 3x +-20 % for {args.minutes:g} min (target: 0 changes)",
         stationary_trace(args))
    show(f"square wave 1x <-> 3x, 120 s period, {args.minutes:g} min (target: <= 1 "
         "scale-down per 300 s)", square_trace(args))


if __name__ == "__main__":
    main()
