"""Where a proxy trial-seed's time goes, and what each speed lever buys, on this machine.

    python benchmarks/proxy.py [--config default] [--placement sch1] [--repeats 3]

For the config's proxy (one thread, as a worker trains it): seconds per training epoch, per
validation pass, per test pass and per ALS measurement, so the cost of one trial-seed is
composed as epochs x train + evaluations x val + test + ALS. Then the levers, each timed
against the eager epoch in the same run: bf16 autocast (this CPU may have AMX), torch.compile
(inductor, CPU), fewer validations (``eval_every``), and two one-thread processes at once
against one two-thread process.
Run it on an idle machine. Writes benchmarks/out/proxy-<config>.json.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import statistics
import time

import torch

from maitsearch.config import load_config
from maitsearch.data import load_data
from maitsearch.model import measure_als
from maitsearch.spec import named_preset
from maitsearch.training import build_optimizer, build_proxy_model, evaluate, train_one_epoch
from maitsearch.training.loop import epoch_seed

try:
    from .common import machine, write_json
except ImportError:
    from common import machine, write_json


def setup(config_name: str, placement: str):
    proxy = load_config(config_name).proxy
    data = load_data(proxy.data, image_size=proxy.image_size, data_dir=proxy.data_dir)
    if proxy.shift_augment:
        data = data.with_shift(proxy.shift_augment)
    spec = named_preset(placement, proxy.layers, proxy.heads)
    torch.manual_seed(0)
    model = build_proxy_model(spec, proxy, data)
    steps = math.ceil(data.size("train") / proxy.batch_size)
    optimizer, scheduler = build_optimizer(model, lr=proxy.lr, weight_decay=proxy.weight_decay, min_lr=proxy.min_lr,
                                           warmup_epochs=proxy.warmup_epochs, epochs=proxy.epochs,
                                           steps_per_epoch=steps)
    return proxy, data, model, optimizer, scheduler


def epoch_seconds(model, proxy, data, optimizer, scheduler, epoch: int, autocast: torch.dtype | None = None) -> float:
    start = time.perf_counter()
    train_one_epoch(model, data.batches("train", proxy.batch_size, shuffle=True, seed=epoch_seed(0, epoch)),
                    optimizer, scheduler, device=torch.device("cpu"), epoch=epoch,
                    label_smoothing=proxy.label_smoothing, grad_clip=proxy.grad_clip, autocast=autocast)
    return time.perf_counter() - start


def timed(fn, repeats: int) -> float:
    values = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        values.append(time.perf_counter() - start)
    return statistics.median(values)


def _epochs_in_process(args: tuple) -> float:
    config_name, placement, threads, epochs = args
    torch.set_num_threads(threads)
    proxy, data, model, optimizer, scheduler = setup(config_name, placement)
    epoch_seconds(model, proxy, data, optimizer, scheduler, 0)  # warm-up
    return statistics.median(epoch_seconds(model, proxy, data, optimizer, scheduler, e) for e in range(1, epochs + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="default")
    parser.add_argument("--placement", default="sch1")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile lever")
    args = parser.parse_args()
    torch.set_num_threads(1)
    proxy, data, model, optimizer, scheduler = setup(args.config, args.placement)
    epoch_seconds(model, proxy, data, optimizer, scheduler, 0)  # warm-up: allocator, caches
    train = statistics.median(epoch_seconds(model, proxy, data, optimizer, scheduler, e)
                              for e in range(1, args.repeats + 1))
    val = timed(lambda: evaluate(model, data.batches("val", 256)), args.repeats)
    test = timed(lambda: evaluate(model, data.batches("test", 256)), args.repeats)
    als = timed(lambda: measure_als(model, data.batches("val", 256)), args.repeats)
    evaluations = math.ceil(proxy.epochs / proxy.eval_every)
    parts = {"train": proxy.epochs * train, "validation": evaluations * val, "test": test, "als": als}
    total = sum(parts.values())
    rows = {"config": args.config, "placement": args.placement, "epochs": proxy.epochs, "eval_every": proxy.eval_every,
            "train_epoch_s": train, "validation_s": val, "test_s": test, "als_s": als,
            "trial_seed_s": total, "parts": {k: round(v / total, 3) for k, v in parts.items()}}
    print(f"{args.config} ({args.placement}), one thread: epoch {train:.2f} s, validation {val:.2f} s, test "
          f"{test:.2f} s, ALS {als:.2f} s -> one trial-seed {total:.0f} s")
    print("  shares: " + ", ".join(f"{k} {v / total:.0%}" for k, v in parts.items()))

    epoch_seconds(model, proxy, data, optimizer, scheduler, 0, torch.bfloat16)  # warm-up
    bf16 = statistics.median(epoch_seconds(model, proxy, data, optimizer, scheduler, e, torch.bfloat16)
                             for e in range(1, args.repeats + 1))
    rows["bf16_autocast"] = {"epoch_s": bf16, "speedup": train / bf16}
    print(f"bf16 autocast: epoch {bf16:.2f} s ({train / bf16:.2f}x)")

    if not args.no_compile:
        compiled = torch.compile(model)
        start = time.perf_counter()
        epoch_seconds(compiled, proxy, data, optimizer, scheduler, 0)
        first = time.perf_counter() - start
        steady = statistics.median(epoch_seconds(compiled, proxy, data, optimizer, scheduler, e)
                                   for e in range(1, args.repeats + 1))
        rows["compile"] = {"first_epoch_s": first, "epoch_s": steady, "speedup": train / steady,
                           "trial_seed_s": first + (proxy.epochs - 1) * steady + total - parts["train"]}
        print(f"torch.compile: first epoch {first:.1f} s (compiling), then {steady:.2f} s ({train / steady:.2f}x); "
              f"one trial-seed {rows['compile']['trial_seed_s']:.0f} s")

    for every in (10, proxy.epochs):
        saved = (evaluations - math.ceil(proxy.epochs / every)) * val
        print(f"eval_every {every}: saves {saved:.0f} s per trial-seed ({saved / total:.0%})")
        rows[f"eval_every_{every}_saves_s"] = saved

    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        two_processes = pool.map(_epochs_in_process, [(args.config, args.placement, 1, args.repeats)] * 2)
    with context.Pool(1) as pool:
        (two_threads,) = pool.map(_epochs_in_process, [(args.config, args.placement, 2, args.repeats)])
    rows["two_one_thread_processes_epoch_s"] = two_processes
    rows["one_two_thread_process_epoch_s"] = two_threads
    throughput = 2 / max(two_processes) / (1 / two_threads)
    print(f"two one-thread processes at once: {max(two_processes):.2f} s per epoch each; one two-thread process: "
          f"{two_threads:.2f} s; epochs per second, processes over threads: {throughput:.2f}x")
    rows["processes_over_threads"] = throughput
    print(f"wrote {write_json(f'proxy-{args.config}', {'machine': machine(), **rows})}")


if __name__ == "__main__":
    main()
