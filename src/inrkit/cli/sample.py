"""``inrkit sample NAME -o PATH``: write a sample input of the README and docs; ``inrkit sample`` lists them.

A thin wrapper over :func:`inrkit.samples.write_sample` and :func:`inrkit.samples.list_samples`.
"""
from __future__ import annotations

import argparse

from inrkit.cli.common import add_json_flag, declare_output, emit
from inrkit.errors import InvalidInputError


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def _cmd_sample(args: argparse.Namespace) -> int:
    from inrkit.samples import bundled_bytes, list_samples, write_sample

    if args.list or args.name is None:
        if args.output is not None:
            raise InvalidInputError("--output needs a sample NAME (inrkit sample NAME -o PATH)")
        samples = list_samples()
        if args.json:
            return emit({"samples": samples, "bundled_bytes": bundled_bytes()}, True)
        width = max(len(s["name"]) for s in samples)
        for s in samples:
            print(f"{s['name']:<{width}}  {s['file']:<16} {_size(s['bytes']):>8}  {s['kind']:<9}  {s['what']}")
            print(f"{'':<{width}}  source: {s['source']}; licence: {s['licence']}")
        print(f"bundled with inrkit: {_size(bundled_bytes())}; write one with: inrkit sample NAME -o PATH")
        return 0
    return emit(write_sample(args.name, args.output), args.json)


def register(commands: argparse._SubParsersAction) -> None:
    from inrkit.samples import SAMPLES

    p = commands.add_parser("sample", help="write a sample input (photo, volume, mesh, scene, series) of the docs; "
                                           "no NAME: list them")
    p.add_argument("name", nargs="?", metavar="NAME",  # checked after the output, by write_sample
                   help=f"sample to write: {', '.join(SAMPLES)} (none: list them)")
    p.add_argument("-o", "--output", default=None,
                   help="file or folder to write (default: the sample's usual name, e.g. kodim23.png, in the "
                        "current folder); its suffix must be the sample's")
    declare_output(p, "output", "--output", folder=None)
    p.add_argument("--list", action="store_true",
                   help="list the samples: name, size, source, licence (default: off; also without NAME)")
    add_json_flag(p)
    p.set_defaults(handler=_cmd_sample)
