"""What a transfer target costs per trial-seed, as a ratio to the proxy's, measured side by side.

    nice python benchmarks/transfer_cost.py [--configs default,transfer-wide,transfer-data,transfer-mnist]
                                            [--repeats 2] [--placement sch1]

One process, one thread (as a worker trains). Every config's proxy is built once; then, round
after round, each trains one epoch and runs one validation pass, one test pass and one ALS
measurement in turn, so a busy or drifting machine slows them all alike. A trial-seed is composed
as epochs x epoch + evaluations x validation + test + ALS (``fit`` does exactly these), and each
config's is divided by the first config's. Parts are timed in this process's CPU seconds
(``time.process_time``), which other work on a shared machine inflates far less than wall time;
wall seconds are kept beside them. The ratios are the point: absolute seconds on a shared machine
are not. Writes benchmarks/out/transfer-cost.json.
"""

from __future__ import annotations

import argparse
import math
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
    from .common import write_json
except ImportError:
    from common import write_json


class Subject:
    """One config's proxy, data and optimizer, and the four things a trial-seed does."""

    def __init__(self, name: str, placement: str):
        self.name = name
        self.proxy = proxy = load_config(name).proxy
        data = load_data(proxy.data, image_size=proxy.image_size, data_dir=proxy.data_dir,
                         train_copies=proxy.train_copies)
        self.data = data.with_shift(proxy.shift_augment) if proxy.shift_augment else data
        torch.manual_seed(0)
        self.model = build_proxy_model(named_preset(placement, proxy.layers, proxy.heads), proxy, self.data)
        steps = math.ceil(self.data.size("train") / proxy.batch_size)
        self.optimizer, self.scheduler = build_optimizer(
            self.model, lr=proxy.lr, weight_decay=proxy.weight_decay, min_lr=proxy.min_lr,
            warmup_epochs=proxy.warmup_epochs, epochs=proxy.epochs, steps_per_epoch=steps)
        self.epoch = 0
        self.times: dict[str, list[float]] = {"epoch": [], "validation": [], "test": [], "als": []}
        self.wall: dict[str, list[float]] = {part: [] for part in self.times}

    def train(self) -> None:
        train_one_epoch(self.model, self.data.batches("train", self.proxy.batch_size, shuffle=True,
                                                      seed=epoch_seed(0, self.epoch)),
                        self.optimizer, self.scheduler, device=torch.device("cpu"), epoch=self.epoch,
                        label_smoothing=self.proxy.label_smoothing, grad_clip=self.proxy.grad_clip)
        self.epoch += 1

    def round(self, record: bool) -> None:
        for part, run in (("epoch", self.train), ("validation", lambda: evaluate(self.model, self.data.batches("val", 256))),
                          ("test", lambda: evaluate(self.model, self.data.batches("test", 256))),
                          ("als", lambda: measure_als(self.model, self.data.batches("val", 256)))):
            start, wall = time.process_time(), time.perf_counter()
            run()
            if record:
                self.times[part].append(time.process_time() - start)
                self.wall[part].append(time.perf_counter() - wall)

    def trial_seed(self) -> dict:
        def composed(times: dict[str, list[float]]) -> tuple[dict, float]:
            median = {part: statistics.median(values) for part, values in times.items()}
            evaluations = math.ceil(self.proxy.epochs / self.proxy.eval_every)
            return median, (self.proxy.epochs * median["epoch"] + evaluations * median["validation"]
                            + median["test"] + median["als"])

        median, total = composed(self.times)
        wall_median, wall_total = composed(self.wall)
        return {"train_images": self.data.size("train"), "val_images": self.data.size("val"),
                "test_images": self.data.size("test"), "epochs": self.proxy.epochs,
                "grid": list(self.proxy.grid), "width": self.proxy.width,
                **{f"{part}_cpu_s": value for part, value in median.items()}, "trial_seed_cpu_s": total,
                "trial_seed_wall_s": wall_total, "wall_s": wall_median}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="default,transfer-wide,transfer-data,transfer-mnist",
                        help="the proxy first, then the targets: presets or YAML files")
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds after one untimed warm-up round")
    parser.add_argument("--placement", default="sch1")
    args = parser.parse_args()
    torch.set_num_threads(1)
    subjects = [Subject(name, args.placement) for name in args.configs.split(",")]
    for index in range(args.repeats + 1):
        for subject in subjects:  # round-robin: a drift of the machine hits every config alike
            subject.round(record=index > 0)
    rows = {subject.name: subject.trial_seed() for subject in subjects}
    first = rows[subjects[0].name]
    for name, row in rows.items():
        row["ratio"] = row["trial_seed_cpu_s"] / first["trial_seed_cpu_s"]
        row["wall_ratio"] = row["trial_seed_wall_s"] / first["trial_seed_wall_s"]
        print(f"{name}: {row['train_images']} train images, grid {row['grid'][0]}x{row['grid'][1]}, width "
              f"{row['width']}, {row['epochs']} epochs: CPU s per epoch {row['epoch_cpu_s']:.2f}, validation "
              f"{row['validation_cpu_s']:.2f}, test {row['test_cpu_s']:.2f}, ALS {row['als_cpu_s']:.2f} -> one "
              f"trial-seed {row['trial_seed_cpu_s']:.0f} CPU s, {row['ratio']:.2f}x the {subjects[0].name}'s "
              f"({row['wall_ratio']:.2f}x in wall time)")
    print(f"wrote {write_json('transfer-cost', {'placement': args.placement, 'repeats': args.repeats, 'configs': rows})}")


if __name__ == "__main__":
    main()
