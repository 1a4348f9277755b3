"""``hub contracts check``: lint the data contracts, and refuse a new version that breaks the previous one.

The contracts are the operator's folder of ODCS files (``HUB_CONTRACTS_DIR``, or the folder given); each
is checked against the ontology and its producer's configuration (:func:`hub.contracts.lint`). With
``--previous`` (another folder, or a git revision of the same folder, such as ``HEAD`` or ``main``) each
contract is also compared with its previous version (:func:`hub.contracts.compare`): a breaking change
needs a new major version.

Exit status: 0 all is well; 1 a contract cannot be read or does not lint; 3 a contract breaks its
previous version (2 is the command line's own usage error).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Annotated, Final

import typer
import yaml
from rich.console import Console

from hub.contracts import Contract, ContractError, Problem, compare, lint, load_contracts, parse_contract
from hub.producers import ProducerConfigError, ProducerRegistry
from hub.settings import get_settings
from ontology.loader import load_ontology

EXIT_INVALID: Final = 1
EXIT_BREAKING: Final = 3

app = typer.Typer(help="Data contracts: what each producer promises about its stream.", no_args_is_help=True)
_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


@app.command("check")
def check(
    directory: Annotated[
        Path | None, typer.Argument(help="The contracts folder (default: HUB_CONTRACTS_DIR).")
    ] = None,
    previous: Annotated[
        str | None,
        typer.Option(
            "--previous",
            help="The previous contracts: a folder, or a git revision of DIRECTORY (e.g. HEAD, main).",
        ),
    ] = None,
) -> None:
    """Lint every contract in the folder against the ontology and the producers' configuration; with
    --previous, refuse a version that breaks its predecessor without a new major version."""
    settings = get_settings()
    folder = directory or settings.contracts_dir
    if folder is None:
        _err.print("[red]error:[/red] no contracts folder: give one, or set HUB_CONTRACTS_DIR")
        raise typer.Exit(EXIT_INVALID)
    try:
        registry = ProducerRegistry.from_settings(settings)
        current = load_contracts(folder)
    except (ContractError, ProducerConfigError) as exc:
        _err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_INVALID) from None
    ontology = load_ontology()
    problems = [p for c in current.values() for p in lint(c, ontology, registry)]
    _report(problems)
    if problems:
        _err.print(f"[red]{len(problems)} problem(s)[/red] in {len(current)} contract(s) in {folder}")
        raise typer.Exit(EXIT_INVALID)
    if previous is not None:
        try:
            before = _previous(previous, folder)
        except ContractError as exc:
            _err.print(f"[red]error:[/red] the previous contracts ({previous}): {exc}")
            raise typer.Exit(EXIT_INVALID) from None
        breaking = compare(before, current)
        _report(breaking)
        if breaking:
            _err.print(f"[red]{len(breaking)} incompatible change(s)[/red] since {previous}")
            raise typer.Exit(EXIT_BREAKING)
    versions = ", ".join(f"{c.producer} {c.version}" for c in current.values())
    since = f"; compatible with {previous}" if previous is not None else ""
    _out.print(f"{len(current)} contract(s) in {folder} lint cleanly ({versions}){since}")


def _report(problems: list[Problem]) -> None:
    for p in problems:
        _err.print(f"{p.file}: [bold]{p.clause}[/bold]: {p.message}")


def _previous(previous: str, folder: Path) -> dict[str, Contract]:
    """The contracts of ``previous``: a folder, else a git revision of ``folder``."""
    path = Path(previous)
    if path.is_dir():
        return load_contracts(path)
    git = ["git", "-C", str(folder)]
    try:
        prefix = _git([*git, "rev-parse", "--show-prefix"]).strip()
        names = _git([*git, "ls-tree", "--full-tree", "--name-only", f"{previous}:{prefix}"]).split()
    except ContractError as exc:
        raise ContractError(
            f"{previous!r} is neither a folder nor a git revision of {folder}: {exc}"
        ) from None
    found: dict[str, Contract] = {}
    for name in names:
        if not name.endswith((".yaml", ".yml")):
            continue
        label = f"{previous}:{prefix}{name}"
        try:
            data = yaml.safe_load(_git([*git, "show", label]))
        except yaml.YAMLError as exc:
            raise ContractError(f"{label}: cannot be read as YAML: {exc}") from None
        contract = parse_contract(data, label)
        found[contract.producer] = contract
    return found


def _git(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    except OSError as exc:
        raise ContractError(f"git cannot be run: {exc}") from None
    if done.returncode != 0:
        raise ContractError(done.stderr.strip() or f"{' '.join(argv)} exited with {done.returncode}")
    return done.stdout
