"""Print the `pip:` section of environment.yml as a requirements list.

Plain text parsing on purpose: it runs on the system python3 before any package
(PyYAML included) is installed.
"""
import sys


def pip_section(text: str) -> list[str]:
    reqs, indent = [], None
    for line in text.splitlines():
        stripped = line.strip()
        if indent is None:
            if stripped.startswith("- pip:"):
                indent = len(line) - len(line.lstrip())
            continue
        if not stripped or stripped.startswith("#"):
            continue
        if len(line) - len(line.lstrip()) <= indent:
            break
        if stripped.startswith("- "):
            reqs.append(stripped[2:].split("#")[0].strip())
    if not reqs:
        raise SystemExit("environment.yml: no `pip:` section found")
    return reqs


if __name__ == "__main__":
    print("\n".join(pip_section(open(sys.argv[1]).read())))
