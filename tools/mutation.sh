#!/bin/sh
# Mutation testing through oint's console entry: cosmic-ray writes each mutant into a COPY of this
# tree and runs the module's test command (tools/mutation/MODULE.toml), whose tests run oint in the
# test process, or as a process where the process itself is under test (tests/conftest.py run_oint).
# Sampled: SAMPLE mutants per module (default 15; 0 = all), drawn with SEED.
#
#   pip install -e ".[test,mutation]"
#   tools/mutation.sh [MODULE ...]        # MODULE: a tools/mutation/*.toml name; default: all of them
#   SAMPLE=0 JOBS=2 tools/mutation.sh timeparse
#
# JOBS modules run side by side (default 1), each in its own copy. Results: $OUT (default
# ./mutation-results/MODULE.txt, survivors with their diffs) and one score line per module on stdout.
# A mutant counts as killed when its module's test command fails (see tools/mutation/session.py).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
[ -x "$python" ] || python=python3
bin=$(dirname "$python")
sample=${SAMPLE:-15}
seed=${SEED:-18}
jobs=${JOBS:-1}
out=${OUT:-$root/mutation-results}
mkdir -p "$out"
[ $# -gt 0 ] || set -- $(cd "$root/tools/mutation" && ls -- *.toml | sed 's/\.toml$//')

one() {
    module=$1
    work=$(mktemp -d "${TMPDIR:-/tmp}/oint-mutation-$module.XXXXXX")
    (cd "$root" && git ls-files -co --exclude-standard -z | tar cf - --null -T -) | (cd "$work" && tar xf -)
    (
        cd "$work"
        # the copy's oint_py first, for the tests' own imports and the oint processes alike;
        # no bytecode: a mutant that keeps the file's size and second must not run stale .pyc
        export PYTHONPATH="$work" PYTHONDONTWRITEBYTECODE=1 PATH="$bin:$PATH"
        "$bin/cosmic-ray" init "tools/mutation/$module.toml" "$module.sqlite" >/dev/null
        [ "$sample" = 0 ] || "$python" tools/mutation/session.py sample "$module.sqlite" "$sample" "$seed" >/dev/null
        "$bin/cosmic-ray" exec "tools/mutation/$module.toml" "$module.sqlite" >/dev/null 2>&1
        "$python" tools/mutation/session.py score "$module.sqlite" --diffs > "$out/$module.txt"
        head -1 "$out/$module.txt"
    )
    rm -rf "$work"
}

if [ "${1:-}" = --one ]; then
    one "$2"
else
    printf '%s\n' "$@" | xargs -P "$jobs" -n 1 "$0" --one
fi
