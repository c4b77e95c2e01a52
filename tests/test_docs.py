"""The README and the docs pages: links that resolve, a README that stays short and true, a site nav that
lists every notebook. Fast and static: nothing here builds the site (`make docs` does, with --strict)."""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def _prose(text: str) -> str:
    """The text outside fenced code blocks and inline code, where a link is a link."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def _slug(heading: str) -> str:
    """Python-Markdown's toc slug (what mkdocs checks); GitHub's agrees for these headings."""
    value = unicodedata.normalize("NFKD", re.sub(r"`", "", heading)).encode("ascii", "ignore").decode()
    value = re.sub(r"[^\w\s-]", "", value).strip().lower()
    return re.sub(r"[-\s]+", "-", value)


def _anchors(page: Path) -> set[str]:
    return {_slug(m.group(1)) for line in _prose(page.read_text()).splitlines() if (m := HEADING.match(line))}


def _relative_links(page: Path):
    for target in LINK.findall(_prose(page.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        yield target, (page.parent / path).resolve() if path else page, anchor


def _site_files() -> set[Path]:
    """What `make docs` stages for mkdocs: a link to anything else is a broken link on the site."""
    return {ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").rglob("*"), *NOTEBOOKS}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page):
    assert page.exists()
    broken, off_site = [], []
    for target, path, anchor in _relative_links(page):
        if not path.exists():
            broken.append(target)
        elif path not in _site_files():
            off_site.append(target)
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(target)
    assert not broken, f"{page.name}: links to missing files or headings: {broken}"
    assert not off_site, (f"{page.name}: links to files the site does not carry (name them in `code` instead, "
                          f"or stage them in the Makefile's docs target): {off_site}")


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; detail belongs in docs/, history in CHANGELOG.md"


def test_readme_links_every_docs_page_and_every_notebook():
    linked = {path for _, path, _ in _relative_links(ROOT / "README.md")}
    missing = [p.relative_to(ROOT).as_posix() for p in [*(ROOT / "docs").glob("*.md"), *NOTEBOOKS, ROOT / "CHANGELOG.md"]
               if p.resolve() not in linked]
    assert not missing, f"README.md does not link {missing}"


def test_readme_test_command_is_the_makefiles():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^test: .*\n\t\$\(PY\) -m (pytest .*)$", makefile, re.M)
    assert recipe, "Makefile: no `test:` target running $(PY) -m pytest"
    assert f"`{recipe.group(1).strip()}`" in (ROOT / "README.md").read_text()


def test_readme_module_map_names_files_that_exist():
    """Every `medvid_core/...` path in the README exists, and so does every file a folder's row lists."""
    text = (ROOT / "README.md").read_text()
    paths = set(re.findall(r"`(medvid_core/[\w/.<>]+)`", text))
    assert paths
    missing = [p for p in paths if "<" not in p and not (ROOT / p).exists()]
    for row in re.findall(r"^\| `(medvid_core/\w+/)` \|(.*)$", text, re.M):
        folder, cells = row
        missing += [folder + f for f in re.findall(r"`(\w+\.py)`", cells) if not (ROOT / folder / f).exists()]
    assert not missing, f"README's layout names files that do not exist: {missing}"


def test_readme_module_map_names_every_module():
    """The map stays true the other way too: every module of medvid_core is named in the README's layout."""
    text = (ROOT / "README.md").read_text()
    unnamed = []
    for path in sorted((ROOT / "medvid_core").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if path.name == "__init__.py" or "/studies/" in rel:
            continue  # packages, and the study rooms (named together as studies/<study>.py)
        if f"`{rel}`" in text or f"`{path.name}`" in text:
            continue
        unnamed.append(rel)
    assert not unnamed, f"modules the README's layout does not name: {unnamed}"


def _nav_paths(nav) -> list[str]:
    out = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        out += _nav_paths(value) if isinstance(value, list) else [value]
    return out


def test_mkdocs_nav_lists_every_notebook_and_existing_pages_only():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = _nav_paths(config["nav"])
    assert not [p for p in nav if not (ROOT / p).exists()], "mkdocs nav names missing files"
    unlisted = [p.relative_to(ROOT).as_posix() for p in [*NOTEBOOKS, *(ROOT / "docs").glob("*.md")]
                if p.relative_to(ROOT).as_posix() not in nav]
    assert not unlisted, f"not in mkdocs.yml's nav: {unlisted}"
    jupyter = next(p["mkdocs-jupyter"] for p in config["plugins"] if isinstance(p, dict) and "mkdocs-jupyter" in p)
    assert jupyter["execute"] is False, "the site renders the committed outputs; it never executes a notebook"


def test_docs_target_stages_what_the_links_assume():
    recipe = (ROOT / "Makefile").read_text().split("\ndocs: ", 1)[1].split("\n\n", 1)[0]
    for line in ["cp README.md CHANGELOG.md build/docs/", "cp -R docs build/docs/docs",
                 "cp notebooks/*.ipynb build/docs/notebooks/", "mkdocs build --strict"]:
        assert line in recipe


def test_mkdocs_config_loads_with_its_plugins(tmp_path):
    """With mkdocs installed: the theme and plugins the config names are there and accept its options."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocs_jupyter")
    from mkdocs.config import load_config

    (tmp_path / "docs").mkdir()
    config = load_config(str(ROOT / "mkdocs.yml"), docs_dir=str(tmp_path / "docs"), site_dir=str(tmp_path / "site"))
    assert config["theme"].name == "material"
    assert config["plugins"]["mkdocs-jupyter"].config["include"] == ["*.ipynb"]
