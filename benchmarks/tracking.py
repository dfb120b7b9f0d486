"""Chapter 7's linkers over more movies: frame-to-frame nearest neighbour against laptrack's
LAP tracker with gap closing and divisions, at two motion levels.

Each movie is simulated by ``dlbio_teach.movies.synthetic_movie`` (the chapter's settings:
128 x 128 pixels, 41 steps, nucleus radius 6 pixels, random motion 0.4 radius per step,
division rate 0.02 per step) and both linkers run on its *true* masks, so that only the
links can be wrong. The slow motion level takes a frame every step, the fast one every
third step (the same nuclei over the same time, a third of the frames). Scores come from
``traccuracy`` (``dlbio_teach.tracking.score_tracking``): TRA, DET and LNK averaged over
movies, the division F1 pooled over them, each with a 95 % percentile bootstrap interval
over movies (``summarize_scores``); the time per frame is the linking time alone.

    python benchmarks/tracking.py --movies 5

The last line summarises the slow motion level::

    TRA (LAP with divisions) T [lo, hi]; TRA (nearest neighbour) T [lo, hi];
    division F1 F vs F; N movies

(on one line).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from dlbio_teach.movies import divisions, synthetic_movie
from dlbio_teach.tracking import (
    link_lap,
    link_nearest,
    motion_per_frame,
    score_tracking,
    summarize_scores,
)

SIM = dict(n_nuclei=11, radius=6.0, speed=0.4, drift=(0.0, 0.3), division_rate=0.02,
           bleaching=0.01, photons=30.0)
N_STEPS = 41
MAX_DISTANCE = 12.0
LINKERS = {"nearest neighbour": lambda m: link_nearest(m, max_distance=MAX_DISTANCE),
           "LAP with divisions": lambda m: link_lap(m, max_distance=MAX_DISTANCE)}


def _ci(ci, digits=3):
    return f"{ci.estimate:.{digits}f} [{ci.low:.{digits}f}, {ci.high:.{digits}f}]"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movies", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=1000,
                        help="seeds first-seed, first-seed + 1, ... (not the chapter's 0..4)")
    args = parser.parse_args(argv)
    seeds = range(args.first_seed, args.first_seed + args.movies)
    print("| motion | linker | TRA | DET | LNK | division F1 | ms per frame |")
    print("|---|---|---|---|---|---|---|")
    summary = {}
    for level, interval in (("slow", 1), ("fast", 3)):
        movies = [synthetic_movie((N_STEPS - 1) // interval + 1, (128, 128), seed=s,
                                  frame_interval=interval, **SIM) for s in seeds]
        step = np.median([motion_per_frame(m) for m in movies])
        n_div = sum(len(divisions(m.tracks)) for m in movies)
        for name, link in LINKERS.items():
            scores, seconds = [], 0.0
            for movie in movies:
                start = time.perf_counter()
                result = link(movie.labels)
                seconds += time.perf_counter() - start
                scores.append(score_tracking(movie, result))
            s = summarize_scores(scores, seed=0)
            summary[(level, name)] = s
            frames = sum(m.n_frames for m in movies)
            print(f"| {level}: {step:.1f} px/frame = {step / (2 * SIM['radius']):.2f} diameters, "
                  f"{n_div} divisions | {name} | {_ci(s['TRA'])} | {_ci(s['DET'])} | "
                  f"{_ci(s['LNK'])} | {_ci(s['division F1'], 2)} | "
                  f"{1000 * seconds / frames:.1f} |")
    lap, nn = summary[("slow", "LAP with divisions")], summary[("slow", "nearest neighbour")]
    print(f"TRA (LAP with divisions) {_ci(lap['TRA'])}; TRA (nearest neighbour) {_ci(nn['TRA'])}; "
          f"division F1 {lap['division F1'].estimate:.2f} vs {nn['division F1'].estimate:.2f}; "
          f"{args.movies} movies")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
