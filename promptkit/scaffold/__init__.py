"""``promptkit init``: promptkit's files in an app's repository, never over the app's own.

It writes one example template with a label and its lock, an eval of it (the bundled local
model, a hosted model commented out, a scripted stand-in model for offline runs), the
GitHub Actions workflow, and ``requirements-evals.txt`` pinning promptkit the way it is
installed here. A file that already exists is skipped and reported, never overwritten.
"""

from __future__ import annotations

import json
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
    """Write promptkit's files into ``root``; skip every file that exists.

    Raises:
        ConfigError: ``root`` is not a folder, or a path it needs is taken by a file.
    """
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: not a folder")
    result = InitResult()
    for source, target in FILES.items():
        _write(root, target, packaged(source), result)
    _write(root, REQUIREMENTS, requirements_text(), result)
    _lock(root, result)
    return result


def _write(root: Path, target: str, text: str, result: InitResult) -> None:
    path = root / target
    if path.exists() or path.is_symlink():
        result.skipped.append(target)
        return
    for parent in reversed(path.relative_to(root).parents[:-1]):
        if (root / parent).exists() and not (root / parent).is_dir():
            raise ConfigError(f"{root / parent}: a file is where init needs a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x", encoding="utf-8", newline="\n") as handle:  # never overwrites
            handle.write(text)
    except FileExistsError:
        result.skipped.append(target)
        return
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    result.created.append(target)


def _lock(root: Path, result: InitResult) -> None:
    """Lock the example template; an app's existing lock is left for it to update."""
    if (root / LOCK).exists():
        result.skipped.append(LOCK)
        if "templates/classify/v1.jinja" in result.created:
            result.notes.append("run `promptkit templates lock` to add the example template "
                                "to your lock")
        return
    from ..templates import TemplateStore
    from ..templates.lockfile import lock

    lock(TemplateStore(root / "templates"))
    result.created.append(LOCK)


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
        return f"{name} @ {vcs.get('vcs', 'git')}+{url}@{vcs['commit_id']}", ""
    return (f"{name} @ {url}", "installed from a local path or wheel, which CI cannot reach: "
            f"replace the line below with a pinned git URL ({name} @ "
            "git+https://HOST/OWNER/promptkit@TAG) or a wheel committed to this repo")
