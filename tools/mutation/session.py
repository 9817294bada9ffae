"""Helpers for tools/mutation.sh on a cosmic-ray session database.

    python tools/mutation/session.py sample SESSION N SEED   keep N random pending mutants, skip the rest
    python tools/mutation/session.py score SESSION [--diffs] killed share, and the survivors (with --diffs, each diff)

A mutant counts as killed when the test command failed on it (cosmic-ray reports a
timeout as killed too); skipped (unsampled) and incompetent mutants (that could not
be run) do not count.
"""

import random
import sys

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult


def _what(item) -> tuple:
    """A mutant by what it changes (cosmic-ray's job ids are random per init: sorted by them, a seed would
    draw other mutants each run)."""
    return tuple((str(m.module_path), m.start_pos, m.operator_name, m.occurrence) for m in item.mutations)


def sample(session: str, n: int, seed: int) -> None:
    with use_db(session, WorkDB.Mode.open) as db:
        pending = [item.job_id for item in sorted(db.pending_work_items, key=_what)]
        keep = set(random.Random(seed).sample(pending, min(n, len(pending))))
        skip = [job for job in pending if job not in keep]
        if skip:
            db.set_multiple_results(skip, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
        print(f"{session}: {len(keep)} of {len(pending)} mutants sampled (seed {seed})")


def score(session: str, diffs: bool) -> None:
    with use_db(session, WorkDB.Mode.open) as db:
        items = {item.job_id: item for item in db.work_items}
        ran = [(job, r) for job, r in db.results if r.worker_outcome != WorkerOutcome.SKIPPED]
    killed = [job for job, r in ran if r.test_outcome == TestOutcome.KILLED]
    survived = [(job, r) for job, r in ran if r.test_outcome == TestOutcome.SURVIVED]
    broken = len(ran) - len(killed) - len(survived)  # incompetent: the mutant could not be run at all
    share = len(killed) / (len(killed) + len(survived)) if killed or survived else 0.0
    print(
        f"{session.removesuffix('.sqlite')}: {len(killed)} killed ({share:.0%}) of {len(killed) + len(survived)} run; "
        f"{len(survived)} survived, {broken} incompetent"
    )
    for job, result in survived:
        item = items[job]
        for m in item.mutations:
            print(f"  SURVIVED {m.module_path}:{m.start_pos[0]} {m.operator_name} #{m.occurrence}")
        if diffs and result.diff:
            print("    " + result.diff.replace("\n", "\n    "))


if __name__ == "__main__":
    command, session, *rest = sys.argv[1:]
    if command == "sample":
        sample(session, int(rest[0]), int(rest[1]))
    else:
        score(session, "--diffs" in rest)
