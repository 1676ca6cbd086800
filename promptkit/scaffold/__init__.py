"""``promptkit init``: promptkit's files in an app's repository, never over the app's own.

It writes one example template with a label and its lock, an eval of it (the bundled local
model, a hosted model commented out, a scripted stand-in model for offline runs), the
GitHub Actions workflow, and ``requirements-evals.txt`` pinning promptkit the way it is
installed here. A file that already exists is skipped and reported, never overwritten.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path

from .. import __version__
from ..errors import ConfigError, OutputError

DISTRIBUTION = "promptkit-evals"
WORKFLOW = ".github/workflows/prompt-evals.yml"
REQUIREMENTS = "requirements-evals.txt"
LOCK = "templates/promptkit.lock"

# Packaged file -> where it goes in the app.
FILES = {
    "templates/classify/v1.jinja": "templates/classify/v1.jinja",
    "templates/classify/labels.yaml": "templates/classify/labels.yaml",
    "evals/classify.yaml": "evals/classify.yaml",
    "evals/data/reviews.jsonl": "evals/data/reviews.jsonl",
    "evals/fake_model.py": "evals/fake_model.py",
    "evals/baselines/README.md": "evals/baselines/README.md",
    "prompt-evals.yml": WORKFLOW,
}


@dataclass
class InitResult:
    """What :func:`init_project` did, as paths relative to the project root."""

    created: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def packaged(name: str) -> str:
    """The text of one scaffold file shipped with promptkit."""
    return resources.files(__package__).joinpath("files", name).read_text(encoding="utf-8")


def init_project(root: str | Path = ".") -> InitResult:
    """Write promptkit's files into ``root`` (made if missing); skip every file that exists.

    Every target is checked before the first is written, so a problem leaves the folder as
    it was.

    Raises:
        ConfigError: ``root`` is empty or a file, or a path init needs is taken by a
            folder, a broken link or a file where it needs a folder.
        OutputError: a file cannot be written (a read-only folder, a full disk).
    """
    if str(root) == "":
        raise ConfigError("init needs a folder name ('.' for the current folder)")
    root = Path(root)
    texts = {target: packaged(source) for source, target in FILES.items()}
    texts[REQUIREMENTS] = requirements_text()
    result = InitResult()
    writes = {}
    try:  # a name too long, a folder without permission: one line, nothing written
        if root.exists() and not root.is_dir():
            raise ConfigError(f"{root}: not a folder")
        top = _repository_top(root)
        if top is not None and top != root.resolve():
            within = root.resolve().relative_to(top).as_posix()
            note = (f"{root} is inside the git repository {top}: GitHub runs only workflows "
                    f"in {top / '.github/workflows'}; move {WORKFLOW} there")
            if re.fullmatch(r"[\w.-]+(/[\w.-]+)*", within):
                texts[WORKFLOW] = workflow_text(within)
                note += f" (its paths already start with {within}/ and its steps run there)"
            else:
                note += (f" and start its paths with {within}/ (templates/**, evals/**, "
                         "requirements-evals.txt, the cache and the uploads), with "
                         f"jobs.eval.defaults.run.working-directory: {within}")
            result.notes.append(note)
        for target, text in texts.items():
            if _existing(root, target):
                result.skipped.append(target)
            else:
                writes[target] = text
        lock_exists = _existing(root, LOCK)
    except OSError as exc:
        raise ConfigError(f"{root}: {exc.strerror or exc}") from None
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{root}: cannot make the folder: {exc.strerror or exc}") from None
    for target, text in writes.items():
        _write(root / target, text)
        result.created.append(target)
    if lock_exists:
        result.skipped.append(LOCK)
        if "templates/classify/v1.jinja" in result.created:
            result.notes.append("run `promptkit templates lock` to add the example template "
                                "to your lock")
    else:
        from ..templates import TemplateStore
        from ..templates.lockfile import lock

        locked = lock(TemplateStore(root / "templates"))
        result.created.append(LOCK)
        theirs = sorted(set(locked.added) - {Path(t).relative_to("templates").as_posix()
                                       for t in FILES if t.startswith("templates/")})
        if theirs:
            result.notes.append(
                f"the lock also covers {len(theirs)} file(s) templates/ already held (e.g. "
                f"{theirs[0]}): `promptkit templates check` fails when one changes; keep "
                "files promptkit should not lock out of templates/")
    return result


def _existing(root: Path, target: str) -> bool:
    """Whether ``target`` exists as a file to leave alone (False: init may write it).

    Raises:
        ConfigError: it cannot be a file here (a folder, a broken or looping link, or a
            file where a folder of its path should be).
    """
    path = root / target
    for parent in reversed(Path(target).parents[:-1]):
        folder = root / parent
        if folder.is_symlink() and not folder.exists():
            raise ConfigError(f"{folder}: a broken link is where init needs a folder")
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"{folder}: a file is where init needs a folder")
    try:
        path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise ConfigError(f"{path}: a broken link is where init would write a file; "
                              "remove it or make it point to a file") from None
        return False
    except OSError as exc:  # a link loop, a name too long, no permission
        raise ConfigError(f"{path}: cannot check it: {exc.strerror or exc}") from None
    if path.is_dir():
        raise ConfigError(f"{path}: a folder is where init would write a file")
    return True


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8", newline="\n") as handle:  # never overwrites
            handle.write(text)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None


def _repository_top(root: Path) -> Path | None:
    """The top folder of the git repository ``root`` is in (None outside any)."""
    here = root.resolve()
    return next((folder for folder in (here, *here.parents) if (folder / ".git").exists()),
                None)


def workflow_text(within: str = "") -> str:
    """The GitHub Actions workflow, for an app at the repository's top or in the folder
    ``within`` it: then every path the workflow names starts with it, and its steps run
    there."""
    text = packaged("prompt-evals.yml")
    if not within:
        return text
    for old, new in (
        ('paths: ["templates/**", "evals/**", "requirements-evals.txt"]',
         f'paths: ["{within}/templates/**", "{within}/evals/**", '
         f'"{within}/requirements-evals.txt"]'),
        ("cache-dependency-path: requirements-evals.txt",
         f"cache-dependency-path: {within}/requirements-evals.txt"),
        ("path: evals/.promptkit/cache.db", f"path: {within}/evals/.promptkit/cache.db"),
        ("hashFiles('templates/**', 'evals/**')",
         f"hashFiles('{within}/templates/**', '{within}/evals/**')"),
        ("            report.html\n            results.xml\n            summary.md\n",
         f"            {within}/report.html\n            {within}/results.xml\n"
         f"            {within}/summary.md\n"),
        ("    env:\n      EVAL:",
         f"    defaults:\n      run:\n        working-directory: {within}\n"
         "    env:\n      EVAL:"),
    ):
        if old not in text:
            raise AssertionError(f"the packaged workflow lacks {old!r}")  # a packaging bug
        text = text.replace(old, new)
    return text


def requirements_text() -> str:
    """``requirements-evals.txt``: promptkit pinned to where this copy was installed from."""
    header = ("# promptkit for the prompt-evals workflow (and your machine):\n"
              "#   pip install -r requirements-evals.txt\n"
              "# Drop [local] if your evals use hosted models only.\n")
    requirement, note = install_source()
    return header + (f"# {note}\n" if note else "") + requirement + "\n"


def install_source() -> tuple[str, str]:
    """(requirement line, a note when CI cannot use it) for this copy of promptkit."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
        direct = json.loads(dist.read_text("direct_url.json") or "null")
    except (metadata.PackageNotFoundError, ValueError):
        direct = None
    name = f"{DISTRIBUTION}[local]"
    if not isinstance(direct, dict):  # from a package index
        return f"{name}=={__version__}", ""
    url = str(direct.get("url", ""))
    vcs = direct.get("vcs_info")
    if isinstance(vcs, dict) and vcs.get("commit_id"):
        line = f"{name} @ {vcs.get('vcs', 'git')}+{url}@{vcs['commit_id']}"
        if not url.startswith("file:"):
            return line, ""
        return line, ("installed from a git repository on this machine, which CI cannot "
                      f"reach: replace the line below with a pinned git URL ({name} @ "
                      "git+https://HOST/OWNER/promptkit@TAG)")
    return (f"{name} @ {url}", "installed from a local path or wheel, which CI cannot reach: "
            f"replace the line below with a pinned git URL ({name} @ "
            "git+https://HOST/OWNER/promptkit@TAG) or a wheel committed to this repo")
