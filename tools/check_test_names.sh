#!/usr/bin/env bash
# Checks that ctest can run every Catch2 test case under its own name. catch_discover_tests
# (Catch2 2.x, CatchAddTests.cmake) reads `--list-test-names-only` into a CMake list and runs
# each case as `BINARY "<name>"` with ',', '[' and ']' escaped. So:
#   - a ';' splits a name into two ctest tests that each match nothing, and Catch2 2.x exits 0
#     when no case matches: ctest reports them passed and the case never runs;
#   - an unbalanced '[' or ']' makes CMake keep the following names in one list element
#     (';' inside brackets does not separate), which again matches nothing;
#   - what Catch's test-spec parser reads specially and the discovery does not escape (a
#     backslash, a leading '~', a '*' at either end) runs no case, or other cases.
# The first two are checked on the name; for the rest each name is given back to the binary as
# the discovery would, and it must select exactly that case. Hidden cases ([.]) count too: a
# TEST_SPEC naming their tags discovers them.
# With --ctest-dir, the ctest tests of that build directory must also have distinct names (two
# catch_discover_tests of one target whose TEST_SPEC/EXTRA_ARGS are equal write the same file,
# so one discovery is lost and the other is registered twice).
#
#   tools/check_test_names.sh [--ctest-dir BUILD_DIR] CATCH2_BINARY...   (ctest: test_names)
set -uo pipefail
ctest_dir=""
if [[ "${1:-}" == "--ctest-dir" ]]; then
  ctest_dir=$2
  shift 2
fi
status=0
for bin in "$@"; do
  # Catch2 2.x exits with the number of cases listed: only the output counts. A name starting
  # with '#' is printed in quotes.
  names=$("$bin" '*' --list-test-names-only 2>/dev/null | sed -e 's/^"\(#.*\)"$/\1/')
  if [[ -z "$names" ]]; then
    echo "$bin: lists no test cases"
    status=1
    continue
  fi
  bad=0
  count=0
  while IFS= read -r name; do
    count=$((count + 1))
    why=""
    if [[ "$name" == *";"* ]]; then
      why="contains ';' (catch_discover_tests splits the name there)"
    else
      # Brackets must pair up, in order: CMake does not split a list inside [...].
      depth=0
      for ((i = 0; i < ${#name}; i++)); do
        case "${name:i:1}" in
          "[") depth=$((depth + 1)) ;;
          "]") depth=$((depth - 1)); ((depth < 0)) && break ;;
        esac
      done
      if ((depth != 0)); then
        why="has an unbalanced '[' or ']' (CMake's list splitting merges it with the next names)"
      else
        spec=$name
        for c in , "[" "]"; do spec=${spec//"$c"/\\$c}; done  # as CatchAddTests.cmake escapes
        got=$("$bin" "$spec" --list-test-names-only 2>/dev/null | sed -e 's/^"\(#.*\)"$/\1/')
        if [[ "$got" != "$name" ]]; then
          n=$(grep -c . <<<"$got")
          why="run by name, selects $n case(s), not itself (Catch reads '\\', a leading '~' or an end '*' in a test spec)"
        fi
      fi
    fi
    if [[ -n "$why" ]]; then
      echo "$bin: test name \"$name\" $why"
      bad=1
    fi
  done <<<"$names"
  if ((bad)); then
    status=1
  else
    echo "$bin: $count test names, each runs under ctest as itself"
  fi
done
if [[ -n "$ctest_dir" ]]; then
  dups=$(cd "$ctest_dir" && "${CTEST:-ctest}" -N | sed -n 's/^ *Test *#[0-9]*: //p' | sort | uniq -d)
  if [[ -n "$dups" ]]; then
    echo "$ctest_dir: ctest tests registered more than once (a discovery overwritten by another?):"
    sed 's/^/  /' <<<"$dups" | head -10
    status=1
  else
    echo "$ctest_dir: ctest test names are distinct"
  fi
fi
exit $status
