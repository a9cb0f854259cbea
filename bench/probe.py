"""Run `python -m MODULE ARGS...` in this process and record its own resource usage at exit.

`python -m bench.probe OUT.json service sync` behaves exactly like `python -m service sync`
(same interpreter, same argv, same exit code), and when the interpreter exits it writes to
OUT.json the peak RSS of this process alone (VmHWM), its CPU (RUSAGE_SELF), and the bytes it
passed to write() (/proc/self/io wchar).

Why a wrapper: the rusage that wait4() returns for a child includes the children *it* reaped,
so the parent alone cannot tell our Python's peak RSS from pg_dump's. And ru_maxrss is no
good either: Linux folds in the memory map a process had before exec (a copy of its
parent's), whereas VmHWM belongs to the map exec gave it.
Only the standard library is imported here, so the wrapper adds no measurable cost.
"""

from __future__ import annotations

import atexit
import json
import resource
import runpy
import sys
from pathlib import Path


def _io() -> dict[str, int]:
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return {}
    return {k: int(v) for k, v in (ln.split(": ") for ln in text.splitlines())}


def _hwm_kb() -> int:
    """Peak RSS of this process's own memory map (VmHWM), which starts afresh at exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _record(out: Path) -> None:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    io = _io()
    out.write_text(
        json.dumps(
            {
                "self_maxrss_kb": _hwm_kb(),
                "self_cpu_s": me.ru_utime + me.ru_stime,
                "children_cpu_s": kids.ru_utime + kids.ru_stime,
                "write_bytes_syscall": io.get("wchar", -1),
            }
        )
    )


def main() -> None:
    out, module, *args = sys.argv[1:]
    atexit.register(_record, Path(out))
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
