"""`sepipe search EXP.yaml`: the per-layer compression search (sepipe.search) of an experiment with a `search:` section."""

from __future__ import annotations

import argparse

from sepipe.cli.common import bounded_int, parse_overrides


def add_parsers(sub, common: argparse.ArgumentParser) -> None:
    search = sub.add_parser("search", parents=[common],
                            help="NSGA-II over per-layer offline pruning and clustering, scored by the TFLite "
                                 "interpreter and Vela; writes the Pareto front and one YAML per chosen member")
    search.add_argument("--executor", default="local", choices=("local", "ray"),
                        help="where candidates are scored: local processes (search.workers) or Ray tasks")
    search.add_argument("--address", default=None, metavar="ADDR", help="join this Ray cluster (with --executor ray)")
    search.add_argument("--workers", type=bounded_int(1, 256), default=None, metavar="N",
                        help="candidate-scoring processes (overrides search.workers)")
    search.set_defaults(handler=_search)


def _search(args: argparse.Namespace) -> int:
    from sepipe.search.config import load_search
    from sepipe.search.run import run_search, search_dir

    overrides = parse_overrides(args.overrides)
    if args.workers is not None:
        overrides["search.workers"] = args.workers
    cfg, search_cfg, raw = load_search(args.experiment, overrides)
    summary = run_search(cfg, search_cfg, raw, source=args.experiment, executor=args.executor,
                         address=args.address, progress=not args.quiet)
    rate = summary["vela_cache_hit_rate"]
    print(f"search {cfg.name}: {summary['candidates_scored']} candidates scored ({summary['candidates_resumed']} "
          f"resumed), Vela cache hit rate {'-' if rate is None else f'{rate:.0%}'}, {summary['wall_s']:.0f} s; "
          f"{len(summary['front'])} on the front, {len(summary['chosen'])} written to {search_dir(cfg)}")
    return 0
