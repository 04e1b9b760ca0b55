"""Bad-configuration cases: the shipped example with one edit, and the exact error it must give.

Each kind of bad configuration is one file ``tests/fixtures/bad_config/<case>.yaml``::

    description: a latitude beyond 90           # what is wrong, in words
    file: sites.yaml                            # the example file the defect is in
    replace:                                    # one of the three edits below
      old: '    lat: 27.1800'                   #   exact text, once in that file
      new: '    lat: 127.1800'
    # append: "text added at the end of the file\\n"
    # delete_file: true
    expect: |                                   # the exact FILE: PATH: REASON line(s), in order
      sites.yaml: sites[1].lat: out of range: must be at most 90, got 127.18

A case is applied to a fresh copy of ``config/example/`` cut to the three sites the scenarios
drive (:func:`materialise`, :func:`three_sites`; the rest of the city does not change what a case
tests, and its repeated lines would make ``old`` texts ambiguous): editing the example
touches only the cases whose ``old`` text or exact message the edit changes (a message may quote a
line number or the list of zones). When the example drifts under a case -- its ``old`` text is gone
or now occurs twice -- applying it fails with :class:`FixtureDoesNotApply` naming the case, never
silently testing the unchanged example.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

__all__ = [
    "BAD_CONFIG",
    "EXAMPLE",
    "BadConfigCase",
    "FixtureDoesNotApply",
    "case_names",
    "load_case",
    "materialise",
]

TESTS = Path(__file__).resolve().parents[1]
EXAMPLE = TESTS.parent / "config" / "example"
BAD_CONFIG = TESTS / "fixtures" / "bad_config"

_KEYS = {"description", "file", "replace", "append", "delete_file", "expect"}
_EDITS = ("replace", "append", "delete_file")


class FixtureDoesNotApply(AssertionError):
    """A case's edit no longer fits the example (or the case file itself is malformed)."""


@dataclass(frozen=True)
class BadConfigCase:
    """One kind of bad configuration: an edit of one example file and the issues it causes."""

    name: str
    description: str
    file: str
    expect: tuple[str, ...]
    old: str | None = None
    new: str | None = None
    append: str | None = None
    delete_file: bool = False

    def apply(self, directory: Path) -> None:
        """Make the defect in ``directory``, a copy of the example (other cases may be applied)."""
        target = directory / self.file
        where = f"{self.file} in {directory}"
        if not target.is_file():
            raise FixtureDoesNotApply(f"fixture {self.name} no longer applies: no {where}")
        if self.delete_file:
            target.unlink()
            return
        text = target.read_text(encoding="utf-8")
        if self.append is not None:
            if text and not text.endswith("\n"):
                text += "\n"
            text += self.append if self.append.endswith("\n") else self.append + "\n"
        else:
            assert self.old is not None and self.new is not None
            count = text.count(self.old)
            if count != 1:
                raise FixtureDoesNotApply(
                    f"fixture {self.name} no longer applies: its replace.old text occurs {count} "
                    f"times in {where}, must be exactly once: {self.old!r}"
                )
            text = text.replace(self.old, self.new)
        target.write_text(text, encoding="utf-8")


def case_names() -> list[str]:
    """The cases, by file name; a case file is read (and checked) only by the test that uses it."""
    return sorted(p.stem for p in BAD_CONFIG.glob("*.yaml"))


def load_case(name: str) -> BadConfigCase:
    """Read ``<name>.yaml``, failing loudly on anything but exactly one well-formed edit."""
    path = BAD_CONFIG / f"{name}.yaml"

    def bad(reason: str) -> FixtureDoesNotApply:
        return FixtureDoesNotApply(f"fixture {name} ({path}) is malformed: {reason}")

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise bad(str(exc)) from exc
    if not isinstance(data, dict):
        raise bad("not a mapping")
    if unknown := set(data) - _KEYS:
        raise bad(f"unknown keys {sorted(unknown)}")
    for key in ("description", "file", "expect"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise bad(f"{key!r} must be a non-empty string")
    if data["file"] not in {p.name for p in EXAMPLE.glob("*.yaml")}:
        raise bad(f"config/example/ has no file {data['file']!r}")
    edits = [key for key in _EDITS if key in data]
    if len(edits) != 1:
        raise bad(f"needs exactly one of {list(_EDITS)}, got {edits}")
    old = new = append = None
    if "replace" in data:
        replace = data["replace"]
        if not isinstance(replace, dict) or set(replace) != {"old", "new"}:
            raise bad("replace must be {old: ..., new: ...}")
        old, new = replace["old"], replace["new"]
        if not (isinstance(old, str) and isinstance(new, str) and old and old != new):
            raise bad("replace.old and replace.new must be strings, old non-empty and != new")
    elif "append" in data:
        append = data["append"]
        if not isinstance(append, str) or not append.strip():
            raise bad("append must be non-empty text")
    elif data["delete_file"] is not True:
        raise bad("delete_file can only be true")
    return BadConfigCase(
        name=name,
        description=data["description"],
        file=data["file"],
        expect=tuple(data["expect"].splitlines()),
        old=old,
        new=new,
        append=append,
        delete_file="delete_file" in data,
    )

#: Where the example's files go on from the three sites the scenarios drive to the rest of the city.
REST_OF_CITY = {"sites.yaml": "  # ================================================================ the rest of the city",
                "zones.yaml": "  # ---------------------------------------------------------------- the rest of the city"}


def three_sites(directory: Path) -> None:
    """Cut the example in ``directory`` down, as text, to its first three sites (CH-001, TD-001,
    RG-001), their zones and their people: the cases were written against them, and every line
    of them stays as it is in the example."""
    for name, marker in REST_OF_CITY.items():
        path = directory / name
        text = path.read_text(encoding="utf-8")
        if marker not in text:
            raise FixtureDoesNotApply(f"{name} of the example no longer has the line {marker.strip()!r}")
        path.write_text(text[:text.index(marker)].rstrip("\n") + "\n", encoding="utf-8")
    config = yaml.safe_load((directory / "sites.yaml").read_text(encoding="utf-8"))
    enterprises = {s["enterprise"] for s in config["sites"]}
    regions = {s["region"] for s in config["sites"]}
    path = directory / "recipients.yaml"
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("  - {"):
            person = yaml.safe_load(line[4:])
            if person["role"] == "officer" and person["enterprise"] not in enterprises:
                continue
            if person.get("tier") == "county" and person["region"] not in regions:
                continue
        kept.append(line)
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")


def materialise(directory: Path, *cases: BadConfigCase) -> Path:
    """Copy the example to ``directory`` (which must not exist), cut to its first three sites
    (:func:`three_sites`), and apply ``cases`` in order."""
    shutil.copytree(EXAMPLE, directory)
    three_sites(directory)
    for case in cases:
        case.apply(directory)
    return directory


if __name__ == "__main__":
    # Write one case out, to read it or to run the CLI on it:
    #   python -m tests.config.fixtures quiet_hours_not_quoted /tmp/bad
    #   hazwatch check-config /tmp/bad
    import sys

    if len(sys.argv) != 3:
        sys.exit(f"usage: python -m tests.config.fixtures CASE DIRECTORY\ncases: {case_names()}")
    print(materialise(Path(sys.argv[2]), load_case(sys.argv[1])))
