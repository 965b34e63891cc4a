#!/usr/bin/env python3
"""Keeps the README's code true (ctest: readme_examples, readme_commands).

  check_readme.py [--readme README.md] --examples
      Every code block preceded by `<!-- readme: PATH ... -->` must equal the file PATH (the
      README's "API in one screen" is examples/readme.cpp, its C example examples/readme.c;
      ctest builds and runs both). The commands named in ```console blocks (tools/*.sh) must
      exist and be executable. Every ratio in a README table headed "PyTorch / diffblocks" must
      be one docs/performance.md's generated tables give (bold, as bench_report.py writes).
  check_readme.py [--readme README.md] --run BUILD_DIR --work DIR
      Runs every command of every ```sh block, in order, with bash, from DIR, where `build`
      links to BUILD_DIR and examples/, tests/, tools/ to the source tree's (so the README's
      relative paths work and what the commands write lands in DIR). A command that exits
      non-zero fails the check, naming the command and showing its output.
  check_readme.py [--readme README.md] --python PYTHON --work DIR
      Runs every ```python block with PYTHON (one with the package installed: tools/test_python.sh
      runs this), from DIR set up as for --run (without build).

Standard library only (CI's system python3)."""
import argparse
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def blocks(text):
    """(language, body, the line before the fence, line number) of every fenced block."""
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if m and m.group(1):
            start = i
            j = i + 1
            while j < len(lines) and lines[j] != "```":
                j += 1
            prev = lines[start - 1] if start > 0 else ""
            out.append((m.group(1), "\n".join(lines[start + 1:j]) + "\n", prev, start + 1))
            i = j + 1
        else:
            i += 1
    return out


def commands(body):
    """Shell commands of a block: comments dropped, backslash continuations joined."""
    cmds, cur = [], ""
    for line in body.split("\n"):
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        cur += line
        cmds.append(" ".join(cur.split()))
        cur = ""
    if cur:
        cmds.append(" ".join(cur.split()))
    return cmds


def check_examples(readme, text):
    failures = 0
    for lang, body, prev, line in blocks(text):
        m = re.match(r"^<!-- readme: (\S+)", prev)
        if m:
            path = os.path.join(ROOT, m.group(1))
            if not os.path.isfile(path):
                print(f"{readme}:{line}: the block names {m.group(1)}, which does not exist")
                failures += 1
                continue
            with open(path, encoding="utf-8") as f:
                want = f.read()
            if want != body:
                print(f"{readme}:{line}: the ```{lang} block differs from {m.group(1)}; keep them equal")
                import difflib
                sys.stdout.writelines(difflib.unified_diff(want.splitlines(True), body.splitlines(True),
                                                           m.group(1), "README block"))
                failures += 1
            else:
                print(f"{readme}:{line}: equals {m.group(1)}")
        if lang == "console":
            for cmd in commands(body):
                tool = cmd.split()[0]
                if tool.startswith("tools/"):
                    path = os.path.join(ROOT, tool)
                    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
                        print(f"{readme}:{line}: '{tool}' is not an executable file")
                        failures += 1
    return failures


def scratch(work, build=None):
    """A fresh DIR where examples/, tests/, tools/ (and build/) lead to the real ones."""
    if os.path.isdir(work):
        shutil.rmtree(work)
    os.makedirs(work)
    for name in ("examples", "tests", "tools"):
        os.symlink(os.path.join(ROOT, name), os.path.join(work, name))
    if build:
        os.symlink(os.path.abspath(build), os.path.join(work, "build"))


def check_ratios(readme, text):
    """README ratios quoted from docs/performance.md's generated tables must be there."""
    perf_path = os.path.join(ROOT, "docs", "performance.md")
    with open(perf_path, encoding="utf-8") as f:
        perf = f.read()
    generated = set(re.findall(r"\*\*(\d+\.\d+)(?: \([^)]*\))?x\*\*", perf))
    failures, in_table = 0, False
    for i, line in enumerate(text.split("\n"), 1):
        # a table whose header (or a row) says "PyTorch / diffblocks": all its rows
        in_table = line.startswith("|") and (in_table or "PyTorch / diffblocks" in line)
        if in_table:
            for r in re.findall(r"(\d+\.\d+)x", line):
                if r not in generated:
                    print(f"{readme}:{i}: ratio {r}x is not in docs/performance.md's generated tables")
                    failures += 1
                else:
                    print(f"{readme}:{i}: ratio {r}x is docs/performance.md's")
    return failures


def run_blocks(readme, text, lang, work, programs, what):
    """Runs programs(body) -> [(label, argv)] for every ```lang block, in order, from work;
    stops at the first that fails, naming it."""
    n = 0
    for block_lang, body, _, line in blocks(text):
        if block_lang != lang:
            continue
        for label, argv in programs(body):
            n += 1
            print(label, flush=True)
            r = subprocess.run(argv, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=600)
            print(r.stdout, end="", flush=True)
            if r.returncode != 0:
                print(f"{readme}:{line}: failed with exit status {r.returncode}: {label}")
                return 1
    if n == 0:
        print(f"{readme}: no ```{lang} block to run")
        return 1
    print(f"{readme}: {n} {what} ran")
    return 0


def run_python(readme, text, python, work):
    if os.sep in python:  # a path relative to where we were started, not to work
        python = os.path.abspath(python)
    scratch(work)
    return run_blocks(readme, text, "python", work, lambda body: [("python block", [python, "-c", body])],
                      "python blocks")


def run_commands(readme, text, build, work):
    scratch(work, build)
    return run_blocks(readme, text, "sh", work,
                      lambda body: [(f"$ {c}", ["bash", "-euo", "pipefail", "-c", c]) for c in commands(body)],
                      "commands")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    ap.add_argument("--examples", action="store_true")
    ap.add_argument("--run", metavar="BUILD_DIR")
    ap.add_argument("--python", metavar="PYTHON")
    ap.add_argument("--work", metavar="DIR")
    a = ap.parse_args()
    with open(a.readme, encoding="utf-8") as f:
        text = f.read()
    if a.examples:
        return 1 if check_examples(a.readme, text) + check_ratios(a.readme, text) else 0
    if a.run:
        if not a.work:
            ap.error("--run needs --work")
        return run_commands(a.readme, text, a.run, a.work)
    if a.python:
        if not a.work:
            ap.error("--python needs --work")
        return run_python(a.readme, text, a.python, a.work)
    ap.error("give --examples, --run BUILD_DIR --work DIR or --python PYTHON --work DIR")


if __name__ == "__main__":
    sys.exit(main())
