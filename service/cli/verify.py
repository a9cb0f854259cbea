"""The `verify` command: parse, call, print. The verify itself is service/verify.py, imported
when the command runs (this module is imported to build the parser)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.cli.common import add_target_option, clear_errors, print_items, show_path, target_paths
from service.compare.escape import visible

if TYPE_CHECKING:
    from service.compare.inventory import Inventory
    from service.settings.model import Settings
    from service.verify import VerifyResult

EXIT_OK, EXIT_FAILED = 0, 1

DESCRIPTION = """\
Installs the schema file into a fresh scratch database on the verify server with psql
ON_ERROR_STOP, then re-dumps it: the dump must equal the files byte for byte and its objects
must equal inventory.json. The scratch database
(pg_schema_sync_verify_<host>_<pid>_<start>_<random>) is dropped afterwards, also on errors
and Ctrl-C; one a killed verify left is dropped by the next.

the verify server:
  verify_dsn (SCHEMA_SYNC_VERIFY_DSN): a libpq DSN, never production's PG* variables. Its
  password comes from the DSN, or better from a passfile (PGPASSFILE, or passfile=... in
  the DSN). Before installing anything verify checks, and reports all at once: the role may
  CREATE DATABASE; every role the files name exists there; the role is a member of each role
  owning objects in the files (GRANT app_owner TO verifier) and of each role of ALTER DEFAULT
  PRIVILEGES FOR ROLE; every extension of the files is available there.

--no-owners:
  install the files without their OWNER TO statements and compare without owners (the
  setting verify_owners = false does the same), for a verify server where the verify role
  cannot be made a member of the owning roles.

exit status:
  0  passed
  1  failed: the first failing statement with file:line, a missing extension, or the objects
     that differ
  2  could not run: settings, the verify server unreachable or not ready (each lack listed)
"""


def register(sub: Any, common: argparse.ArgumentParser, filters: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "verify",
        parents=[common, filters],
        help="prove the schema files install and reproduce production",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--diff", action="store_true", help="print each differing object's diff")
    add_target_option(p)
    p.set_defaults(handler=cmd_verify)


def _inputs(schema: Path, functions: Path, inventory: Path) -> tuple[Path | None, Inventory | None]:
    """(functions file if present, reference inventory if present); schema must exist."""
    from service.compare.inventory import Inventory
    from service.disk import files
    from service.verify import VerifyError

    files.refuse_links(schema, functions, inventory)  # psql -f would follow them
    if not schema.is_file():
        raise VerifyError(f"{show_path(schema)} does not exist: run `pg-schema-sync sync` first")
    reference = None
    if inventory.is_file():
        try:
            reference = Inventory.from_json(files.read_regular(inventory).decode("utf-8"))
        except (ValueError, KeyError, TypeError) as exc:
            what = f"{show_path(inventory)} is not a readable inventory"
            raise VerifyError(f"{what}: {exc}") from None
    return (functions if functions.is_file() else None), reference


async def run_verify(
    settings: Settings, schema: Path, functions: Path, inventory: Path
) -> VerifyResult:
    import asyncio

    from service.verify import verify_files, verify_options, verify_server

    server = verify_server(settings)
    functions_file, reference = await asyncio.to_thread(_inputs, schema, functions, inventory)
    export, catalog = verify_options(settings)
    return await verify_files(
        server, schema, functions_file, reference, export, catalog, display_file=show_path(schema)
    )


def print_verify(result: VerifyResult, what: str, with_diff: bool) -> int:
    if result.problem is None:
        print(f"verify passed: {what} installs and re-dumps identically ({result.duration_s:.1f}s)")
        return EXIT_OK
    print(f"verify failed: {visible(result.problem.one_line())}")
    print_items(result.drift, with_diff)
    return EXIT_FAILED


@clear_errors
async def cmd_verify(args: argparse.Namespace) -> int:
    settings, paths = target_paths(args)
    result = await run_verify(
        settings, paths.schema_file, paths.functions_file, paths.inventory_file
    )
    return print_verify(result, show_path(paths.schema_file), args.diff)
