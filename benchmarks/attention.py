"""Training-step time of mait_tiny (sch1, sch2) over timm's deit_tiny_patch16_224 at batch 32,
and at the proxy size (width 64, 8x8 grid), side by side in one process. Target ratio <= 1.05.

    python benchmarks/attention.py [--repeats 10]

The same measurement as step.py, restricted to the two paper placements (issue 2's check).
"""

try:
    from .step import main
except ImportError:
    from step import main

if __name__ == "__main__":
    main(default_placements="sch1,sch2", name="attention")
